"""Experiment tracking: after a run, what it ran and measured goes to the trackers named by
`--track NAME` or the spec's `tracking: {NAME: {...}}`. Everything comes from the store
(the stages' params and keys, their recorded metrics, training logs and timings), so a run
whose stages were all cached yields a complete tracked run too.

A tracker is a class with `__init__(self, options: dict, spec_dir: Path)` and
`log(self, run: TrackedRun) -> str` (a line saying where the run went). MLflow is built in;
others register in the `stardag.trackers` entry-point group, or are named `module:Class`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from .errors import SpecError

ENTRY_POINT_GROUP = "stardag.trackers"
BUILTIN = {"mlflow": "stardag.tracking_mlflow:MlflowTracker"}


@dataclass
class TrackedRun:
    """What a tracker records of one run of a spec (one point of a sweep)."""

    name: str  # the spec's name, with the sweep point if any
    spec: str  # the spec file
    overrides: list[str]
    store: str
    params: dict[str, str]  # "stage.param.path" -> value as JSON
    # (name, value, step): per iteration (step = iteration, 0 before the loop) the metrics
    # rows as `<kind>/<slice>` and `seconds/<iteration's stages>`; per training step of
    # iteration i, `train_loss/iteration_<i>` and `train_lr/iteration_<i>`
    metrics: list[tuple[str, float, int]]
    keys: dict[str, str]  # node -> artifact key
    tags: dict[str, str] = field(default_factory=dict)
    computed: int = 0
    cached: int = 0


class Tracker(Protocol):
    def __init__(self, options: dict[str, Any], spec_dir: Path): ...

    def log(self, run: TrackedRun) -> str: ...


def resolve(name: str) -> type:
    """A tracker class by short name (built in, or an entry point) or `module:Class`."""
    import importlib

    ref = BUILTIN.get(name)
    if ref is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        ref = found[0].value if found else name
    if ":" not in ref:
        known = sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise SpecError(f"unknown tracker {name!r} (known: {', '.join(known)}, or module:Class)")
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        hint = " (pip install 'stardag[mlflow]')" if name == "mlflow" else ""
        raise SpecError(f"tracker {name!r} cannot be loaded: {e}{hint}") from None
    except AttributeError:
        raise SpecError(f"tracker {name!r}: {module} has no {attr}") from None


def trackers(spec_block: dict, names: Sequence[str], spec_dir: Path) -> list:
    """The spec's `tracking:` trackers and those `--track` names (with no options, unless
    the spec gives them)."""
    wanted = {name: (opts or {}) for name, opts in spec_block.items()}
    for name in names:
        wanted.setdefault(name, {})
    return [resolve(name)(opts, spec_dir) for name, opts in wanted.items()]


def _flat(prefix: str, value, out: dict[str, str]):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flat(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = json.dumps(value, sort_keys=True, default=str)


def collect(ld, result, overrides: Sequence[str], label: str | None = None) -> TrackedRun:
    """The tracked run of `result` (an executor.RunResult of the loaded spec `ld`)."""
    from . import report
    from .planner import make_plan

    spec = ld.graph.loaded.spec
    params: dict[str, str] = {}
    for name, stage in {**spec.stages, **(spec.loop.stages if spec.loop else {})}.items():
        _flat(name, stage.params, params)
    if spec.loop:
        params["loop.iterations"] = str(spec.loop.iterations)
    plan = make_plan(ld.graph, ld.store)
    metrics: list[tuple[str, float, int]] = []
    seconds: dict[int, float] = {}
    for e in plan:
        if e.status == "cached":
            i = ld.graph.nodes[e.node].iteration or 0
            seconds[i] = seconds.get(i, 0.0) + (
                ((e.manifest or {}).get("timings") or {}).get("seconds") or 0
            )
    cached = {e.node: e.manifest for e in plan if e.status == "cached"}
    for i, n in _metric_nodes(ld):
        m = cached.get(n)
        if m is None:
            continue
        port = report.metrics_port(ld.graph.nodes[n]) or report.METRICS
        for r in ld.store.read_table(m["key"], port).to_pylist():
            if isinstance(r.get("value"), (int, float)):
                metrics.append((f"{r['kind']}/{r['slice']}", float(r["value"]), i))
    for i, steps in sorted(report.training_logs(ld, cached).items()):
        for s in steps:
            for what in ("loss", "lr"):
                if isinstance(s.get(what), (int, float)):
                    metrics.append((f"train_{what}/iteration_{i}", float(s[what]), int(s["step"])))
    metrics += [("seconds/stages", round(s, 3), i) for i, s in sorted(seconds.items())]
    computed = len(result.computed()) if result is not None else 0
    return TrackedRun(
        name=ld.graph.name + (f" [{label}]" if label else ""),
        spec=str(ld.graph.loaded.path),
        overrides=list(overrides),
        store=ld.store.uri,
        params=params,
        metrics=metrics,
        keys={e.node: e.key for e in plan if e.key},
        computed=computed,
        cached=len(plan) - computed,
    )


def _metric_nodes(ld) -> list[tuple[int, str]]:
    from . import report

    try:
        base, stage = report.metrics_stages(ld)
    except SpecError:  # no metrics table in this spec: params, keys and times only
        return []
    out = [(0, base)] if base else []
    return out + [
        (n.iteration, n.id) for n in ld.graph.nodes.values() if n.stage == stage and n.iteration
    ]
