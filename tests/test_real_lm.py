"""Real language models: a Hugging Face directory or GGUF file brought into the store, and
the GSM8K pipeline end to end on SmolLM2-135M at a handful of problems (when the shared
model file is there: it is a 100 MB download that tests do not ship)."""

import json
from pathlib import Path

import pytest

import stardag
from operators import charlm, hf
from operators.hf_model import HFModel
from stardag.operator import Context, DefaultResources

ROOT = Path(__file__).parent.parent
GGUF = ROOT.parent / "shared" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_hf_model_brings_a_model_directory_into_the_store_as_safetensors(tmp_path):
    src = tmp_path / "src"
    tok = charlm.make_tokenizer()
    hf.save(charlm.make_model(tok, n_layer=1, n_embd=16, n_head=2, n_positions=32), tok, src)
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
@pytest.mark.skipif(not GGUF.exists(), reason="the shared SmolLM2 GGUF file is not beside the checkout")
def test_gsm8k_star_runs_end_to_end_on_smollm2_from_gguf(tmp_path):
    # the fixtures' easy problems to train on, and a held-out file used whole
    small = ["stages.problems.params.path=../tests/fixtures/gsm8k_small.jsonl",
             "stages.problems.params.heldout_path=../tests/fixtures/gsm8k_test_small.jsonl",
             "stages.problems.params.heldout_size=all",
             "stages.evaluate_base.params.max_new_tokens=48",
             "loop.stages.samples.params.max_new_tokens=48",
             "loop.stages.rationalized.params.max_new_tokens=48",
             "loop.stages.evaluate.params.max_new_tokens=48",
             "loop.stages.train.params.steps=1", "loop.stages.train.params.max_length=256"]
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
    metrics = stardag.read(spec, "evaluate", iteration=1, output="metrics", overrides=small, store=store)
    m = {(r["kind"], r["slice"]): r for r in metrics.iter_rows(named=True)}
    assert m[("accuracy", "all")]["n"] == 3
    assert m[("heldout", "gsm8k_test_small.jsonl, whole")]["n"] == 3
    model = stardag.read(spec, "train", iteration=1, overrides=small, store=store)
    assert (model / "model.safetensors").exists()
    assert json.loads((model / "config.json").read_text())["model_type"] == "llama"


def test_the_vllm_backend_without_vllm_is_one_clear_error(tmp_path):
    import importlib.util

    import polars as pl

    from operators.sample import Sample

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: this test is about machines without it")
    ctx = Context(Sample.Params(backend="vllm"), "s", {}, DefaultResources())
    with pytest.raises(ValueError, match="backend: vllm needs vLLM"):
        Sample().run(ctx, tmp_path, pl.DataFrame({"id": ["a"], "prompt": ["x"]}))


def test_the_vllm_backend_speaks_the_current_ray_data_llm_api():
    """Without a GPU the engine cannot start, but the processor config must be one that this
    Ray accepts, and requests and results must map back to [prompt][sample] in order."""
    from operators import vllm_backend as vb
    from operators.sample import Sample

    p = Sample.Params(backend="vllm", n=2, temperature=0.7, stop=["\n"], seed=3,
                      tensor_parallel_size=2, replicas=3, batch_size=16, dtype="bfloat16")
    config = vb.processor_config("/models/m", p)
    assert config.concurrency == 3 and config.batch_size == 16
    assert config.engine_kwargs["tensor_parallel_size"] == 2
    reqs = vb.requests(["a", "b"], p)
    assert [(r["_row"], r["_k"], r["prompt"]) for r in reqs] == [
        (0, 0, "a"), (0, 1, "a"), (1, 0, "b"), (1, 1, "b")]
    assert len({r["sampling_params"]["seed"] for r in reqs}) == 4
    assert reqs[0]["sampling_params"]["stop"] == ["\n"]
    assert reqs[0]["sampling_params"]["include_stop_str_in_output"]
    engine_rows = [{**r, "generated_text": f"{r['prompt']}{r['_k']}", "num_input_tokens": 1,
                    "num_generated_tokens": 2, "generated_tokens": [5, 6]} for r in reversed(reqs)]
    out = vb.collect([vb.finished(vb.postprocess(r), p, {2}) for r in engine_rows], 2, 2)
    assert out == [[("a0", 1, 2, "eos"), ("a1", 1, 2, "eos")], [("b0", 1, 2, "eos"), ("b1", 1, 2, "eos")]]
    with pytest.raises(RuntimeError, match="no output for 1 of 4"):
        vb.collect([vb.finished(vb.postprocess(r), p, {2}) for r in engine_rows[1:]], 2, 2)


@pytest.mark.parametrize("text,tokens,reason,kept", [
    ("The answer is 7.\nQ: next", [9] * 5, "stop", "The answer is 7."),  # stop string, cut here
    ("The answer is 7.", [9, 9, 2], "eos", "The answer is 7."),       # short of max_tokens
    ("The answer is 7.", [9, 9, 9, 9, 2], "eos", "The answer is 7."),  # an end token at the limit
    ("The answer is 7", [9] * 5, "length", "The answer is 7"),        # cut off at the limit
])
def test_the_vllm_backend_reads_why_a_completion_ended(text, tokens, reason, kept):
    from operators import vllm_backend as vb
    from operators.sample import Sample

    p = Sample.Params(backend="vllm", max_new_tokens=5, stop=["\nQ:"])
    row = {"_row": 0, "_k": 0, "generated_text": text, "num_input_tokens": 3,
           "num_generated_tokens": len(tokens), "generated_tokens": tokens}
    got = vb.finished(vb.postprocess(row), p, {2})
    assert (got["finish_reason"], got["text"]) == (reason, kept)


def test_the_vllm_backend_reads_the_end_tokens_from_the_model_directory(tmp_path):
    from operators import vllm_backend as vb

    (tmp_path / "config.json").write_text('{"eos_token_id": 2}')
    (tmp_path / "generation_config.json").write_text('{"eos_token_id": [2, 7]}')
    assert vb.eos_ids(str(tmp_path)) == {2, 7}
