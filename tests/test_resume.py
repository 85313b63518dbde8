"""Resumable stages: `sample` commits its samples in shards; a run killed in the middle
(the driver, or the worker running the stage) recomputes only the unfinished shards, and
the artifact it publishes is the one an uninterrupted run publishes (same content hash)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import cli_command, cli_env, until, write

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
    return subprocess.Popen(
        cli_command("run", *args, "--store", store),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(proc, timeout=300) -> str:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return err


def shards(store: Path) -> list[Path]:
    return (
        sorted((store / "partial").rglob("samples-*.parquet"))
        if (store / "partial").exists()
        else []
    )


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
    until(cond, timeout, every=0.02)


def test_a_killed_driver_resumes_from_its_committed_shards(prepared, tmp_path):
    spec, base, expected = prepared
    store = tmp_path / "store"
    shutil.copytree(base, store)
    rng = random.Random(0)
    for _ in range(2):  # killed twice, at a random moment after a shard lands
        proc = stardag(spec, "--executor", "local", store=store)
        done_before = len(shards(store))
        _until(lambda p=proc, n=done_before: len(shards(store)) > n or p.poll() is not None)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(rng.uniform(0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    committed = len(shards(store))
    assert committed >= 2
    err = finish(stardag(spec, "--executor", "local", store=store))
    assert f"resumed {committed} of 15 shards" in err, err
    assert samples_hash(spec, store) == expected
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


# --- training ------------------------------------------------------------------------

TRAIN_SPEC = """
name: resume_train
stages:
  problems:
    op: arithmetic
    params: {seed: 0, digits: [2, 3], train_per_digit: 40, heldout_per_digit: 1}
  base:
    op: char_model
    params: {steps: 5, n_layer: 1, n_embd: 32, n_head: 2, n_positions: 96, corpus_size: 200,
             batch_size: 16, warmup: 1, mix: {2: 0.5, 3: 0.5}}
    resources: {cpus: 1}
  examples:
    op: train_ops:GoldExamples
    inputs: {problems: problems.train}
  train:
    op: shard_train
    inputs: {base: base, examples: examples}
    params: {steps: 100, lr: 1.0e-3, warmup: 0, batch_size: 8, max_length: 96,
             checkpoint_every: 25, workers: 2, cpus_per_worker: 1}
"""


def test_in_process_training_resumes_from_its_checkpoint_with_the_same_weights(
    tmp_path, monkeypatch
):
    """trainer: torch: crash right after the checkpoint at step 4 of 6; the resumed run's
    model equals an uninterrupted run's, bit for bit."""
    import numpy as np
    import polars as pl
    from safetensors.numpy import load_file

    from operators import addition, hf_common, tiny_gpt
    from operators import shard_train as st
    from stardag import training
    from stardag.operator import Context, DefaultResources

    hf_common.set_threads(1)
    tok = tiny_gpt.make_tokenizer()
    base = tmp_path / "base"
    hf_common.save(
        tiny_gpt.make_model(tok, n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=0), tok, base
    )
    rows = [(f"p{i}", f"{i}+{i + 3}") for i in range(12)]
    examples = pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "question": [r[1] for r in rows],
            "answer": [str(2 * i + 3) for i in range(12)],
            "prompt": [r[1] + "\n" for r in rows],
            "completion": [addition.scratchpad(i, i + 3) for i in range(12)],
            "source": ["generation"] * 12,
        }
    )

    def train(out: Path, partial: Path):
        params = st.ShardTrain.Params(
            steps=6,
            lr=1e-2,
            warmup=0,
            batch_size=4,
            max_length=64,
            trainer="torch",
            checkpoint_every=2,
            iteration=1,
        )
        out.mkdir(parents=True)
        # what the executor gives: a place under the stage's key for each name
        ctx = Context(
            params,
            "train",
            {"model": out},
            DefaultResources(cpus=1),
            storage=lambda name: (None, str(partial / name)),
        )
        st.ShardTrain().run(ctx, base, examples)
        return load_file(str(out / "model.safetensors"))

    whole = train(tmp_path / "whole", tmp_path / "p1")
    real = training.replace_atomically

    def crash_after_step_4(d, write):
        real(d, write)
        if json.loads((d / "state-rank0.json").read_text())["step"] == 4:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(training, "replace_atomically", crash_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "a", tmp_path / "p2")
    monkeypatch.setattr(training, "replace_atomically", real)
    resumed = train(tmp_path / "b", tmp_path / "p2")
    assert set(resumed) == set(whole)
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.ray
def test_a_killed_ray_training_resumes_from_its_last_checkpoint(tmp_path):
    spec = write(tmp_path / "train.yaml", TRAIN_SPEC)
    store = tmp_path / "store"
    finish(stardag(spec, "--until", "examples", "--executor", "local", store=store))
    finish(stardag(spec, "--until", "base", "--executor", "local", store=store))
    whole = tmp_path / "whole"
    shutil.copytree(store, whole)
    finish(stardag(spec, store=whole))
    proc = stardag(spec, store=store)

    def ckpts():
        return (
            list((store / "partial").rglob("checkpoint_*")) if (store / "partial").exists() else []
        )

    _until(lambda: len(ckpts()) >= 1 or proc.poll() is not None, timeout=240)
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(random.Random(0).uniform(0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    err = finish(stardag(spec, store=store))
    assert "resumed training from the checkpoint at step" in err, err
    # two data-parallel workers, each resuming its own data order: the same model
    import stardag as sd

    def model_hash(store):
        entry = next(e for e in sd.plan(spec, store=store) if e.node == "train")
        return Store(store).manifest(entry.key)["outputs"]["model"]["content_hash"]

    assert model_hash(store) == model_hash(whole)
    assert not (store / "partial").exists() or not any((store / "partial").rglob("*.json"))


def test_pretraining_the_char_model_resumes_from_its_checkpoint_with_the_same_weights(
    tmp_path, monkeypatch
):
    import numpy as np

    from operators import addition, hf_common, tiny_gpt

    hf_common.set_threads(1)
    tok = tiny_gpt.make_tokenizer()
    corpus = addition.pretrain_examples(random.Random(0), 200, {1: 0.5, 2: 0.5}, 0.2)

    def pretrain(state_dir, steps=6):
        model = tiny_gpt.make_model(tok, n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=0)
        at = []
        tiny_gpt.pretrain(
            model,
            tok,
            corpus,
            steps,
            batch_size=8,
            lr=3e-3,
            warmup=1,
            seed=0,
            state_dir=str(state_dir),
            checkpoint_every=2,
            resumed=at.append,
        )
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}, at

    whole, at = pretrain(tmp_path / "a")
    assert at == []
    real = hf_common.save_state_atomically

    def crash_after_step_4(d, model, opt, step, *a, **kw):
        real(d, model, opt, step, *a, **kw)
        if step == 4:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(hf_common, "save_state_atomically", crash_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tmp_path / "b")
    monkeypatch.setattr(hf_common, "save_state_atomically", real)
    resumed, at = pretrain(tmp_path / "b")
    assert at == [4]
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole)
