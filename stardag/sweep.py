"""Sweeps: the grid of `--set` overrides that `--sweep KEY=v1,v2` (repeatable) and a spec's
`sweep:` block describe. Each point of the grid is a variant of the spec, given as the
override strings `--set` takes, so a point is exactly what `--set` would run."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import SpecError
from .spec import load_spec, parse_override

_CLOSE = {"[": "]", "{": "}", "(": ")"}


def split_values(text: str) -> list[str]:
    """`1e-3,2e-3` -> ["1e-3", "2e-3"]; commas inside brackets or quotes do not split:
    `{1: 0.5, 2: 0.5},{1: 1.0}` is two values."""
    values: list[str] = []
    depth: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for c in text:
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in _CLOSE:
            depth.append(_CLOSE[c])
        elif depth and c == depth[-1]:
            depth.pop()
        elif c == "," and not depth:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(c)
    values.append("".join(current).strip())
    return values


def parse(text: str) -> tuple[str, list[str]]:
    """`KEY=v1,v2` -> (KEY, ["KEY=v1", "KEY=v2"]), each checked as --set checks it."""
    key, eq, rest = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise SpecError(f"sweep {text!r} is not of the form key.path=value1,value2", "--sweep")
    values = split_values(rest)
    if any(not v for v in values):
        raise SpecError(f"sweep {text!r} has an empty value", "--sweep")
    if len(set(values)) != len(values):
        raise SpecError(f"sweep {text!r} names a value twice", "--sweep")
    points = [f"{key}={v}" for v in values]
    for p in points:
        try:
            parse_override(p)
        except SpecError as e:
            raise SpecError(f"sweep {text!r}: {e.message}", "--sweep") from None
    return key, points


def from_block(block: dict) -> list[str]:
    """A spec's `sweep: {key.path: [v1, v2]}` as --sweep texts."""
    out = []
    for key, values in block.items():
        out.append(f"{key}=" + ",".join(json.dumps(v, separators=(", ", ": ")) for v in values))
    return out


def grid(
    sweeps: Sequence[str], spec_path: str | Path | None = None, overrides: Sequence[str] = ()
) -> list[tuple[str, ...]]:
    """The grid's points, each a tuple of overrides (one per swept key), in the order the
    sweeps are given: the spec's `sweep:` block first (when `spec_path` is given), then
    `--sweep`, a key given twice taking the later values. [()] when nothing is swept."""
    texts = []
    if spec_path is not None:
        texts += from_block(load_spec(spec_path, list(overrides)).spec.sweep)
    axes: dict[str, list[str]] = {}
    for text in [*texts, *sweeps]:
        key, points = parse(text)
        axes.pop(key, None)
        axes[key] = points
    return list(itertools.product(*axes.values()))


@contextmanager
def from_sweep(point: Sequence[str]):
    """An error in one of the point's overrides names the sweep, not `--set`."""
    try:
        yield
    except SpecError as e:
        if e.file and e.file.removeprefix("--set ") in point:
            e.file = "--sweep " + e.file.removeprefix("--set ")
        raise


def label(point: Sequence[str]) -> str:
    """`loop.stages.train.params.lr=0.002` -> `lr=0.002` (the last part of each key)."""
    return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, _, v in (p.partition("=") for p in point))


def run(
    spec_path,
    overrides: Sequence[str] = (),
    sweeps: Sequence[str] = (),
    store: str | None = None,
    force: Sequence[str] = (),
    until=None,
    address: str | None = None,
    executor: str = "ray",
    progress: bool = True,
    on_point=None,
    verbose: bool | None = None,
):
    """Run every point of the grid at once on one runner (one Ray): the points' independent
    stages run side by side as its resources allow, and a stage that several points share
    (the same key: the upstream stages they have in common) is computed once while the
    others wait for it. Returns [(point, RunResult)]; `on_point(point, result, seconds)` is
    called for each point, in order, once all have ended. A failing point stops launching
    its own stages only; the first failure is raised once the others have ended, naming its
    point."""
    from . import api
    from .errors import StageFailed

    points = grid(sweeps, spec_path, overrides)
    variants = []
    for point in points:  # every point is a valid spec before anything runs
        with from_sweep(point):
            variants.append(api.load(spec_path, [*overrides, *point], store))
    labels = [label(p) or None for p in points]
    outcomes = api.run_together(
        variants, labels, force, until, address, executor, progress, verbose
    )
    results, failure = [], None
    for point, out in zip(points, outcomes):
        if isinstance(out, StageFailed):
            if failure is None:
                failure = StageFailed(
                    f"{out.node} [{label(point)}]" if point else out.node,
                    out.op,
                    out.error,
                    out.bad_input,
                )
            continue
        results.append((point, out))
        if on_point:
            on_point(point, out, out.seconds)
    if failure is not None:
        raise failure
    return results
