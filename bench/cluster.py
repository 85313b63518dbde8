"""The shared store and resumable stages, measured on this machine (docs/benchmarks.md):

1. the object-store cache against the local one: the CI-sized default pipeline
   (tests/test_pipeline_e2e.py's size) run in a fresh store, then fully cached, with the
   store on local disk and on an S3-compatible server on loopback (moto's server mode;
   a real S3 bucket adds network latency per request on top);
2. the work a kill in the middle of sampling loses: `sample` on a small model, the run
   SIGKILLed at random moments after a shard lands, resumed each time; per kill, the time
   between the last committed shard and the kill, in shards; and the final artifact's
   content hash against an uninterrupted run's.

    python bench/cluster.py [--kills 5] [--skip-pipeline] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from invalidation import SMALL  # noqa: E402
from kill_loop import run_command  # noqa: E402
from test_resume import SPEC as SAMPLE_SPEC  # noqa: E402

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def stardag(spec, *options, store, overrides=(), check=True) -> float:
    cmd = run_command(spec, store, overrides, *options)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - t0


def s3_server():
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    fs = pafs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}",
        scheme="http",
        access_key="bench",
        secret_key="bench",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir("bench")
    return (
        server,
        f"s3://bench/cache?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1",
    )


def pipeline(work: Path) -> dict:
    spec = ROOT / "pipelines" / "star.yaml"
    server, s3 = s3_server()
    out = {}
    try:
        for name, store in (("local", work / "local"), ("s3", s3)):
            first = stardag(spec, store=store, overrides=SMALL)
            cached = statistics.median(
                stardag(spec, store=store, overrides=SMALL) for _ in range(3)
            )
            out[name] = {"first_run_s": round(first, 2), "cached_run_s": round(cached, 3)}
            print(f"{name:>5}: first run {first:.1f} s, cached re-run {cached:.2f} s", flush=True)
    finally:
        server.stop()
    out["ratio_first"] = round(out["s3"]["first_run_s"] / out["local"]["first_run_s"], 3)
    out["ratio_cached"] = round(out["s3"]["cached_run_s"] / out["local"]["cached_run_s"], 3)
    return out


def shard_files(store: Path) -> list[Path]:
    return (
        sorted((store / "partial").rglob("samples-*.parquet"))
        if (store / "partial").exists()
        else []
    )


def content_hash(spec: Path, store: Path) -> str:
    import stardag as sd
    from stardag.store import Store

    entry = next(e for e in sd.plan(spec, overrides=KILL_SIZE, store=store) if e.node == "samples")
    return Store(store).manifest(entry.key)["outputs"]["samples"]["content_hash"]


# the resume test's spec, with more problems and smaller shards: ~1,600 samples in 25 shards
KILL_SIZE = ["stages.problems.params.train_per_digit=400", "stages.samples.params.shard_size=64"]


def kills(work: Path, n: int, seed: int) -> dict:
    spec = work / "resume.yaml"
    spec.write_text(SAMPLE_SPEC)
    base = work / "base"
    stardag(spec, "--until", "prompts", "--executor", "local", store=base, overrides=KILL_SIZE)
    stardag(spec, "--until", "base", "--executor", "local", store=base, overrides=KILL_SIZE)
    whole = work / "whole"
    shutil.copytree(base, whole)
    t_whole = stardag(spec, "--executor", "local", store=whole, overrides=KILL_SIZE)
    expected = content_hash(spec, whole)
    store = work / "killed"
    shutil.copytree(base, store)
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        before = len(shard_files(store))
        proc = subprocess.Popen(
            run_command(spec, store, KILL_SIZE, "--executor", "local"),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while len(shard_files(store)) <= before and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 1.5))
        if proc.poll() is not None:
            break  # finished before the kill: no more kills to make
        proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        proc.wait()
        files = shard_files(store)
        times = sorted(f.stat().st_mtime for f in files)
        interval = statistics.median(b - a for a, b in zip(times, times[1:]))
        lost = (killed_at - times[-1]) / interval
        rows.append(
            {
                "shards_committed": len(files),
                "seconds_since_last_shard": round(killed_at - times[-1], 3),
                "shard_interval_s": round(interval, 3),
                "lost_shards": round(lost, 2),
            }
        )
        print(f"kill: {len(files)} shards committed, lost {lost:.2f} shard(s) of work", flush=True)
    t_resume = stardag(spec, "--executor", "local", store=store, overrides=KILL_SIZE)
    got = content_hash(spec, store)
    return {
        "kills": rows,
        "max_lost_shards": max(r["lost_shards"] for r in rows),
        "uninterrupted_run_s": round(t_whole, 2),
        "final_resume_run_s": round(t_resume, 2),
        "same_content_hash": got == expected,
        "seed": seed,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stardag-cluster-bench-"))
    results = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}"
    }
    try:
        if not args.skip_pipeline:
            results["store"] = pipeline(work)
        results["kill_during_sampling"] = kills(work, args.kills, args.seed)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
