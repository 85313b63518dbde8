"""Refs: what each stage of a spec last resolved to, `<root>/refs/<spec>/<node>.json` (its
key record, input hashes and outputs), so that `plan` can say why a stage is stale."""

from __future__ import annotations

import sys


class Refs:
    def __init__(self, store):
        self.store = store

    def _path(self, spec: str, node: str) -> str:
        return self.store._named("refs", spec, node)

    def read(self, spec: str, node: str) -> dict | None:
        """What `node` of `spec` last resolved to; None if never, or if the ref is damaged
        (then a warning says so: the stage reads as new)."""
        ref = self.store._read_json(self._path(spec, node))
        if ref is None:
            return None
        if ref.get("__unreadable__") or not all(
            isinstance(ref.get(k, {}), dict) for k in ("params", "inputs", "outputs")
        ):
            print(
                f"warning: the ref of {spec}/{node} in the store is damaged; ignoring it",
                file=sys.stderr,
            )
            return None
        return ref

    def write(self, spec: str, node: str, ref: dict):
        self.store._write_json(self._path(spec, node), ref, "write a ref")
