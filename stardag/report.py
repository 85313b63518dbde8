"""`stardag report`: a metrics table per iteration, from the stages that output `metrics`
datasets (columns kind, slice, value, n). The loop's metrics stage gives iterations 1..N; a
metrics stage outside the loop (the model before any training) gives iteration 0. Every
accuracy comes with its n and a 95% Wilson score interval."""

from __future__ import annotations

import math
from pathlib import Path

from .api import Loaded, load
from .errors import SpecError
from .planner import make_plan

METRICS = "metrics"
TRAINING_LOG = "training_log.json"
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(share: float, n: int, z: float = Z95) -> list[float] | None:
    """The Wilson score interval [low, high] of a proportion `share` of `n` trials; None
    when n is 0. Unlike the normal approximation it stays inside [0, 1] and is not empty at
    0 or n successes (Wilson 1927; Brown, Cai and DasGupta 2001)."""
    if n <= 0:
        return None
    k = round(share * n)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exactly 0 and 1 at 0 and n successes, where rounding would leave the point outside
    return [0.0 if k == 0 else center - half, 1.0 if k == n else center + half]


def _metrics_stages(ld: Loaded) -> tuple[str | None, str | None]:
    top, loop = [], []
    for node in ld.graph.nodes.values():
        if METRICS in node.op.outputs:
            (loop if node.iteration else top).append(node.stage)
    loop = list(dict.fromkeys(loop))
    if not loop and not top:
        raise SpecError(
            "no stage of this spec outputs `metrics` (an evaluate stage)", str(ld.graph.loaded.path)
        )
    return (top[0] if len(top) == 1 else None), (loop[0] if loop else None)


def collect(
    spec_path, overrides=(), store=None, stage: str | None = None, base: str | None = None
) -> dict:
    """{"iterations": [{"iteration", "accuracy", "n", "ci95", "by_slice", ..., "training"}]}
    (see `entry_of`; `training`: that iteration's training log, [{step, loss, lr}])"""
    ld = load(spec_path, overrides, store)
    default_base, default_stage = _metrics_stages(ld)
    stage, base = stage or default_stage, base or default_base
    nodes = []
    if base:
        nodes.append((0, base))
    if stage:
        nodes += [
            (n.iteration, n.id) for n in ld.graph.nodes.values() if n.stage == stage and n.iteration
        ]
    cached = {e.node: e.manifest for e in make_plan(ld.graph, ld.store) if e.status == "cached"}
    iterations, missing = [], []
    for i, node_id in nodes:
        if node_id not in ld.graph.nodes:
            raise SpecError(f"no stage {node_id!r} in this spec", str(ld.graph.loaded.path))
        manifest = cached.get(node_id)
        if manifest is None:
            missing.append(node_id)
            continue
        rows = ld.store.read_table(manifest["key"], METRICS).to_pylist()
        iterations.append(entry_of(i, rows))
    curves = _training_logs(ld, cached)
    for entry in iterations:
        entry["training"] = curves.get(entry["iteration"], [])
    return {"spec": ld.graph.name, "iterations": iterations, "not_computed": missing}


def _training_logs(ld: Loaded, cached: dict) -> dict[int, list[dict]]:
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


def entry_of(iteration: int, rows: list[dict]) -> dict:
    """One iteration's report from its metrics rows: accuracy with n and 95% interval
    (`ci95`), the same per slice, the training data used, faithful shares, the share of
    held-out completions cut off at the token limit, and where the held-out problems came
    from (`heldout`: {description: n})."""
    entry = {
        "iteration": iteration,
        "accuracy": None,
        "n": None,
        "ci95": None,
        "by_slice": {},
        "by_slice_n": {},
        "by_slice_ci95": {},
        "train_used": {},
        "faithful": {},
        "truncated": None,
        "heldout": {},
    }
    for r in rows:
        if r["kind"] == "accuracy" and r["slice"] == "all":
            entry.update(accuracy=r["value"], n=r["n"], ci95=wilson(r["value"], r["n"]))
        elif r["kind"] == "accuracy":
            entry["by_slice"][r["slice"]] = r["value"]
            entry["by_slice_n"][r["slice"]] = r["n"]
            entry["by_slice_ci95"][r["slice"]] = wilson(r["value"], r["n"])
        elif r["kind"] in ("train_used", "faithful"):
            entry[r["kind"]][r["slice"]] = r["value"]
        elif r["kind"] == "truncated":
            entry["truncated"] = r["value"]
        elif r["kind"] == "heldout":
            entry["heldout"][r["slice"]] = r["n"]
    return entry


def table(report: dict) -> str:
    its = report["iterations"]
    slices = sorted({s for e in its for s in e["by_slice"]}, key=lambda s: (len(s), s))
    head = (
        ["iter", "n", "accuracy (95% CI)"]
        + [f"acc[{s}] (95% CI, n)" for s in slices]
        + ["truncated", "used:gen", "used:rat", "faithful:gen", "faithful:rat"]
    )

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    def acc(v, ci, n=None):
        if v is None:
            return "-"
        inside = f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}" + (f", n={n}" if n is not None else "")
        return f"{pct(v)} ({inside})"

    rows = [head]
    for e in its:
        cells = [
            str(e["iteration"]),
            "-" if e["n"] is None else str(e["n"]),
            acc(e["accuracy"], e["ci95"]),
        ]
        cells += [
            acc(e["by_slice"].get(s), e["by_slice_ci95"].get(s), e["by_slice_n"].get(s))
            for s in slices
        ]
        cells += [
            pct(e["truncated"]),
            pct(e["train_used"].get("generation")),
            pct(e["train_used"].get("rationalization")),
            pct(e["faithful"].get("generation")),
            pct(e["faithful"].get("rationalization")),
        ]
        rows.append(cells)
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    lines = ["  ".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in rows]
    sources = sorted({f"{where} (n={n})" for e in its for where, n in e["heldout"].items()})
    if sources:
        lines.append(f"held-out problems: {'; '.join(sources)}")
    if report["not_computed"]:
        lines.append(f"(not computed yet: {', '.join(report['not_computed'])})")
    return "\n".join(lines)


def plot(report: dict, path: Path):
    """Held-out accuracy per iteration, one line per slice and one for all (Figure 4 style),
    each point with its 95% interval as an error bar; beside it, where the loop's training
    kept a log, the training loss per step, one curve per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = report["iterations"]
    curves = [e for e in its if e.get("training")]
    fig, axes = plt.subplots(
        1, 2 if curves else 1, figsize=(12 if curves else 7, 4.2), dpi=120, squeeze=False
    )
    ax = axes[0][0]
    slices = sorted({s for e in its for s in e["by_slice"]}, key=lambda s: (len(s), s))
    xs = [e["iteration"] for e in its]

    def bars(values, intervals):
        """Accuracy in % and its 95% interval as errorbar's (below, above) distances."""
        ys = [float("nan") if v is None else 100 * v for v in values]
        # never negative, as errorbar requires, whatever the rounding
        lows = [
            0.0 if ci is None or y != y else max(0.0, y - 100 * ci[0])
            for y, ci in zip(ys, intervals)
        ]
        highs = [
            0.0 if ci is None or y != y else max(0.0, 100 * ci[1] - y)
            for y, ci in zip(ys, intervals)
        ]
        return ys, [lows, highs]

    for j, s in enumerate(slices):
        ys, err = bars(
            [e["by_slice"].get(s) for e in its], [e["by_slice_ci95"].get(s) for e in its]
        )
        shift = 0.05 * (j + 1)  # each slice's bars beside those of `all`, not over them
        ax.errorbar([x + shift for x in xs], ys, yerr=err, marker="o", capsize=3, label=s)
    ys, err = bars([e["accuracy"] for e in its], [e["ci95"] for e in its])
    ax.errorbar(xs, ys, yerr=err, color="black", linewidth=2.5, marker="s", capsize=4, label="all")
    ax.set_xlabel("iteration (0 = before training)")
    ax.set_ylabel("held-out accuracy (%, 95% CI)")
    ax.set_ylim(-2, 102)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.set_title(report["spec"])
    ax.legend(title="slice", fontsize=8, loc="best")
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
        loss_ax.set_title("fine-tuning")
        loss_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
