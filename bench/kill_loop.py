"""kill -9 at random moments, again and again, then check that stardag was never wrong.

The pipeline runs in a fresh store; each run is SIGKILLed after a random delay, and after
every kill every artifact in the store that reads as complete is checked whole (every
file's checksum, every dataset readable). Then a last run finishes the pipeline, and every
stage's output must have the content hash of an uninterrupted run's with the same seeds.

    python bench/kill_loop.py                      # the default pipeline, 20 kills, on Ray
    python bench/kill_loop.py --kills 30 --seed 7 --json out.json

tests/test_kill_loop.py runs the same loop at a size CI affords.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_command(spec, store, overrides=(), *options) -> list[str]:
    """`stardag run` of a spec into a store, quiet, with other options and `--set` overrides."""
    sets = [a for o in overrides for a in ("--set", o)]
    cmd = [sys.executable, "-m", "stardag.cli", "run", str(spec), "--store", str(store), "-q"]
    return [*cmd, *map(str, options), *sets]


def _env():
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        ),
    }


def check_store(store: Path) -> int:
    """Every artifact that reads as complete is whole: each file's checksum, each dataset
    readable as Parquet. Returns how many there are; raises on the first bad one."""
    from stardag.store import Store

    s = Store(store)
    n = 0
    for m in s.artifacts():
        key = m["key"]
        assert s.manifest(key) is not None, f"{key}: manifest present but artifact incomplete"
        s.verify(key, m)
        for name, out in m["outputs"].items():
            if out["kind"] == "dataset":
                s.read_table(key, name)
        n += 1
    return n


def store_events(store: Path) -> set:
    """What a run has visibly done so far: staging directories, shards and checkpoints
    (with their times), published manifests."""
    if not store.exists():
        return set()
    out = set()
    for pattern in ("tmp/*", "objects/*/*/manifest.json", "partial/*/*/*", "partial/*/*/*/*"):
        for p in store.glob(pattern):
            try:
                out.add((str(p), p.stat().st_mtime_ns))
            except OSError:
                pass
    return out


def outputs(spec, store, overrides) -> dict[str, dict]:
    """Every stage's output content hashes, from the store (all must be cached)."""
    import stardag
    from stardag.store import Store

    s = Store(store)
    out = {}
    for e in stardag.plan(spec, overrides=list(overrides), store=store):
        assert e.status == "cached", f"{e.node} is not cached"
        out[e.node] = {k: v["content_hash"] for k, v in s.manifest(e.key)["outputs"].items()}
    return out


def _differ(expected: dict, got: dict, store: str) -> list[str]:
    return sorted(f"{store}:{n}" for n in expected if got.get(n) != expected[n])


def kill_loop(
    spec,
    overrides=(),
    kills: int = 20,
    seed: int = 0,
    executor: str = "ray",
    work: Path | None = None,
    log=print,
) -> dict:
    work = Path(work or tempfile.mkdtemp(prefix="stardag-kill-"))
    env = _env()
    t0 = time.perf_counter()
    ref = subprocess.run(
        run_command(spec, work / "reference", overrides, "--executor", executor),
        env=env,
        capture_output=True,
        text=True,
    )
    t_ref = time.perf_counter() - t0
    if ref.returncode:
        raise RuntimeError(f"the uninterrupted run failed:\n{ref.stderr[-3000:]}")
    log(f"uninterrupted run: {t_ref:.1f} s")
    expected = outputs(spec, work / "reference", overrides)
    rng = random.Random(seed)
    stores = [work / "killed"]
    # Kills follow the store's events, so that every run makes some progress and the kills
    # land everywhere: a staging directory made (a stage running), a shard or checkpoint
    # committed, an artifact published. Each run is killed at once or a random 0-0.5 s
    # after its k-th event (k = 1 or 2), or, about one time in seven, at a random moment of
    # its start-up. A run that finishes before its kill has filled its store: its outputs
    # are checked, and the kills go on in a fresh store until `kills` have landed.
    record, differ = [], []
    attempts = 0
    while sum(not r["finished_first"] for r in record) < kills:
        attempts += 1
        if attempts > 3 * kills:
            raise RuntimeError(
                f"only {sum(not r['finished_first'] for r in record)} of "
                f"{attempts - 1} runs were killed before they finished"
            )
        store = stores[-1]
        k = rng.choice((1, 1, 2))
        early = rng.random() < 0.15
        delay = rng.choice((0.0, rng.uniform(0, 0.05), rng.uniform(0, 0.05), rng.uniform(0, 0.5)))
        before = store_events(store)
        proc = subprocess.Popen(
            run_command(spec, store, overrides, "--executor", executor),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started = time.perf_counter()
        if early:
            deadline = started + rng.uniform(0.2, 3.0)
            while proc.poll() is None and time.perf_counter() < deadline:
                time.sleep(0.01)
        else:
            while proc.poll() is None and len(store_events(store) - before) < k:
                time.sleep(0.01)
            time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and whatever it started
        proc.wait()
        complete = check_store(store) if store.exists() else 0
        at = round(time.perf_counter() - started, 2)
        record.append(
            {
                "killed_after_s": at,
                "events": None if early else k,
                "finished_first": finished,
                "complete_artifacts": complete,
                "store": store.name,
            }
        )
        log(
            f"run {attempts:>2}: "
            + ("finished first" if finished else f"killed after {at:5.2f} s")
            + (" (in start-up)" if early else f" ({k} store events + {delay:.2f} s)")
            + f", {complete} artifacts, all whole"
        )
        if finished:
            if proc.returncode:
                raise RuntimeError(f"run {attempts} failed with status {proc.returncode}")
            differ += _differ(expected, outputs(spec, store, overrides), store.name)
            stores.append(work / f"killed-{len(stores)}")
    final = subprocess.run(
        run_command(spec, stores[-1], overrides, "--executor", executor),
        env=env,
        capture_output=True,
        text=True,
    )
    if final.returncode:
        raise RuntimeError(f"the resumed run failed:\n{final.stderr[-3000:]}")
    got = outputs(spec, stores[-1], overrides)
    differ += _differ(expected, got, stores[-1].name)
    log(
        f"final run: {len(got)} stages; outputs that differ from the uninterrupted run: "
        f"{differ or 'none'}"
    )
    return {
        "kills": sum(not r["finished_first"] for r in record),
        "record": record,
        "runs": attempts,
        "uninterrupted_s": round(t_ref, 2),
        "stages": len(got),
        "differ": differ,
        "seed": seed,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=str(ROOT / "pipelines" / "star.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--executor", default="ray", choices=["ray", "local"])
    ap.add_argument("--json")
    args = ap.parse_args()
    res = kill_loop(args.spec, args.overrides, args.kills, args.seed, args.executor)
    print(json.dumps({k: v for k, v in res.items() if k != "record"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    sys.exit(1 if res["differ"] else 0)


if __name__ == "__main__":
    main()
