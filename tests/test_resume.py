"""Resumable stages: `sample` commits its samples in shards; a run killed in the middle
(the driver, or the worker running the stage) recomputes only the unfinished shards, and
the artifact it publishes is the one an uninterrupted run publishes (same content hash)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import TESTS, write

from stardag.store import Store

SPEC = """
name: resume
stages:
  problems:
    op: arithmetic
    params: {seed: 0, digits: [3, 4], train_per_digit: 60, heldout_per_digit: 1}
  base:
    op: char_model
    params: {steps: 20, n_layer: 1, n_embd: 32, n_head: 2, n_positions: 96, corpus_size: 500,
             batch_size: 16, warmup: 2, mix: {3: 0.5, 4: 0.5}}
    resources: {cpus: 1}
  prompts:
    op: fewshot_prompt
    inputs: {problems: problems.train}
    params: {template: "{question}\\n", hint_template: "{question}|{hint}\\n"}
  samples:
    op: sample
    inputs: {model: base, prompts: prompts}
    params: {n: 2, temperature: 0.8, max_new_tokens: 60, batch_size: 8, shard_size: 16, seed: 3}
    resources: {cpus: 1}
"""


def stardag(*args, store: Path, **popen):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "stardag.cli", "run", *map(str, args),
                             "--store", str(store)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **popen)


def finish(proc, timeout=300) -> str:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return err


def shards(store: Path) -> list[Path]:
    return sorted((store / "partial").rglob("samples-*.parquet")) if (store / "partial").exists() else []


def samples_hash(spec: Path, store: Path) -> str:
    import stardag as sd

    key = sd.plan(spec, store=store)
    entry = next(e for e in key if e.node == "samples")
    assert entry.status == "cached"
    return Store(store).manifest(entry.key)["outputs"]["samples"]["content_hash"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A store holding everything `samples` needs, and the hash of an uninterrupted run."""
    d = tmp_path_factory.mktemp("resume")
    spec = write(d / "resume.yaml", SPEC)
    base = d / "base-store"
    finish(stardag(spec, "--until", "prompts", "--executor", "local", store=base))
    finish(stardag(spec, "--until", "base", "--executor", "local", store=base))
    whole = d / "whole"
    shutil.copytree(base, whole)
    finish(stardag(spec, "--executor", "local", store=whole))
    return spec, base, samples_hash(spec, whole)


def _until(cond, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_killed_driver_resumes_from_its_committed_shards(prepared, tmp_path):
    spec, base, expected = prepared
    store = tmp_path / "store"
    shutil.copytree(base, store)
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    for attempt in range(2):  # killed twice, at a random moment after a shard lands
        proc = stardag(spec, "--executor", "local", store=store)
        done_before = len(shards(store))
        _until(lambda: len(shards(store)) > done_before or proc.poll() is not None)
        time.sleep(rng.uniform(0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    committed = len(shards(store))
    assert committed >= 2, f"seed {seed}"
    err = finish(stardag(spec, "--executor", "local", store=store))
    assert f"resumed {committed} of 15 shards" in err, f"seed {seed}: {err}"
    assert samples_hash(spec, store) == expected, f"seed {seed}"
    assert shards(store) == []  # dropped once the artifact is published


def _worker_pids(name: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if name in cmd and "ray::" in cmd:
                pids.append(int(p.name))
    return pids


@pytest.mark.ray
def test_a_killed_worker_is_retried_and_resumes_from_its_shards(prepared, tmp_path):
    spec, base, expected = prepared
    store = tmp_path / "store"
    shutil.copytree(base, store)
    proc = stardag(spec, store=store)
    _until(lambda: len(shards(store)) >= 2 or proc.poll() is not None, timeout=240)
    pids = _worker_pids("stardag:samples")
    assert pids, "no Ray worker running the stage"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    err = finish(proc)  # the same run finishes: Ray retried the task, which resumed
    assert "resumed" in err, err
    assert samples_hash(spec, store) == expected
