"""Engine overhead, measured on this machine (see docs/benchmarks.md):

1. a fully cached re-run of a 50-stage chain of trivial operators, as a whole process
   (`stardag run`), against `python -c pass` and an import of the CLI;
2. the engine's cost per re-run stage: a change half-way down the chain re-runs 25 stages;
   (partial - cached) / 25, in-process (`--executor local`) and on Ray (the Ray start and
   stop, measured alone, subtracted);
3. content-hash throughput over a 1 GB Arrow table (ints, floats, strings);
4. a cached `stardag compare` of two variants (a loop of 4 iterations with a metrics table
   per iteration, about the shape of the default pipeline's), as a whole process.

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


VARIANTS = """name: variants
stages:
  s0: {op: trivial_ops:Source}
  score: {op: trivial_ops:Score, inputs: {table: s0}}
loop:
  iterations: 4
  stages:
    s1: {op: trivial_ops:Inc, inputs: {table: {previous: s3, initial: s0}}}
    s2: {op: trivial_ops:Inc, inputs: {table: s1}}
    s3: {op: trivial_ops:Inc, inputs: {table: s2}}
    evaluate: {op: trivial_ops:Score, inputs: {table: s3}}
"""


def compare_specs(work: Path) -> list[str]:
    (work / "a.yaml").write_text(VARIANTS)
    (work / "b.yaml").write_text(
        "extends: a.yaml\nname: variants-b\nloop: {stages: {s2: {params: {add: 2}}}}\n"
    )
    return [str(work / "a.yaml"), str(work / "b.yaml")]


def wall(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def cpu(cmd: list[str], env=None) -> float:
    """CPU seconds (user + system) of the command: on a busy machine, what it would take
    alone, where its wall time also holds the waits for a core."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


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
    results: dict = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    }

    subprocess.run(exe + ["run", str(spec), "--executor", "local", "-q"], check=True, env=env)
    results["python_startup_s"] = median(lambda: wall([sys.executable, "-c", "pass"]), args.repeat)
    results["cli_help_s"] = median(lambda: wall(exe + ["--help"], env), args.repeat)
    results["cached_run_50_s"] = median(
        lambda: wall(exe + ["run", str(spec), "-q"], env), args.repeat
    )
    results["cached_plan_50_s"] = median(lambda: wall(exe + ["plan", str(spec)], env), args.repeat)

    half = N // 2
    rerun = N - half
    # a whole process that re-runs half the chain (imports of pyarrow/polars included)
    results["partial_local_process_s"] = median(
        lambda: wall(
            exe
            + [
                "run",
                str(spec),
                "-q",
                "--executor",
                "local",
                "--set",
                f"stages.s{half}.params.add={time.time_ns() // 1000}",
            ],
            env,
        ),
        args.repeat,
    )
    # the engine's own cost per re-run stage, in a warm process: (partial - cached) / 25
    for executor in ("local", "ray"):
        out = subprocess.run(
            [sys.executable, "-c", PER_STAGE, str(spec), executor, str(args.repeat), str(half)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[f"partial_{executor}_warm_s"] = r["partial"]
        results[f"cached_{executor}_warm_s"] = r["cached"]
        results[f"per_stage_{executor}_ms"] = 1000 * (r["partial"] - r["cached"]) / rerun

    specs = compare_specs(work)
    for one in specs:
        subprocess.run(exe + ["run", one, "--executor", "local", "-q"], check=True, env=env)
    results["cached_compare_2_s"] = median(
        lambda: wall(exe + ["compare", *specs], env), args.repeat
    )
    results["cached_compare_2_cpu_s"] = median(
        lambda: cpu(exe + ["compare", *specs], env), args.repeat
    )

    results.update(hash_throughput(args.hash_gb))
    shutil.rmtree(work, ignore_errors=True)
    for k, v in results.items():
        print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


PER_STAGE = """
import json, sys, time
import stardag
spec, executor, n, half = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if executor == "ray":
    import ray
    ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", logging_level="WARNING")
def go(value, expect):
    t0 = time.perf_counter()
    r = stardag.run(spec, overrides=[f"stages.s{half}.params.add={value}"], executor=executor,
                    progress=False)
    dt = time.perf_counter() - t0
    # values far apart: a chain of "+1" stages would otherwise find its new outputs already
    # stored under other stages' keys (content addressing) and cut off early
    assert len(r.computed()) == expect, (len(r.computed()), expect)
    return dt
rerun = 50 - int(half)
base = 10**7 if executor == "ray" else 0  # the two executors make the same keys
go(base + 10_000, rerun)  # warm: imports, Ray workers
times = sorted(go(base + 10_000 * (i + 2), rerun) for i in range(n))
print(json.dumps({"partial": times[len(times) // 2], "cached": go(base + 20_000, 0)}))
"""


def hash_throughput(gb: float) -> dict:
    import numpy as np
    import pyarrow as pa

    from stardag.content_hash import table_hash

    rows = int(gb * 1e9 / 40)  # int64 + float64 + a ~16-byte string with 8-byte offsets
    rng = np.random.default_rng(0)
    words = pa.array([f"rationale-{i:06d}" for i in range(1000)])
    table = pa.table(
        {
            "i": np.arange(rows, dtype=np.int64),
            "f": rng.random(rows),
            "s": words.take(pa.array(rng.integers(0, 1000, rows))).cast(pa.large_string()),
        }
    )
    nbytes = table.nbytes
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        table_hash(table)
        times.append(time.perf_counter() - t0)
    return {"hash_table_gb": nbytes / 1e9, "hash_gb_per_s": nbytes / 1e9 / min(times)}


if __name__ == "__main__":
    main()
