"""Cache keys. A stage's key is one hash over canonical JSON of everything that decides its
output: the operator and its version, its normalized source code, its validated params, the
content hashes of its inputs, and the store's format version."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import math
import sys
from functools import lru_cache
from typing import Any

FORMAT_VERSION = 1


class UnhashableParam(TypeError):
    pass


def _refuse(value: Any):
    raise UnhashableParam(f"value of type {type(value).__name__} cannot be hashed: {value!r:.80}")


def _check_floats(obj: Any, at: str = "params"):
    if isinstance(obj, float) and not math.isfinite(obj):
        raise UnhashableParam(f"{at} is {obj}, which has no canonical form")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_floats(v, f"{at}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_floats(v, f"{at}[{i}]")


def canonical_json(obj: Any) -> str:
    """Sorted keys, fixed separators, no NaN; anything JSON cannot say is an error."""
    _check_floats(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_refuse)


def stage_key(op: str, version: str, code: str, params: dict, inputs: dict[str, str | None]) -> str:
    payload = {"format": FORMAT_VERSION, "op": op, "version": version, "code": code,
               "params": params, "inputs": inputs}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:32]


# --- code fingerprints ------------------------------------------------------------------

def _normalized(tree: ast.AST) -> str:
    """The AST without docstrings or positions: comments and formatting do not count."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def _module_source(name: str):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return spec


@lru_cache(maxsize=None)
def code_fingerprint(module_name: str) -> str:
    """Hash of the operator's module and every module of the same top-level package that it
    imports, transitively, each normalized. The engine itself is excluded: its changes are
    covered by FORMAT_VERSION."""
    top = module_name.split(".")[0]
    parts: dict[str, str] = {}
    stack = [module_name]
    while stack:
        name = stack.pop()
        if name in parts:
            continue
        spec = _module_source(name)
        if spec is None:
            if name == module_name and name in sys.modules and getattr(
                    sys.modules[name], "__file__", None):
                spec = importlib.util.spec_from_file_location(name, sys.modules[name].__file__)
            else:
                continue
        with open(spec.origin, "rb") as f:
            tree = ast.parse(f.read(), filename=spec.origin)
        parts[name] = _normalized(tree)
        is_package = spec.submodule_search_locations is not None
        for dep in _imported(tree, name, is_package):
            if dep.split(".")[0] == top and top != "stardag" and dep not in parts:
                stack.append(dep)
    digest = hashlib.sha256()
    for name in sorted(parts):
        digest.update(name.encode() + b"\0" + parts[name].encode() + b"\0")
    return digest.hexdigest()[:32]
