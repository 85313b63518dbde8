"""The vLLM backend, for real: `sample`, `hint_rationalize` and `evaluate` with `backend: vllm`
on a small model the test trains, against the HF backend. Runs where vLLM is installed
(`bash scripts/setup.sh --vllm` makes `.venv-vllm`, where `.ci/run` runs this file); vLLM
needs a head size its CPU kernels know (64 here)."""

import importlib.util
import json

import pytest
from support import cli, write

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
