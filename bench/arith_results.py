"""Runs the arithmetic STaR pipeline and its three variants (no rationalization, and both with
the step-checking verifier) into one store, and writes their reports side by side:
docs/results-arithmetic.md's tables come from here, docs/star-arithmetic.png is its plot.

    python bench/arith_results.py [--store DIR] [--set K=V]... [--out docs/arith-results.json]

The variants share every upstream artifact with the default pipeline (problems, the
pretrained base model, prompts, the base evaluation), so only their loops are computed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPECS = {
    "rationalization, answer verifier (default)": "star.yaml",
    "no rationalization, answer verifier": "star_no_rationalization.yaml",
    "rationalization, step verifier": "star_steps.yaml",
    "no rationalization, step verifier": "star_no_rationalization_steps.yaml",
}


def main():
    import stardag
    from stardag import report

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=str(ROOT / "pipelines" / ".stardag"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "docs" / "arith-results.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "star-arithmetic.png"))
    args = ap.parse_args()
    results = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs ({platform.machine()}), "
        f"Python {platform.python_version()}",
        "overrides": args.overrides,
        "runs": {},
    }
    for label, spec in SPECS.items():
        path = ROOT / "pipelines" / spec
        t0 = time.perf_counter()
        run = stardag.run(path, overrides=args.overrides, store=args.store)
        wall = time.perf_counter() - t0
        data = report.collect(path, args.overrides, args.store)
        results["runs"][label] = {
            "spec": f"pipelines/{spec}",
            "wall_s": round(wall, 1),
            "computed": len(run.computed()),
            "cached": len(run.cached()),
            "iterations": data["iterations"],
        }
        print(
            f"== {label}: {wall:.0f}s, {len(run.computed())} computed, {len(run.cached())} cached"
        )
        print(report.table(data))
        Path(args.out).write_text(json.dumps(results, indent=1))
    plot(results, Path(args.plot))


def plot(results: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.8), dpi=110, sharey=True)
    for ax, (label, run) in zip(axes, runs.items()):
        its = run["iterations"]
        xs = [e["iteration"] for e in its]
        slices = sorted({s for e in its for s in e["by_slice"]}, key=lambda s: (len(s), s))
        for s in slices:
            ax.plot(
                xs,
                [100 * e["by_slice"].get(s, float("nan")) for e in its],
                marker="o",
                label=f"{s} digits",
            )
        ax.plot(
            xs, [100 * e["accuracy"] for e in its], color="black", lw=2.5, marker="s", label="all"
        )
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy (%)")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
