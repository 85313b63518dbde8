"""The resolved spec: a spec after `extends` and `--set`, as YAML (each value with the file
and line it came from) or as JSON, for `stardag config` and the run record."""

from __future__ import annotations

import os
from typing import Any

import yaml

from .spec import LoadedSpec, structural


def where(loaded: LoadedSpec, key_path: tuple) -> str:
    """`file:line` (the file relative to here when below it) or `--set K=V` for a value."""
    file, line = loaded.origins.get(key_path, loaded.where(key_path))
    if file is None:
        return "?"
    if not file.startswith("--set"):
        rel = os.path.relpath(file)
        file = rel if not rel.startswith("..") else file
    return f"{file}:{line}" if line else file


def as_json(value: Any) -> Any:
    """The spec as JSON keeps it: mapping keys as strings (a `--set` value may have others)."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def origins(loaded: LoadedSpec) -> dict[str, str]:
    """Where each leaf value came from, by dotted key path."""
    return {".".join(map(str, p)): where(loaded, p) for p, _ in _leaves(loaded.raw, ())}


def _leaves(value: Any, at: tuple):
    if isinstance(value, dict) and structural(at):
        for k, v in value.items():
            yield from _leaves(v, at + (k,))
    else:
        yield at, value


def _flow(value: Any) -> str:
    """One value on one line, as YAML reads it back (a mapping or list in flow style)."""
    text = yaml.safe_dump(
        value, default_flow_style=True, width=float("inf"), allow_unicode=True, sort_keys=False
    )
    text = text.removesuffix("\n").removesuffix("\n...")
    if "\n" in text:  # a multi-line string: a double-quoted scalar keeps it on one line
        import json

        text = json.dumps(value, ensure_ascii=False)
    return text


def to_yaml(loaded: LoadedSpec) -> str:
    """The resolved spec as YAML, each leaf value followed by `# file:line`."""
    lines: list[str] = []

    def emit(value: dict, at: tuple, indent: int):
        for k, v in value.items():
            path = at + (k,)
            key = _flow(k)
            if isinstance(v, dict) and v and structural(path):
                lines.append(f"{'  ' * indent}{key}:")
                emit(v, path, indent + 1)
            else:
                lines.append(f"{'  ' * indent}{key}: {_flow(v)}  # {where(loaded, path)}")

    emit(loaded.raw, (), 0)
    return "\n".join(lines) + "\n"
