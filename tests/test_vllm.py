"""The vLLM backend, for real: `sample`, `hint_rationalize` and `evaluate` with `backend: vllm`
on a small model the test trains, against the HF backend. Runs where vLLM is installed
(`bash scripts/setup.sh --vllm` makes `.venv-vllm`, where `.ci/run` runs this file); vLLM
needs a head size its CPU kernels know (64 here)."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess

import pytest
from support import TESTS, cli, cli_command, cli_env, until, write

import stardag

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed in this environment (scripts/setup.sh "
        "--vllm makes .venv-vllm, where .ci/run runs these tests)",
    ),
]

SPEC = """
name: vllm
stages:
  problems:
    op: arithmetic
    params: {seed: 0, digits: [1, 2], train_per_digit: 24, heldout_per_digit: 24}
  base:
    op: char_model
    inputs: {exclude: problems.heldout}
    params: {steps: 300, batch_size: 32, lr: 3.0e-3, warmup: 20, n_layer: 2, n_embd: 64,
             n_head: 1, n_positions: 128, corpus_size: 6000, mix: {1: 0.5, 2: 0.5},
             hint_share: 0.2, seed: 0}
  prompts:
    op: fewshot_prompt
    inputs: {problems: problems.train}
    params: {template: "{question}\\n", hint_template: "{question}|{hint}\\n"}
  heldout_prompts:
    op: fewshot_prompt
    inputs: {problems: problems.heldout}
    params: {template: "{question}\\n", hint_template: "{question}|{hint}\\n"}
  hf:
    op: sample
    inputs: {model: base, prompts: prompts}
    params: &greedy {max_new_tokens: 60, batch_size: 16, shard_size: 16, backend: hf}
  vllm:
    op: sample
    inputs: {model: base, prompts: prompts}
    params: {<<: *greedy, backend: vllm}
  verified:
    op: verify
    inputs: {samples: vllm}
    params: {task: arithmetic, mode: answer}
  rationalized:
    op: hint_rationalize
    inputs: {model: base, prompts: prompts, verified: verified}
    params: {<<: *greedy, backend: vllm, task: arithmetic, mode: answer}
  evaluate:
    op: evaluate
    inputs: {model: base, heldout: heldout_prompts}
    params: {<<: *greedy, backend: vllm, slice_field: digits}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm")
    spec = write(d / "vllm.yaml", SPEC)
    out = cli("run", spec, "--executor", "local", "--store", d / "store", cwd=d, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    return d, spec


def test_vllm_and_hf_give_the_same_greedy_completions(run):
    d, spec = run
    hf = stardag.read(spec, "hf", store=str(d / "store"))
    vl = stardag.read(spec, "vllm", store=str(d / "store"))
    assert hf["id"].to_list() == vl["id"].to_list()
    same = sum(a == b for a, b in zip(hf["completion"], vl["completion"]))
    share = same / hf.height
    print(f"\nvLLM and HF agree on {same} of {hf.height} greedy completions ({share:.1%})")
    assert share >= 0.95
    assert set(vl["finish_reason"]) <= {"eos", "stop", "length"}
    assert (vl["prompt_tokens"] == hf["prompt_tokens"]).all()
    counted = [
        (a, b)
        for a, b, x, y in zip(
            hf["completion_tokens"], vl["completion_tokens"], hf["completion"], vl["completion"]
        )
        if x == y
    ]
    assert [a for a, _ in counted] == [b for _, b in counted]  # the end token is not counted


def test_hint_rationalize_and_evaluate_run_on_vllm(run):
    d, spec = run
    metrics = stardag.read(spec, "evaluate", output="metrics", store=str(d / "store"))
    acc = {r["slice"]: r for r in metrics.iter_rows(named=True) if r["kind"] == "accuracy"}
    assert acc["all"]["n"] == stardag.read(spec, "heldout_prompts", store=str(d / "store")).height
    rationalized = stardag.read(spec, "rationalized", store=str(d / "store"))
    assert set(rationalized.columns) >= {"completion", "finish_reason", "rationalized"}


def test_a_vllm_stage_run_again_gives_the_same_content_hash(run, tmp_path):
    d, spec = run
    store = d / "store"

    def content(store_dir):
        entry = next(e for e in stardag.plan(spec, store=str(store_dir)) if e.node == "vllm")
        return entry.manifest["outputs"]["samples"]["content_hash"]

    first = content(store)
    again = tmp_path / "again"
    out = cli(
        "run",
        spec,
        "--executor",
        "local",
        "--store",
        again,
        "--until",
        "vllm",
        "--set",
        "stages.vllm.params.workers=1",
        cwd=d,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert content(again) == first
    assert json.loads((again / "refs" / "vllm" / "vllm.json").read_text())["outputs"]


def _vllm_content(spec, store, overrides=()) -> str:
    entry = next(
        e
        for e in stardag.plan(spec, overrides=list(overrides), store=str(store))
        if e.node == "vllm"
    )
    assert entry.status == "cached"
    return entry.manifest["outputs"]["samples"]["content_hash"]


def test_a_killed_vllm_stage_resumes_from_its_committed_shards(run, tmp_path):
    d, spec = run
    store = tmp_path / "store"
    shutil.copytree(d / "store", store)
    # greedy sampling ignores the seed, so a new seed is a new key with the same samples
    over = ["--set", "stages.vllm.params.seed=1", "--set", "stages.vllm.params.shard_size=8"]
    args = cli_command("run", spec, "--executor", "local", "--store", store, "--until", "vllm")
    partial = store / "partial"

    def shards():
        return sorted(partial.rglob("samples-*.parquet")) if partial.exists() else []

    proc = subprocess.Popen(
        [*args, *over],
        env=cli_env(),
        cwd=d,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the engine's own processes go with it
    )
    until(lambda: shards() or proc.poll() is not None, 600, "a committed shard", every=0.02)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    committed = len(shards())
    assert 1 <= committed < 6  # 48 prompts, shards of 8
    out = subprocess.run(
        [*args, *over], env=cli_env(), cwd=d, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resumed {committed} of 6 shards" in out.stderr, out.stderr[-3000:]
    over_keys = over[1::2]
    assert _vllm_content(spec, store, over_keys) == _vllm_content(spec, d / "store")
    assert shards() == []


# pipelines/gsm8k.yaml's layout: every model stage wants the one GPU, sampling on two workers
ON_ONE_GPU = [
    "stages.vllm.resources={cpus: 1, gpus: 1}",
    "stages.vllm.params.workers=2",
    "stages.rationalized.resources={cpus: 1, gpus: 1}",
    "stages.evaluate.resources={cpus: 1, gpus: 1}",
    # new keys (greedy: the same samples), so these stages run again here
    "stages.vllm.params.seed=2",
    "stages.rationalized.params.seed=2",
    "stages.evaluate.params.seed=2",
]


@pytest.mark.ray
def test_the_vllm_stages_run_to_the_end_on_one_logical_gpu(run, tmp_path):
    import ray

    d, spec = run
    store = tmp_path / "store"
    shutil.copytree(d / "store", store)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(TESTS))
        mp.setenv("RAY_worker_niceness", "0")
        mp.chdir(d)
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR")
        try:
            result = stardag.run(spec, overrides=ON_ONE_GPU, store=str(store), progress=False)
        finally:
            ray.shutdown()
    assert {"vllm", "rationalized", "evaluate"} <= set(result.computed())
    assert _vllm_content(spec, store, ON_ONE_GPU) == _vllm_content(spec, d / "store")
