"""Cache keys. A stage's key is one hash over canonical JSON of everything that decides its
output, held as one record (`StageKey`): the operator and its version, the code it reaches
(`code_identity`), its validated params, the content hashes of its inputs, and the store's
format version."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, NoReturn

FORMAT_VERSION = 2  # 2: the key is a StageKey record, code keyed by definitions


class UnhashableParam(TypeError):
    pass


def _refuse(value: Any) -> NoReturn:
    raise UnhashableParam(f"value of type {type(value).__name__} cannot be hashed: {value!r:.80}")


def non_finite(obj: Any, at: tuple = ()) -> tuple[tuple, float] | None:
    """The key path and value of the first NaN or infinity in obj, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return at, obj
    items = (
        obj.items()
        if isinstance(obj, dict)
        else (enumerate(obj) if isinstance(obj, (list, tuple)) else ())
    )
    for k, v in items:
        found = non_finite(v, at + (k,))
        if found:
            return found
    return None


def canonical_json(obj: Any) -> str:
    """Sorted keys, fixed separators, no NaN; anything JSON cannot say is an error."""
    bad = non_finite(obj)
    if bad is not None:
        at, value = bad
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in at)
        raise UnhashableParam(f"params{where} is {value}, which has no canonical form")
    return json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_refuse,
    )


@dataclass(frozen=True)
class StageKey:
    """Everything that decides a stage's output, as one value: the operator (its target and
    declared version), its code identity (see `code_identity`), its params as the key sees
    them (file params by content), the content hashes of its inputs, the store's format,
    and, where the spec asks for it, the versions of the libraries its code imports. The
    key is the hash of this record; the record is kept in the manifest and the ref, and the
    reasons a stage is stale are the differences between two records."""

    target: str
    version: str
    code: str
    params: dict[str, Any]
    inputs: dict[str, str | None]  # None: not computed yet (while planning)
    libraries: dict[str, str] | None = None
    format: int = FORMAT_VERSION

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.to_json()).encode()).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        d = {
            "format": self.format,
            "target": self.target,
            "version": self.version,
            "code": self.code,
            "params": self.params,
            "inputs": self.inputs,
        }
        if self.libraries is not None:
            d["libraries"] = self.libraries
        return d

    @classmethod
    def from_json(cls, d: Any) -> StageKey:
        """The record as stored; a ValueError if it is not one."""
        if not isinstance(d, dict) or not {
            "format",
            "target",
            "version",
            "code",
            "params",
            "inputs",
        } <= set(d):
            raise ValueError("not a key record")
        if not (
            isinstance(d["params"], dict)
            and isinstance(d["inputs"], dict)
            and all(isinstance(v, str) for v in d["inputs"].values())
            and isinstance(d.get("libraries", {}), dict)
        ):
            raise ValueError("not a key record")
        return cls(
            d["target"],
            d["version"],
            d["code"],
            d["params"],
            d["inputs"],
            d.get("libraries"),
            d["format"],
        )
