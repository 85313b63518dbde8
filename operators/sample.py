"""Sampling rationales and answers from a model: one row per sample."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stardag.operator import Dataset, DefaultResources, Model, Operator, Params

# finish_reason: "stop" (a stop string), "eos" (the end token) or "length" (cut off at
# max_new_tokens: such a sample is never verified correct)
SAMPLES = {"id": "string", "prompt": "string", "completion": "string", "sample_index": "int64",
           "prompt_tokens": "int64", "completion_tokens": "int64", "finish_reason": "string"}


class SampleParams(Params):
    backend: Literal["hf", "vllm"] = "hf"
    prompt_column: str = "prompt"
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: list[str] = []
    batch_size: int = 64
    seed: int = 0
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    tensor_parallel_size: int = 1
    replicas: int = 1
    # samples per committed shard (rounded to whole batches): a killed run resumes from the
    # last shard it committed
    shard_size: int = Field(1024, gt=0)


def sample_table(ctx, model, prompts, p: SampleParams, prompt_column: str, shards: str = "samples"):
    """`prompts` with one row per sample: completion, sample_index and token counts. The
    samples are committed in shards as they are made (see `Context.shards`)."""
    import polars as pl

    texts = prompts[prompt_column].to_list()
    if p.backend == "vllm":
        from .vllm_backend import generate as vllm_generate

        results = vllm_generate(str(model), texts, p, shards=ctx.shards(shards), log=ctx.log)
    else:
        from . import hf

        hf.set_threads(ctx.resources.cpus)
        device = "cuda" if ctx.resources.gpus else "cpu"
        lm, tok = hf.load(str(model), p.dtype, device)
        results = hf.generate(lm, tok, texts, n=p.n, temperature=p.temperature, top_p=p.top_p,
                              max_new_tokens=p.max_new_tokens, stop=p.stop,
                              batch_size=p.batch_size, seed=p.seed, progress=ctx.progress,
                              shards=ctx.shards(shards),
                              shard_batches=max(1, p.shard_size // p.batch_size), log=ctx.log)
    rows = [(i, k, *sample) for i, samples in enumerate(results) for k, sample in enumerate(samples)]
    schema = {"_row": pl.Int64, "sample_index": pl.Int64, "completion": pl.Utf8,
              "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "finish_reason": pl.Utf8}
    index = pl.DataFrame(rows, schema=schema, orient="row")
    return (prompts.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
            .join(index, on="_row").sort("_row", "sample_index").drop("_row"))


class Sample(Operator):
    """Batched generation with the KV cache (Hugging Face `generate`, left padding) or vLLM.
    Greedy when temperature is 0, else seeded: a re-run gives the same samples."""

    version = "2"
    inputs = {"model": Model(), "prompts": Dataset({"id": "string", "prompt": "string"})}
    outputs = {"samples": Dataset(SAMPLES, passthrough="prompts")}
    resources = DefaultResources(cpus=1)
    Params = SampleParams

    def run(self, ctx, model, prompts):
        out = sample_table(ctx, model, prompts, ctx.params, ctx.params.prompt_column)
        if ctx.params.prompt_column != "prompt":
            out = out.with_columns(out[ctx.params.prompt_column].alias("prompt"))
        return out
