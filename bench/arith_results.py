"""Runs the arithmetic STaR pipeline and its variants into one store, then compares them with
`stardag compare`: docs/results-arithmetic.md's four-variant table and docs/star-arithmetic.png
come from here. The same by hand:

    stardag run pipelines/star.yaml   # ... and each variant
    stardag compare pipelines/star.yaml pipelines/star_no_rationalization.yaml \\
        pipelines/star_steps.yaml pipelines/star_no_rationalization_steps.yaml --slice 5

    python bench/arith_results.py [SPEC...] [--store DIR] [--set K=V]... [--slice 5]
        [--out docs/arith-results.json] [--plot docs/star-arithmetic.png]

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

SPECS = [
    "pipelines/star.yaml",
    "pipelines/star_no_rationalization.yaml",
    "pipelines/star_steps.yaml",
    "pipelines/star_no_rationalization_steps.yaml",
]


def main():
    import stardag
    from stardag import compare

    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="*", default=[str(ROOT / s) for s in SPECS])
    ap.add_argument("--store", default=str(ROOT / "pipelines" / ".stardag"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--slice", default="5", help="the slice the first table shows")
    ap.add_argument("--out", default=str(ROOT / "docs" / "arith-results.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "star-arithmetic.png"))
    args = ap.parse_args()
    runs = {}
    for spec in args.specs:
        t0 = time.perf_counter()
        run = stardag.run(spec, overrides=args.overrides, store=args.store)
        wall = time.perf_counter() - t0
        runs[spec] = {"wall_s": round(wall, 1), "computed": len(run.computed())}
        print(f"== {spec}: {wall:.0f}s, {len(run.computed())} computed, {len(run.cached())} cached")
    data = compare.collect(args.specs, args.overrides, store=args.store)
    print(compare.table(data, args.slice))
    data["machine"] = (
        f"{platform.node()}: {os.cpu_count()} CPUs ({platform.machine()}), "
        f"Python {platform.python_version()}"
    )
    data["runs"] = runs
    Path(args.out).write_text(json.dumps(data, indent=1))
    compare.plot(data, Path(args.plot))


if __name__ == "__main__":
    main()
