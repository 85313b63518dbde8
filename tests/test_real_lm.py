"""Real language models: a Hugging Face directory or GGUF file brought into the store, and
the GSM8K and addition pipelines end to end on SmolLM2-135M at a handful of problems (when the shared
model file is there: it is a 100 MB download that tests do not ship)."""

import json
from pathlib import Path

import pytest

import stardag
from operators import hf_common, tiny_gpt
from operators.hf_model import HFModel
from stardag.operator import Context, DefaultResources

ROOT = Path(__file__).parent.parent
GGUF = ROOT.parent / "shared" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
needs_gguf = pytest.mark.skipif(
    not GGUF.exists(), reason="the shared SmolLM2 GGUF file is not beside the checkout"
)


def test_hf_model_brings_a_model_directory_into_the_store_as_safetensors(tmp_path):
    src = tmp_path / "src"
    tok = tiny_gpt.make_tokenizer()
    hf_common.save(
        tiny_gpt.make_model(tok, n_layer=1, n_embd=16, n_head=2, n_positions=32), tok, src
    )
    out = tmp_path / "out"
    out.mkdir()
    ctx = Context(HFModel.Params(path=str(src)), "base", {"model": out}, DefaultResources())
    HFModel().run(ctx)
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pkl"))
    with pytest.raises(ValueError, match="exactly one of"):
        HFModel().run(Context(HFModel.Params(), "base", {"model": out}, DefaultResources()))


def test_a_model_directory_param_counts_by_content(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"1")
    spec = tmp_path / "s.yaml"
    spec.write_text("name: m\nstages:\n  base:\n    op: hf_model\n    params: {path: m}\n")
    key = stardag.plan(spec)[0]
    (tmp_path / "m" / "w.bin").write_bytes(b"2")
    assert stardag.plan(spec)[0].key != key.key
    (tmp_path / "m" / "w.bin").write_bytes(b"1")
    assert stardag.plan(spec)[0].key == key.key


@pytest.mark.ray
@needs_gguf
def test_gsm8k_star_runs_end_to_end_on_smollm2_from_gguf(tmp_path):
    # the fixtures' easy problems to train on, and a held-out file used whole
    small = [
        "stages.problems.params.path=../tests/fixtures/gsm8k_small.jsonl",
        "stages.problems.params.heldout_path=../tests/fixtures/gsm8k_test_small.jsonl",
        "stages.problems.params.heldout_size=all",
        "stages.evaluate_base.params.max_new_tokens=48",
        "loop.stages.samples.params.max_new_tokens=48",
        "loop.stages.rationalized.params.max_new_tokens=48",
        "loop.stages.evaluate.params.max_new_tokens=48",
        "loop.stages.train.params.steps=1",
        "loop.stages.train.params.max_length=256",
    ]
    store = str(tmp_path / "store")
    spec = ROOT / "pipelines" / "gsm8k_cpu.yaml"
    # strictly verified, with completions cut off at 48 tokens never correct, the 135M model
    # still solves one of these four ('Tom has 3 apples...'): the loop has an example
    result = stardag.run(spec, overrides=small, store=store, progress=False)
    assert "evaluate@1" in result.computed()
    examples = stardag.read(spec, "examples", iteration=1, overrides=small, store=store)
    assert examples.height >= 1
    samples = stardag.read(spec, "verified", iteration=1, overrides=small, store=store)
    assert set(samples["finish_reason"]) <= {"stop", "eos", "length"}
    assert not samples.filter(samples["finish_reason"] == "length")["correct"].any()
    metrics = stardag.read(
        spec, "evaluate", iteration=1, output="metrics", overrides=small, store=store
    )
    m = {(r["kind"], r["slice"]): r for r in metrics.iter_rows(named=True)}
    assert m[("accuracy", "all")]["n"] == 3
    assert m[("heldout", "gsm8k_test_small.jsonl, whole")]["n"] == 3
    model = stardag.read(spec, "train", iteration=1, overrides=small, store=store)
    assert (model / "model.safetensors").exists()
    assert json.loads((model / "config.json").read_text())["model_type"] == "llama"


@pytest.mark.ray
@needs_gguf
def test_word_problem_star_and_its_ablation_run_end_to_end_on_smollm2(tmp_path):
    small = [
        "stages.problems.params.train_size=8",
        "stages.problems.params.heldout_size=4",
        "loop.iterations=1",
        "loop.stages.train.params.steps=1",
    ]
    store = str(tmp_path / "store")
    spec = ROOT / "pipelines" / "smol_arith.yaml"
    ablation = ROOT / "pipelines" / "smol_arith_no_rationalization.yaml"
    stardag.run(spec, overrides=small, store=store, progress=False)
    result = stardag.run(ablation, overrides=small, store=store, progress=False)
    # the ablation shares everything upstream of its first examples with the default
    assert {"base", "evaluate_base", "samples@1"} <= set(result.cached())
    assert "evaluate@1" in result.computed()
    examples = stardag.read(spec, "examples", iteration=1, overrides=small, store=store)
    assert examples.height >= 1
    metrics = stardag.read(
        spec, "evaluate", iteration=1, output="metrics", overrides=small, store=store
    )
    kinds = {(r["kind"], r["slice"]) for r in metrics.iter_rows(named=True)}
    # the task checks steps, so the report says how many kept rationales are faithful
    assert {("accuracy", "add"), ("accuracy", "sub")} <= kinds
    assert {s for k, s in kinds if k == "faithful"} <= {"generation", "rationalization"}
    assert any(k == "faithful" for k, _ in kinds)


@needs_gguf
def test_smol_arith_leaves_room_for_the_longest_right_rationale(tmp_path):
    from transformers import AutoTokenizer

    from operators import stories
    from stardag import api

    nodes = api.load(ROOT / "pipelines" / "smol_arith.yaml", store=str(tmp_path)).graph.nodes
    tok = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    # the longest name, things and phrasing, with two-digit numbers where the story has them
    rows = [
        stories.story(name, he, things, op, verb, 18, 9)
        for name, he in stories.NAMES
        for things in stories.THINGS
        for op in stories.OPS
        for verb in range(len(stories.OPS[op]))
    ]
    longest = max(len(tok(" " + r["rationale"] + "\n\n").input_ids) for r in rows)
    # every generating stage of every iteration, as compiled
    budgets = {
        name: node.params_json["max_new_tokens"]
        for name, node in nodes.items()
        if "max_new_tokens" in node.params_json
    }
    assert len(budgets) == 10 and longest <= min(budgets.values()), (longest, budgets)


def test_the_vllm_backend_without_vllm_is_one_clear_error(tmp_path):
    import importlib.util

    import polars as pl

    from operators.sample import Sample

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: this test is about machines without it")
    ctx = Context(Sample.Params(backend="vllm"), "s", {}, DefaultResources())
    with pytest.raises(ValueError, match="backend: vllm needs vLLM"):
        Sample().run(ctx, tmp_path, pl.DataFrame({"id": ["a"], "prompt": ["x"]}))


def test_vllm_requests_are_seeded_by_position_and_cut_into_shards():
    from operators import vllm_backend as vb
    from operators.sample import Sample

    p = Sample.Params(backend="vllm", n=2, seed=3, shard_size=3)
    chunks = vb.chunks_of(["a", "b"], p)
    assert [[(i, k, t) for i, k, t, _ in c] for c in chunks] == [
        [(0, 0, "a"), (0, 1, "a"), (1, 0, "b")],
        [(1, 1, "b")],
    ]
    seeds = [seed for c in chunks for *_, seed in c]
    assert len(set(seeds)) == 4
    # the same request keeps its seed whatever the shard size: workers and shards change
    # nothing of what is drawn
    other = vb.chunks_of(["a", "b"], Sample.Params(backend="vllm", n=2, seed=3, shard_size=1))
    assert [seed for c in other for *_, seed in c] == seeds


def test_vllm_engine_arguments_keep_the_kv_cache_small_on_a_cpu(monkeypatch):
    from operators import vllm_backend as vb

    config = {"model": "/m", "dtype": "bfloat16", "seed": 1, "tensor_parallel_size": 2, "gpus": 1}
    monkeypatch.setattr(vb, "device_for", lambda gpus: "cuda")
    on_gpu = vb.engine_kwargs(config)
    assert on_gpu["tensor_parallel_size"] == 2 and "gpu_memory_utilization" not in on_gpu
    monkeypatch.setattr(vb, "device_for", lambda gpus: "cpu")
    on_cpu = vb.engine_kwargs(config)
    assert on_cpu["gpu_memory_utilization"] <= 0.2 and on_cpu["enforce_eager"]


@pytest.mark.parametrize(
    "finish_reason,stop_reason,reason",
    [
        ("stop", "\nQ:", "stop"),  # a stop string ended it (vLLM leaves it out of the text)
        ("stop", None, "eos"),  # the model's end token
        ("stop", 2, "eos"),  # a stop token id
        ("length", None, "length"),  # cut off at max_tokens
    ],
)
def test_the_vllm_backend_names_why_a_completion_ended_as_the_hf_backend_does(
    finish_reason, stop_reason, reason
):
    from types import SimpleNamespace

    from operators import vllm_backend as vb

    assert (
        vb.finish(SimpleNamespace(finish_reason=finish_reason, stop_reason=stop_reason)) == reason
    )
