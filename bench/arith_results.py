"""Runs the arithmetic STaR pipeline, its ablation and its variants into one store, over
seeds, then compares them with `stardag compare`: docs/results-arithmetic.md's tables,
docs/star-arithmetic.png and docs/arith-results.json come from here.

    python bench/arith_results.py [--seeds 0,1,2] [--variant-seeds 0] [--store DIR]
        [--set K=V]... [--out docs/arith-results.json] [--plot docs/star-arithmetic.png]

The contrast (pipelines/star.yaml and pipelines/star_no_rationalization.yaml) runs at every
seed of `--seeds`; the other variants (temperature sampling, the step verifier) at each of
`--variant-seeds`. A seed is the base model's (`stages.base.params.seed`: its initial
weights and its pretraining corpus) and the loop's training seed; seed 0 is the specs' own,
so its runs are the ones `stardag run pipelines/star.yaml` makes. The same by hand, per seed:

    stardag run pipelines/star.yaml --set stages.base.params.seed=1 \\
        --set loop.stages.train.params.seed=1
    stardag compare pipelines/star.yaml pipelines/star_no_rationalization.yaml \\
        --set stages.base.params.seed=1 --set loop.stages.train.params.seed=1 --slice 5

Every run's wall time is recorded: the first one (seed 0 of the default pipeline, on an
empty store) is the first-run time the docs quote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONTRAST = ["pipelines/star.yaml", "pipelines/star_no_rationalization.yaml"]
VARIANTS = ["pipelines/star_temperature.yaml", "pipelines/star_steps.yaml"]


def seeded(seed: int) -> list[str]:
    return [f"stages.base.params.seed={seed}", f"loop.stages.train.params.seed={seed}"]


def seeds_of(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def summary(per_seed: dict[int, dict]) -> dict:
    """{label: {iteration: {slice or "all": {"mean", "min", "max", "seeds": [...]}}}} over
    the seeds each variant ran at."""
    out: dict = {}
    for data in per_seed.values():
        for v in data["variants"]:
            name = Path(v["spec"]).stem
            for e in v["iterations"]:
                cell = out.setdefault(name, {}).setdefault(str(e["iteration"]), {})
                values = {"all": e["accuracy"], **e["by_slice"]}
                for k, got in values.items():
                    cell.setdefault(k, {"seeds": []})["seeds"].append(got)
                for source, share in (e.get("faithful") or {}).items():
                    cell.setdefault(f"faithful:{source}", {"seeds": []})["seeds"].append(share)
    for cells in out.values():
        for cell in cells.values():
            for entry in cell.values():
                xs = entry["seeds"]
                entry.update(mean=statistics.fmean(xs), min=min(xs), max=max(xs))
    return out


def _slices(cell: dict) -> list[str]:
    """An iteration's accuracy slices (the lengths, then "all"), without the faithful shares."""
    return sorted((k for k in cell if not k.startswith("faithful")), key=lambda s: (s == "all", s))


def _titled(name: str, cells: dict) -> str:
    """The variant's name with the number of seeds it ran at."""
    seeds = len(next(iter(cells.values()))["all"]["seeds"])
    return f"{name} ({seeds} seed{'s' if seeds > 1 else ''})"


def table(summ: dict) -> str:
    """Per variant and iteration: each length's and the whole's accuracy, mean over the
    seeds with the lowest and highest, and the faithful share of the rationalized examples."""
    lines = []
    for name, cells in summ.items():
        lines.append(f"{_titled(name, cells)}: mean [min, max] %")
        slices = _slices(next(iter(cells.values())))
        lines.append("  iter  " + "  ".join(f"{s:>17}" for s in slices) + "  faithful:rat")
        for it, cell in sorted(cells.items(), key=lambda kv: int(kv[0])):
            row = [
                f"{100 * cell[s]['mean']:5.1f} [{100 * cell[s]['min']:4.1f},{100 * cell[s]['max']:5.1f}]"
                for s in slices
            ]
            f = cell.get("faithful:rationalization")
            faithful = f"{100 * f['mean']:5.1f}" if f else "    -"
            lines.append(f"  {it:>4}  " + "  ".join(f"{r:>17}" for r in row) + f"  {faithful}")
        lines.append("")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _ci(x: float, ci: list[float] | None) -> str:
    return _pct(x) + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def markdown(summ: dict, per_seed: dict) -> str:
    """The tables of docs/results-arithmetic.md, from what `main` collected."""
    out = []
    contrast = [Path(s).stem for s in CONTRAST if Path(s).stem in summ]
    last = str(max(int(i) for i in summ[contrast[0]]))
    out.append("### The contrast over seeds (mean [lowest, highest] of the seeds)\n")
    head = ["iteration"] + [f"{n}: {k}" for n in contrast for k in ("4 digits", "5 digits", "all")]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for it in sorted(summ[contrast[0]], key=int):
        row = [it]
        for n in contrast:
            for k in ("4", "5", "all"):
                c = summ[n][it][k]
                row.append(f"{_pct(c['mean'])} [{100 * c['min']:.1f}, {100 * c['max']:.1f}]")
        out.append("| " + " | ".join(row) + " |")
    out.append("\n### Each seed after the last iteration\n")
    out.append(
        "| seed | "
        + " | ".join(f"{n}: 5 digits" for n in contrast)
        + " | gap (points) | "
        + " | ".join(f"{n}: all" for n in contrast)
        + " |"
    )
    out.append("|" + "---|" * (2 * len(contrast) + 2))
    for seed, data in sorted(per_seed.items(), key=lambda kv: int(kv[0])):
        got = {Path(v["spec"]).stem: v["iterations"][-1] for v in data["variants"]}
        if not all(n in got for n in contrast):
            continue
        fives = [got[n]["by_slice"]["5"] for n in contrast]
        cells = [_ci(got[n]["by_slice"]["5"], got[n]["by_slice_ci95"]["5"]) for n in contrast]
        alls = [_ci(got[n]["accuracy"], got[n]["ci95"]) for n in contrast]
        gap = f"{100 * (fives[0] - fives[-1]):+.1f}"
        out.append(f"| {seed} | " + " | ".join(cells) + f" | {gap} | " + " | ".join(alls) + " |")
    out.append(f"\n### Every variant at seed 0, iteration {last} (95% Wilson intervals)\n")
    zero = per_seed.get("0") or {"variants": []}
    slices = sorted({s for v in zero["variants"] for s in v["iterations"][-1]["by_slice"]}, key=int)
    out.append("| variant | all | " + " | ".join(f"{s} digits" for s in slices) + " |")
    out.append("|" + "---|" * (len(slices) + 2))
    for v in zero["variants"]:
        e = v["iterations"][-1]
        row = [f"`{Path(v['spec']).name}`", _ci(e["accuracy"], e["ci95"])]
        row += [_ci(e["by_slice"][s], e["by_slice_ci95"][s]) for s in slices]
        out.append("| " + " | ".join(row) + " |")
    out.append("\n### Rationalization and faithfulness per iteration (seed 0)\n")
    out.append(
        "| variant | iteration | used: generation | used: rationalization "
        "| faithful: generated | faithful: rationalized |"
    )
    out.append("|---|---|---|---|---|---|")
    for v in zero["variants"]:
        for e in v["iterations"][1:]:
            used = e.get("train_used") or {}
            faithful = e.get("faithful") or {}
            out.append(
                f"| {Path(v['spec']).stem} | {e['iteration']} | {_pct(used.get('generation'))} "
                f"| {_pct(used.get('rationalization'))} | {_pct(faithful.get('generation'))} "
                f"| {_pct(faithful.get('rationalization'))} |"
            )
    return "\n".join(out) + "\n"


def plot(summ: dict, path: Path, names: list[str]):
    """One panel per variant: each length's accuracy per iteration, the mean over seeds
    with the seeds' range as a band, the whole in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(names), figsize=(4.4 * len(names), 3.9), dpi=110, sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], names):
        cells = summ[name]
        its = sorted(cells, key=int)
        xs = [int(i) for i in its]
        for s in _slices(cells[its[0]]):
            mean = [100 * cells[i][s]["mean"] for i in its]
            lo = [100 * cells[i][s]["min"] for i in its]
            hi = [100 * cells[i][s]["max"] for i in its]
            style = {"color": "black", "lw": 2.5} if s == "all" else {}
            line = ax.plot(xs, mean, marker="o", label=s, **style)[0]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_title(_titled(name, cells), fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_xticks(xs)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out accuracy (%): mean, band = seeds' range")
    axes[0][-1].legend(title="digits", fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    import stardag
    from stardag import compare

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the contrast")
    ap.add_argument("--variant-seeds", default="0", help="seeds of the other variants")
    ap.add_argument("--store", default=str(ROOT / "pipelines" / ".stardag"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--slice", default="5", help="the slice `stardag compare` shows first")
    ap.add_argument("--out", default=str(ROOT / "docs" / "arith-results.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "star-arithmetic.png"))
    ap.add_argument(
        "--tables",
        action="store_true",
        help="print the markdown tables of an earlier run's --out file, and run nothing",
    )
    args = ap.parse_args()
    if args.tables:
        saved = json.loads(Path(args.out).read_text())
        print(markdown(saved["summary"], saved["per_seed"]))
        return
    plan: dict[int, list[str]] = {}
    for seed in seeds_of(args.seeds):
        plan.setdefault(seed, []).extend(CONTRAST)
    for seed in seeds_of(args.variant_seeds):
        plan.setdefault(seed, []).extend(VARIANTS)
    runs, per_seed = [], {}
    for seed, specs in plan.items():
        overrides = [*args.overrides, *seeded(seed)]
        for spec in specs:
            t0 = time.perf_counter()
            run = stardag.run(str(ROOT / spec), overrides=overrides, store=args.store)
            wall = time.perf_counter() - t0
            runs.append(
                {
                    "spec": spec,
                    "seed": seed,
                    "wall_s": round(wall, 1),
                    "computed": len(run.computed()),
                    "cached": len(run.cached()),
                }
            )
            print(f"== {spec} seed {seed}: {wall:.0f}s, {len(run.computed())} computed")
        per_seed[seed] = compare.collect(
            [str(ROOT / s) for s in specs], overrides, store=args.store
        )
        print(f"-- seed {seed}")
        print(compare.table(per_seed[seed], args.slice))
    summ = summary(per_seed)
    print(table(summ))
    print(markdown(summ, {str(k): v for k, v in per_seed.items()}))
    for data in per_seed.values():  # the training curves are in the store; not repeated here
        for v in data["variants"]:
            for e in v["iterations"]:
                e.pop("training", None)
    out = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs ({platform.machine()}), "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "summary": summ,
        "per_seed": {str(k): v for k, v in per_seed.items()},
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    plot(summ, Path(args.plot), [Path(s).stem for s in CONTRAST + VARIANTS if Path(s).stem in summ])


if __name__ == "__main__":
    main()
