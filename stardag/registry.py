"""Finding operators: by short name through the `stardag.operators` entry-point group (the
built-in library registers there as third-party packages do), or by a `package.module:Name`
reference in the spec."""

from __future__ import annotations

import importlib
from functools import cache, lru_cache

from .errors import did_you_mean
from .operator import Operator

ENTRY_POINT_GROUP = "stardag.operators"


class UnknownOperator(LookupError):
    pass


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, str]:
    """Short names: the `stardag.operators` entry points of every installed package, the
    built-in library (`operators`, registered in stardag's own pyproject.toml) included."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_names() -> list[str]:
    return sorted(_entry_points())


def target_of(ref: str) -> str:
    """The `module:Class` a spec's `op` refers to."""
    if ":" in ref:
        return ref
    if ref in _entry_points():
        return _entry_points()[ref]
    hint = did_you_mean(ref, known_names(), cutoff=0.5)
    raise UnknownOperator(f"unknown operator {ref!r}{hint} (or give package.module:Name)")


@cache
def resolve(ref: str) -> type[Operator]:
    module_name, _, attr = target_of(ref).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownOperator(
            f"operator {ref!r}: cannot import module {module_name!r} ({e})"
        ) from None
    except SystemExit as e:  # would end stardag without a word
        raise UnknownOperator(
            f"operator {ref!r}: importing module {module_name!r} called sys.exit({e.code!r})"
        ) from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise UnknownOperator(f"operator {ref!r}: module {module_name!r} has no {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, Operator)):
        raise UnknownOperator(f"operator {ref!r}: {attr!r} is not a stardag Operator subclass")
    if cls.run is Operator.run:
        raise UnknownOperator(
            f"operator {ref!r}: {attr!r} defines no run() (an operator "
            "subclasses Operator and implements run)"
        )
    return cls
