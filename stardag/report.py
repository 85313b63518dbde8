"""`stardag report`: a table per iteration, from the stages that output a metrics table
(columns kind, slice, value, n). The loop's metrics stage gives iterations 1..N; a metrics
stage outside the loop gives iteration 0. What each kind of row means, and how to show it,
is the operator's to declare (`operator.Metrics`, `operator.Metric`): the report knows no
kind by name. Every score comes with its n and a 95% Wilson score interval."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from .api import Loaded, load
from .errors import SpecError
from .operator import Metric, Metrics
from .planner import make_plan

METRICS = "metrics"  # an undeclared metrics table is an output of this name
TRAINING_LOG = "training_log.json"
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(share: float, n: int, z: float = Z95) -> list[float] | None:
    """The Wilson score interval [low, high] of a proportion `share` of `n` trials; None
    when n is 0 or `share` is no proportion. Unlike the normal approximation it stays inside [0, 1] and is not empty at
    0 or n successes (Wilson 1927; Brown, Cai and DasGupta 2001)."""
    if n <= 0 or not 0 <= share <= 1:  # not a proportion (NaN included): no interval
        return None
    k = round(share * n)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exactly 0 and 1 at 0 and n successes, where rounding would leave the point outside
    return [0.0 if k == 0 else center - half, 1.0 if k == n else center + half]


def metrics_port(node) -> str | None:
    """The node's metrics output: one declared `Metrics`, else one named `metrics`."""
    declared = [n for n, p in node.op.outputs.items() if isinstance(p, Metrics)]
    if declared:
        return declared[0]
    return METRICS if METRICS in node.op.outputs else None


def metrics_stages(ld: Loaded) -> tuple[str | None, str | None]:
    top: list[str] = []
    loop: list[str] = []
    for node in ld.graph.nodes.values():
        if metrics_port(node):
            (loop if node.iteration else top).append(node.stage)
    loop = list(dict.fromkeys(loop))
    if not loop and not top:
        raise SpecError("no stage of this spec outputs a metrics table", str(ld.graph.loaded.path))
    return (top[0] if len(top) == 1 else None), (loop[0] if loop else None)


def declared(ld: Loaded, node_ids) -> tuple[dict[str, Metric], str]:
    """The metric kinds the stages' operators declare, in order, and the plot's axis."""
    kinds: dict[str, Metric] = {}
    axis = "score"
    for node_id in node_ids:
        node = ld.graph.nodes.get(node_id)
        port = node.op.outputs.get(metrics_port(node) or "") if node else None
        if isinstance(port, Metrics):
            kinds = {**port.kinds, **kinds}
            axis = port.axis
    return kinds, axis


def resolve(kinds: dict[str, Metric], rows: list[dict]) -> dict[str, Metric]:
    """The declared kinds, then those only the rows have (shares per slice); where nothing
    is declared, the first kind found is the headline score."""
    out = dict(kinds)
    for r in rows:
        if r["kind"] not in out:
            first = not kinds and not out
            out[r["kind"]] = Metric(r["kind"], show="score" if first else "share")
    return out


def headline(kinds: dict[str, Metric]) -> str | None:
    return next((k for k, m in kinds.items() if m.show == "score"), None)


def collect(
    spec_path, overrides=(), store=None, stage: str | None = None, base: str | None = None
) -> dict:
    """{"iterations": [{"iteration", "headline", <kind>..., "training"}], "metrics": how each
    kind is shown} (see `entry_of`; `training`: that iteration's training log,
    [{step, loss, lr}])"""
    ld = load(spec_path, overrides, store)
    return collect_loaded(ld, make_plan(ld.graph, ld.store), stage, base)


def collect_loaded(ld: Loaded, plan, stage: str | None = None, base: str | None = None) -> dict:
    default_base, default_stage = metrics_stages(ld)
    stage, base = stage or default_stage, base or default_base
    nodes = []
    if base:
        nodes.append((0, base))
    if stage:
        nodes += [
            (n.iteration, n.id) for n in ld.graph.nodes.values() if n.stage == stage and n.iteration
        ]
    cached = {e.node: e.manifest for e in plan if e.status == "cached"}
    for _, node_id in nodes:
        if node_id not in ld.graph.nodes:
            raise SpecError(f"no stage {node_id!r} in this spec", str(ld.graph.loaded.path))
    kinds, axis = declared(ld, [n for _, n in nodes])
    tables, missing = [], []
    for i, node_id in nodes:
        manifest = cached.get(node_id)
        if manifest is None:
            missing.append(node_id)
            continue
        port = metrics_port(ld.graph.nodes[node_id]) or METRICS
        tables.append((i, ld.store.read_table(manifest["key"], port).to_pylist()))
    kinds = resolve(kinds, [r for _, rows in tables for r in rows])
    iterations = [entry_of(i, rows, kinds) for i, rows in tables]
    curves = training_logs(ld, cached)
    for entry in iterations:
        entry["training"] = curves.get(entry["iteration"], [])
    return {
        "spec": ld.graph.name,
        "metrics": {k: asdict(m) for k, m in kinds.items()},
        "axis": axis,
        "iterations": iterations,
        "not_computed": missing,
    }


def training_logs(ld: Loaded, cached: dict) -> dict[int, list[dict]]:
    """{iteration: [{step, loss, lr}]} from the loop's model outputs that carry a training
    log (shard_train writes one beside the weights)."""
    import json

    curves = {}
    for node in ld.graph.nodes.values():
        manifest = cached.get(node.id)
        if not node.iteration or manifest is None:
            continue
        for output, info in manifest["outputs"].items():
            if info["kind"] == "model" and f"{output}/{TRAINING_LOG}" in manifest.get("files", {}):
                path = ld.store.model_dir(manifest["key"], output) / TRAINING_LOG
                curves[node.iteration] = json.loads(path.read_text())["steps"]
    return curves


def entry_of(iteration: int, rows: list[dict], kinds: dict[str, Metric] | None = None) -> dict:
    """One iteration's report from its metrics rows, each kind as it is declared: the
    headline score's value for the whole under its kind, with `n`, `ci95` (95% interval) and
    the same per slice (`by_slice`, `by_slice_n`, `by_slice_ci95`); another score as
    {slice: value} with `<kind>_n` and `<kind>_ci95`; a share as {slice: value} (one number
    if `whole`); a source as {slice: n}. `headline` names the headline's kind."""
    kinds = resolve(kinds or {}, rows)
    top = headline(kinds)
    entry: dict = {"iteration": iteration, "headline": top}
    for kind, m in kinds.items():
        if kind == top:
            entry.update(
                {kind: None, "n": None, "ci95": None, "by_slice": {}, "by_slice_n": {}}
                | {"by_slice_ci95": {}}
            )
        elif m.show == "score":
            entry.update({kind: {}, f"{kind}_n": {}, f"{kind}_ci95": {}})
        else:
            entry[kind] = None if m.whole else {}
    for r in rows:
        kind, where, value, n = r["kind"], r["slice"], r["value"], r["n"]
        m = kinds[kind]
        if kind == top and where == "all":
            entry.update({kind: value, "n": n, "ci95": wilson(value, n)})
        elif kind == top:
            entry["by_slice"][where] = value
            entry["by_slice_n"][where] = n
            entry["by_slice_ci95"][where] = wilson(value, n)
        elif m.show == "score":
            entry[kind][where] = value
            entry[f"{kind}_n"][where] = n
            entry[f"{kind}_ci95"][where] = wilson(value, n)
        elif m.show == "source":
            entry[kind][where] = n
        elif m.whole:
            if where == "all":
                entry[kind] = value
        else:
            entry[kind][where] = value
    return entry


def _kinds(report: dict) -> dict[str, Metric]:
    declared = {k: Metric(**m) for k, m in report.get("metrics", {}).items()}
    its = report["iterations"]
    top = next((e["headline"] for e in its if e.get("headline")), None)
    if top and top not in declared:  # entries made without a declaration
        declared = {top: Metric(top, show="score"), **declared}
    return declared


def slices_of(m: Metric, values: list[dict]) -> list[str]:
    """The slices seen, the declared ones first in their order, then by length and name
    (numbers in numeric order)."""
    seen = {s for v in values for s in v}
    return [s for s in m.slices if s in seen] + sorted(
        seen - set(m.slices), key=lambda s: (len(s), s)
    )


def share_text(v, percent=True):
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if percent else f"{v:.4g}"


def score_text(v, ci, n=None, percent=True):
    if v is None:
        return "-"
    if ci is None:
        return share_text(v, percent) + (f" (n={n})" if n is not None else "")
    low, high = (100 * ci[0], 100 * ci[1]) if percent else tuple(ci)
    inside = f"{low:.1f}-{high:.1f}" + (f", n={n}" if n is not None else "")
    return f"{share_text(v, percent)} ({inside})"


def columns(report: dict) -> list[tuple[str, Callable[..., str]]]:
    """The table's columns: (header, entry -> cell), as the metrics declare them."""
    its = report["iterations"]
    top = next((e["headline"] for e in its if e.get("headline")), None)
    cols: list[tuple[str, Callable[..., str]]] = []
    for kind, m in _kinds(report).items():
        short = m.short or m.label
        if kind == top:
            cols.append(("n", lambda e: "-" if e["n"] is None else str(e["n"])))
            cols.append(
                (
                    f"{m.label} (95% CI)",
                    lambda e, k=kind, p=m.percent: score_text(e[k], e["ci95"], percent=p),
                )
            )
            for s in slices_of(m, [e["by_slice"] for e in its]):
                cols.append(
                    (
                        f"{short}[{s}] (95% CI, n)",
                        lambda e, s=s, p=m.percent: score_text(
                            e["by_slice"].get(s),
                            e["by_slice_ci95"].get(s),
                            e["by_slice_n"].get(s),
                            p,
                        ),
                    )
                )
        elif m.show == "score":
            for s in slices_of(m, [e.get(kind) or {} for e in its]):
                cols.append(
                    (
                        f"{short}[{s}] (95% CI, n)",
                        lambda e, k=kind, s=s, p=m.percent: score_text(
                            (e.get(k) or {}).get(s),
                            (e.get(f"{k}_ci95") or {}).get(s),
                            (e.get(f"{k}_n") or {}).get(s),
                            p,
                        ),
                    )
                )
        elif m.show == "source":
            continue  # a note under the table
        elif m.whole:
            if any(e.get(kind) is not None for e in its):
                cols.append((m.label, lambda e, k=kind, p=m.percent: share_text(e.get(k), p)))
        else:
            for s in slices_of(m, [e.get(kind) or {} for e in its]):
                cols.append(
                    (
                        f"{short}:{m.slices.get(s, s)}",
                        lambda e, k=kind, s=s, p=m.percent: share_text((e.get(k) or {}).get(s), p),
                    )
                )
    return cols


def notes(report: dict) -> list[str]:
    """One line per source kind: each slice with its n."""
    lines = []
    for kind, m in _kinds(report).items():
        if m.show == "source":
            where = sorted(
                {
                    f"{s} (n={n})"
                    for e in report["iterations"]
                    for s, n in (e.get(kind) or {}).items()
                }
            )
            if where:
                lines.append(f"{m.label}: {'; '.join(where)}")
    return lines


def table(report: dict) -> str:
    cols: list[tuple[str, Callable[[dict], str]]] = [
        ("iter", lambda e: str(e["iteration"]))
    ] + columns(report)
    rows = [[h for h, _ in cols]] + [[cell(e) for _, cell in cols] for e in report["iterations"]]
    widths = [max(len(r[c]) for r in rows) for c in range(len(cols))]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in rows]
    lines += notes(report)
    if report["not_computed"]:
        lines.append(f"(not computed yet: {', '.join(report['not_computed'])})")
    return "\n".join(lines)


def bars(values, intervals):
    """Shares in % and their 95% intervals as errorbar's (below, above) distances."""
    ys = [float("nan") if v is None else 100 * v for v in values]
    # never negative, as errorbar requires, whatever the rounding
    lows = [
        0.0 if ci is None or y != y else max(0.0, y - 100 * ci[0]) for y, ci in zip(ys, intervals)
    ]
    highs = [
        0.0 if ci is None or y != y else max(0.0, 100 * ci[1] - y) for y, ci in zip(ys, intervals)
    ]
    return ys, [lows, highs]


def plot(report: dict, path: Path):
    """The headline score per iteration, one line per slice and one for the whole, each
    point with its 95% interval as an error bar; beside it, where the loop's training kept a
    log, the training loss per step, one curve per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = report["iterations"]
    curves = [e for e in its if e.get("training")]
    fig, axes = plt.subplots(
        1, 2 if curves else 1, figsize=(12 if curves else 7, 4.2), dpi=120, squeeze=False
    )
    ax = axes[0][0]
    kinds = _kinds(report)
    top = next((e["headline"] for e in its if e.get("headline")), None)
    xs = [e["iteration"] for e in its]
    if top:
        slices = slices_of(kinds[top], [e["by_slice"] for e in its])
        for j, s in enumerate(slices):
            ys, err = bars(
                [e["by_slice"].get(s) for e in its], [e["by_slice_ci95"].get(s) for e in its]
            )
            shift = 0.05 * (j + 1)  # each slice's bars beside those of `all`, not over them
            ax.errorbar([x + shift for x in xs], ys, yerr=err, marker="o", capsize=3, label=s)
        ys, err = bars([e[top] for e in its], [e["ci95"] for e in its])
        ax.errorbar(
            xs, ys, yerr=err, color="black", linewidth=2.5, marker="s", capsize=4, label="all"
        )
        ax.legend(title="slice", fontsize=8, loc="best")
    ax.set_xlabel("iteration (0 = before the loop)")
    ax.set_ylabel(f"{report.get('axis') or top or 'score'} (%, 95% CI)")
    ax.set_ylim(-2, 102)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.set_title(report["spec"])
    if curves:
        loss_ax = axes[0][1]
        for e in curves:
            loss_ax.plot(
                [s["step"] for s in e["training"]],
                [s["loss"] for s in e["training"]],
                label=f"iteration {e['iteration']}",
            )
        loss_ax.set_xlabel("training step")
        loss_ax.set_ylabel("training loss")
        loss_ax.grid(alpha=0.3)
        loss_ax.set_title("training")
        loss_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
