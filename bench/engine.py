"""Engine overhead, measured on this machine (see docs/benchmarks.md):

1. a fully cached re-run of a 50-stage chain of trivial operators, as a whole process
   (`stardag run`), against `python -c pass` and an import of the CLI;
2. the engine's cost per re-run stage: a change half-way down the chain re-runs 25 stages;
   (partial - cached) / 25, in-process (`--executor local`) and on Ray (the Ray start and
   stop, measured alone, subtracted);
3. content-hash throughput over a 1 GB Arrow table (ints, floats, strings).

    python bench/engine.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
N = 50


def chain_spec(path: Path):
    lines = ["name: chain50", "stages:", "  s0:", "    op: trivial_ops:Source"]
    for i in range(1, N):
        lines += [f"  s{i}:", "    op: trivial_ops:Inc", f"    inputs: {{table: s{i - 1}}}"]
    path.write_text("\n".join(lines) + "\n")


def wall(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def median(f, repeat):
    return statistics.median(f() for _ in range(repeat))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--hash-gb", type=float, default=1.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stardag-bench-"))
    spec = work / "chain.yaml"
    chain_spec(spec)
    shutil.copy(HERE / "trivial_ops.py", work / "trivial_ops.py")
    env = {**os.environ, "PYTHONPATH": str(work)}
    exe = [sys.executable, "-m", "stardag.cli"]
    results: dict = {"machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
                                f"Python {platform.python_version()}"}

    subprocess.run(exe + ["run", str(spec), "--executor", "local", "-q"], check=True, env=env)
    results["python_startup_s"] = median(lambda: wall([sys.executable, "-c", "pass"]), args.repeat)
    results["cli_help_s"] = median(lambda: wall(exe + ["--help"], env), args.repeat)
    results["cached_run_50_s"] = median(lambda: wall(exe + ["run", str(spec), "-q"], env), args.repeat)
    results["cached_plan_50_s"] = median(lambda: wall(exe + ["plan", str(spec)], env), args.repeat)

    half = N // 2

    def partial(executor: str, bump=[0]):
        bump[0] += 1
        return wall(exe + ["run", str(spec), "-q", "--executor", executor,
                           "--set", f"stages.s{half}.params.add={1 + bump[0]}"], env)
    rerun = N - half
    local = median(lambda: partial("local"), args.repeat)
    results["partial_local_s"] = local
    results["per_stage_local_ms"] = 1000 * (local - results["cached_run_50_s"]) / rerun
    ray_start_stop = median(lambda: wall([sys.executable, "-c",
                                          "import ray; ray.init(include_dashboard=True, dashboard_host='127.0.0.1', logging_level='WARNING'); ray.shutdown()"], env), 2)
    on_ray = median(lambda: partial("ray"), max(2, args.repeat // 2))
    results["ray_start_stop_s"] = ray_start_stop
    results["partial_ray_s"] = on_ray
    results["per_stage_ray_ms"] = 1000 * (on_ray - ray_start_stop - results["cached_run_50_s"]) / rerun

    results.update(hash_throughput(args.hash_gb))
    shutil.rmtree(work, ignore_errors=True)
    for k, v in results.items():
        print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def hash_throughput(gb: float) -> dict:
    import numpy as np
    import pyarrow as pa

    from stardag.content_hash import table_hash

    rows = int(gb * 1e9 / 40)  # int64 + float64 + a ~16-byte string with 8-byte offsets
    rng = np.random.default_rng(0)
    words = pa.array([f"rationale-{i:06d}" for i in range(1000)])
    table = pa.table({"i": np.arange(rows, dtype=np.int64), "f": rng.random(rows),
                      "s": words.take(pa.array(rng.integers(0, 1000, rows))).cast(pa.large_string())})
    nbytes = table.nbytes
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        table_hash(table)
        times.append(time.perf_counter() - t0)
    return {"hash_table_gb": nbytes / 1e9, "hash_gb_per_s": nbytes / 1e9 / min(times)}


if __name__ == "__main__":
    main()
