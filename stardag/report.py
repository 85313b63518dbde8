"""`stardag report`: a metrics table per iteration, from the stages that output `metrics`
datasets (columns kind, slice, value, n). The loop's metrics stage gives iterations 1..N; a
metrics stage outside the loop (the model before any training) gives iteration 0."""

from __future__ import annotations

from pathlib import Path

from .api import Loaded, load
from .errors import SpecError
from .planner import make_plan

METRICS = "metrics"


def _metrics_stages(ld: Loaded) -> tuple[str | None, str | None]:
    top, loop = [], []
    for node in ld.graph.nodes.values():
        if METRICS in node.op.outputs:
            (loop if node.iteration else top).append(node.stage)
    loop = list(dict.fromkeys(loop))
    if not loop and not top:
        raise SpecError("no stage of this spec outputs `metrics` (an evaluate stage)",
                        str(ld.graph.loaded.path))
    return (top[0] if len(top) == 1 else None), (loop[0] if loop else None)


def collect(spec_path, overrides=(), store=None, stage: str | None = None,
            base: str | None = None) -> dict:
    """{"iterations": [{"iteration", "accuracy", "by_slice", "train_used", "faithful"}]}"""
    ld = load(spec_path, overrides, store)
    default_base, default_stage = _metrics_stages(ld)
    stage, base = stage or default_stage, base or default_base
    nodes = []
    if base:
        nodes.append((0, base))
    if stage:
        nodes += [(n.iteration, n.id) for n in ld.graph.nodes.values()
                  if n.stage == stage and n.iteration]
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
        entry = {"iteration": i, "accuracy": None, "by_slice": {}, "train_used": {}, "faithful": {}}
        for r in rows:
            if r["kind"] == "accuracy" and r["slice"] == "all":
                entry["accuracy"] = r["value"]
            elif r["kind"] == "accuracy":
                entry["by_slice"][r["slice"]] = r["value"]
            elif r["kind"] in ("train_used", "faithful"):
                entry[r["kind"]][r["slice"]] = r["value"]
        iterations.append(entry)
    return {"spec": ld.graph.name, "iterations": iterations, "not_computed": missing}


def table(report: dict) -> str:
    its = report["iterations"]
    slices = sorted({s for e in its for s in e["by_slice"]}, key=lambda s: (len(s), s))
    head = ["iter", "accuracy"] + [f"acc[{s}]" for s in slices] + [
        "used:gen", "used:rat", "faithful:gen", "faithful:rat"]
    lines = ["  ".join(f"{h:>12}" for h in head)]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"
    for e in its:
        cells = [str(e["iteration"]), pct(e["accuracy"])] + [pct(e["by_slice"].get(s)) for s in slices]
        cells += [pct(e["train_used"].get("generation")), pct(e["train_used"].get("rationalization")),
                  pct(e["faithful"].get("generation")), pct(e["faithful"].get("rationalization"))]
        lines.append("  ".join(f"{c:>12}" for c in cells))
    if report["not_computed"]:
        lines.append(f"(not computed yet: {', '.join(report['not_computed'])})")
    return "\n".join(lines)


def plot(report: dict, path: Path):
    """Held-out accuracy per iteration, one line per slice and one for all (Figure 4 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = report["iterations"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    slices = sorted({s for e in its for s in e["by_slice"]}, key=lambda s: (len(s), s))
    xs = [e["iteration"] for e in its]
    for s in slices:
        ax.plot(xs, [100 * e["by_slice"].get(s, float("nan")) for e in its], marker="o", label=s)
    ax.plot(xs, [100 * (e["accuracy"] or 0) for e in its], color="black", linewidth=2.5,
            marker="s", label="all")
    ax.set_xlabel("iteration (0 = before training)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.set_title(report["spec"])
    ax.legend(title="slice", fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
