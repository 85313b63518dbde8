"""Shared helpers for the engine tests."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import stardag

TESTS = Path(__file__).parent


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


class Calls:
    """Operator calls recorded by tests/engine_ops.py, in the file that conftest's
    `_calls_file` names for each test."""

    def __init__(self, path: Path):
        assert os.environ.get("STARDAG_TEST_CALLS") == str(path), (
            "record calls in the test's own calls.txt (conftest sets it)"
        )
        self.path = path

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


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `stardag` process that can import the test operators."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        **extra,
    }


def cli_command(*args) -> list[str]:
    """The real `stardag` command, for subprocess."""
    return [sys.executable, "-m", "stardag.cli", *map(str, args)]


def cli(*args, env=None, cwd=None, timeout=120):
    """The real `stardag` command in a fresh process."""
    return subprocess.run(
        cli_command(*args),
        env=cli_env(**(env or {})),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def until(cond, timeout: float = 60.0, what: str = "condition", every: float = 0.05):
    """Wait for `cond()` to hold; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def store_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()


def bench(name: str):
    """A script of bench/, loaded without putting bench/ on everyone's import path."""
    import importlib.util

    path = TESTS.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
