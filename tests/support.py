"""Shared helpers for the engine tests."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import stardag

TESTS = Path(__file__).parent


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


class Calls:
    """Operator calls recorded by tests/engine_ops.py."""

    def __init__(self, path: Path):
        self.path = path
        os.environ["STARDAG_TEST_CALLS"] = str(path)

    def take(self) -> list[str]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().split()
        self.path.unlink()
        return lines


def run(spec, *overrides, **kw):
    kw.setdefault("executor", "local")
    kw.setdefault("progress", False)
    return stardag.run(spec, overrides=list(overrides), **kw)


def cli(*args, env=None, cwd=None, timeout=120):
    """The real `stardag` command in a fresh process."""
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "stardag.cli", *map(str, args)], env=e, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def store_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()
