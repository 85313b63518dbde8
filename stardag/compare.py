"""`stardag compare`: variants of a pipeline side by side, iteration by iteration, from what
their stores hold: each variant's metrics (as `report` reads them), the seconds its stages
took when they were computed (from their manifests), and which stages the variants share
(same key, one artifact). Runs nothing: a stage not computed shows as missing."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import report, sweep
from .api import load
from .operator import Metric
from .planner import make_plan


@dataclass(frozen=True)
class Variant:
    label: str
    spec: str
    overrides: tuple[str, ...]

    def command(self) -> str:
        """The `stardag run` that computes this variant."""
        sets = "".join(f" --set {shlex.quote(o)}" for o in self.overrides)
        return f"stardag run {shlex.quote(self.spec)}{sets}"


def variants(
    specs: Sequence[str], overrides: Sequence[str] = (), sweeps: Sequence[str] = ()
) -> list[Variant]:
    """Every spec at every point of the sweep grid (its own `sweep:` block and `sweeps`)."""
    out = []
    for spec in specs:
        for point in sweep.grid(sweeps, spec, overrides):
            name = Path(spec).stem
            label = f"{name} {sweep.label(point)}" if point else name
            out.append(Variant(label, str(spec), (*overrides, *point)))
    if len({v.label for v in out}) != len(out):  # same stem in two directories
        out = [
            Variant(
                f"{v.spec} {sweep.label(v.overrides[len(overrides) :])}".strip(),
                v.spec,
                v.overrides,
            )
            for v in out
        ]
    return out


def collect_variant(v: Variant, store: str | None = None) -> dict:
    ld = load(v.spec, v.overrides, store)
    plan = make_plan(ld.graph, ld.store)
    rep = report.collect_loaded(ld, plan)
    seconds: dict[int, float] = {}
    for e in plan:
        if e.status == "cached":
            i = ld.graph.nodes[e.node].iteration or 0
            took = ((e.manifest or {}).get("timings") or {}).get("seconds") or 0.0
            seconds[i] = seconds.get(i, 0.0) + took
    for entry in rep["iterations"]:
        entry["seconds"] = round(seconds.get(entry["iteration"], 0.0), 1)
        entry["variant"] = v.label
    return {
        "label": v.label,
        "spec": v.spec,
        "name": rep["spec"],
        "overrides": list(v.overrides),
        "metrics": rep["metrics"],
        "axis": rep["axis"],
        "iterations": rep["iterations"],
        "seconds": round(sum(seconds.values()), 1),
        "keys": {e.node: e.key for e in plan},
        "not_computed": [e.node for e in plan if e.status != "cached"],
        "command": v.command(),
    }


def collect(
    specs: Sequence[str],
    overrides: Sequence[str] = (),
    sweeps: Sequence[str] = (),
    store: str | None = None,
) -> dict:
    """{"variants": [{label, spec, overrides, metrics, iterations (each with `seconds`: what
    its stages took to compute), seconds (all its stages), keys, not_computed, command}], "stages": {node: [group per
    variant]}}: in `stages`, variants with the same letter have the same key for that node
    (one artifact, computed once); "-" where the variant's key is not known yet, "." where
    the variant has no such node."""
    out: list[dict] = []
    for v in variants(specs, overrides, sweeps):
        with sweep.from_sweep(v.overrides[len(overrides) :]):
            out.append(collect_variant(v, store))
    nodes = list(dict.fromkeys(n for v in out for n in v["keys"]))
    stages = {}
    for node in nodes:
        letters: dict[str, str] = {}
        row = []
        for got in out:
            key = got["keys"].get(node, ".")
            if key in (None, "."):
                row.append(key or "-")
                continue
            letters.setdefault(key, chr(ord("A") + len(letters) % 26))
            row.append(letters[key])
        stages[node] = row
    return {"variants": out, "stages": stages}


def _merged(data: dict) -> dict:
    metrics: dict = {}
    for v in data["variants"]:
        metrics.update({k: m for k, m in v["metrics"].items() if k not in metrics})
    its = sorted(
        (e for v in data["variants"] for e in v["iterations"]),
        key=lambda e: e["iteration"],  # stable: the variants' order within an iteration
    )
    return {"metrics": metrics, "iterations": its, "not_computed": []}


def _headline(data: dict) -> str | None:
    return next((e["headline"] for v in data["variants"] for e in v["iterations"]), None)


def pivot(data: dict, where: str = "all") -> list[str]:
    """The headline score per variant (rows) and iteration (columns), for the whole or one
    slice, with its 95% interval."""
    top = _headline(data)
    if top is None:
        return []
    its = sorted({e["iteration"] for v in data["variants"] for e in v["iterations"]})
    m = Metric(**_merged(data)["metrics"][top])
    rows = [[f"{m.label} [{where}]"] + [f"it {i}" for i in its]]
    for v in data["variants"]:
        by = {e["iteration"]: e for e in v["iterations"]}
        cells = [v["label"]]
        for i in its:
            e = by.get(i)
            if e is None:
                cells.append("-")
            elif where == "all":
                cells.append(report.score_text(e[top], e["ci95"], percent=m.percent))
            else:
                cells.append(
                    report.score_text(
                        e["by_slice"].get(where), e["by_slice_ci95"].get(where), percent=m.percent
                    )
                )
        rows.append(cells)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return [
        "  ".join(f"{c:<{w}}" if j == 0 else f"{c:>{w}}" for j, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]


def table(data: dict, where: str = "all") -> str:
    merged = _merged(data)
    lines = pivot(data, where)
    if merged["iterations"]:
        cols: list[tuple[str, Callable[[dict], str]]] = (
            [("iter", lambda e: str(e["iteration"])), ("variant", lambda e: e["variant"])]
            + report.columns(merged)
            + [("time", lambda e: _secs(e["seconds"]))]
        )
        rows = [[h for h, _ in cols]] + [[c(e) for _, c in cols] for e in merged["iterations"]]
        widths = [max(len(r[c]) for r in rows) for c in range(len(cols))]
        lines += [""] + [
            "  ".join(
                f"{c:<{w}}" if j == 1 else f"{c:>{w}}" for j, (c, w) in enumerate(zip(r, widths))
            )
            for r in rows
        ]
        lines += report.notes(merged)
        lines.append("time: seconds the iteration's stages took when they were computed")
        lines.append(
            "all stages: "
            + "; ".join(f"{v['label']} {_secs(v['seconds'])}" for v in data["variants"])
        )
    lines += [""] + shared(data)
    for v in data["variants"]:
        if v["not_computed"]:
            lines.append(
                f"{v['label']}: {len(v['not_computed'])} stages not computed "
                f"({_nodes(v['not_computed'])}); to compute them: {v['command']}"
            )
    return "\n".join(lines).strip("\n")


def _secs(s: float) -> str:
    return f"{s:.{0 if s >= 10 else 1}f}s"


def _nodes(ids: list[str]) -> str:
    """`samples@1, samples@2, train@1` -> `samples@1-2, train@1`."""
    by: dict[str, list[str]] = {}
    for node in ids:
        stage, _, i = node.partition("@")
        by.setdefault(stage, []).append(i)
    parts = []
    for stage, its in by.items():
        nums = [int(i) for i in its if i]
        if not nums:
            parts.append(stage)
        elif nums == list(range(nums[0], nums[-1] + 1)) and len(nums) > 1:
            parts.append(f"{stage}@{nums[0]}-{nums[-1]}")
        else:
            parts.append(", ".join(f"{stage}@{i}" for i in nums))
    return ", ".join(parts)


def shared(data: dict) -> list[str]:
    """Which stages the variants share: those with one key for all, then a row per stage
    that differs, a letter per variant (same letter, same key: one artifact)."""
    labels = [v["label"] for v in data["variants"]]
    if len(labels) < 2:
        return []
    same = [n for n, row in data["stages"].items() if set(row) == {"A"}]
    lines = [f"shared by all variants (same key): {_nodes(same) or 'none'}"]
    differ = {n: row for n, row in data["stages"].items() if n not in same}
    if differ:
        width = max(len(n) for n in differ)
        lines.append(
            "stages that differ (same letter, same key; '-' key not known until its inputs "
            "are computed, '.' no such stage):"
        )
        lines.append(f"  {'':<{width}}  " + "  ".join(f"{j + 1}" for j in range(len(labels))))
        lines += [f"  {n:<{width}}  " + "  ".join(row) for n, row in differ.items()]
        lines += [f"  {j + 1}: {label}" for j, label in enumerate(labels)]
    return lines


def plot(data: dict, path: Path, where: str | None = None):
    """One panel per variant: the headline per iteration, each slice and the whole, with
    95% intervals as error bars; `where` draws that slice alone, all variants on one panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = _headline(data)
    runs = data["variants"]
    merged = _merged(data)
    axis = next((v["axis"] for v in runs), None) or top or "score"
    if where:
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
        xs_all: set[int] = set()
        for j, v in enumerate(runs):
            its = v["iterations"]
            values = [e[top] if where == "all" else e["by_slice"].get(where) for e in its]
            cis = [e["ci95"] if where == "all" else e["by_slice_ci95"].get(where) for e in its]
            ys, err = report.bars(values, cis)
            xs = [e["iteration"] for e in its]
            xs_all.update(xs)
            shift = 0.04 * (j - (len(runs) - 1) / 2)  # the variants' bars side by side
            ax.errorbar(
                [x + shift for x in xs], ys, yerr=err, marker="o", capsize=3, label=v["label"]
            )
        ax.set_xticks(sorted(xs_all))
        ax.set_ylim(-2, 102)
        ax.set_title(f"{axis} [{where}]")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{axis} (%, 95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    else:
        fig, axes = plt.subplots(
            1, len(runs), figsize=(4.2 * len(runs), 3.8), dpi=110, sharey=True, squeeze=False
        )
        m = Metric(**merged["metrics"][top]) if top else None
        for ax, v in zip(axes[0], runs):
            its = v["iterations"]
            xs = [e["iteration"] for e in its]
            for s in report.slices_of(m, [e["by_slice"] for e in its]) if m else []:
                ys, err = report.bars(
                    [e["by_slice"].get(s) for e in its], [e["by_slice_ci95"].get(s) for e in its]
                )
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=2, label=s)
            if top:
                ys, err = report.bars([e[top] for e in its], [e["ci95"] for e in its])
                ax.errorbar(
                    xs, ys, yerr=err, color="black", lw=2.5, marker="s", capsize=3, label="all"
                )
            ax.set_title(v["label"], fontsize=9)
            ax.set_xlabel("iteration")
            ax.set_xticks(xs)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(f"{axis} (%, 95% CI)")
        axes[0][-1].legend(title="slice", fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
