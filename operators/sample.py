"""Sampling rationales and answers from a model: one row per sample."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from stardag.operator import Dataset, DefaultResources, Model, Operator, Params, Unkeyed

# finish_reason: "stop" (a stop string), "eos" (the end token) or "length" (cut off at
# max_new_tokens: such a sample is never verified correct)
SAMPLES = {
    "id": "string",
    "prompt": "string",
    "completion": "string",
    "sample_index": "int64",
    "prompt_tokens": "int64",
    "completion_tokens": "int64",
    "finish_reason": "string",
}


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
    # data-parallel workers, each loading the model once and holding the stage's resources
    # (a GPU each where the stage asks for one); the output is the same for any number, so
    # they are not in the key (`replicas`: the same, for vLLM engines)
    replicas: Annotated[int, Unkeyed] = Field(1, ge=1)
    workers: Annotated[int, Unkeyed] = Field(1, ge=1)
    # samples per committed shard (rounded to whole batches): a killed run resumes from the
    # last shard it committed
    shard_size: int = Field(1024, gt=0)


def workers_of(p: SampleParams) -> int:
    """Data-parallel workers: `workers`, or for vLLM its engine `replicas`."""
    return p.replicas if p.backend == "vllm" and p.workers == 1 else p.workers


def sample_table(ctx, model, prompts, p: SampleParams, prompt_column: str, shards: str = "samples"):
    """`prompts` with one row per sample: completion, sample_index, token counts and finish
    reason. The work is split into shards of about `shard_size` samples, committed as they
    are made, on `workers` data-parallel workers (see `Context.map`); every sample is seeded
    by its position, so the output is the same for any number of workers."""
    import time

    import polars as pl

    from . import hf_common

    texts = prompts[prompt_column].to_list()
    config = {
        **p.model_dump(),
        "model": str(model),
        "cpus": ctx.resources.cpus,
        "gpus": ctx.resources.gpus,
    }
    if p.backend == "vllm":
        from .vllm_backend import VLLMSampler as worker
        from .vllm_backend import chunks_of
    else:
        from .hf_sampler import HFSampler as worker
        from .hf_sampler import chunks_of
    chunks = chunks_of(texts, p)
    total, done, tokens, t0 = len(texts) * p.n, [0], [0], time.monotonic()

    def landed(i, table):
        done[0] += table.num_rows
        tokens[0] += sum(table.column("ct").to_pylist())
        ctx.progress(
            done[0], total, "samples", tokens_per_s=tokens[0] / max(time.monotonic() - t0, 1e-9)
        )

    tables = ctx.map(worker, config, chunks, name=shards, workers=workers_of(p), landed=landed)
    rows = [
        row
        for t in tables
        for row in zip(*(t.column(c).to_pylist() for c in hf_common.SHARD_COLUMNS))
    ]
    schema = {
        "_row": pl.Int64,
        "sample_index": pl.Int64,
        "completion": pl.Utf8,
        "prompt_tokens": pl.Int64,
        "completion_tokens": pl.Int64,
        "finish_reason": pl.Utf8,
    }
    index = pl.DataFrame(rows, schema=schema, orient="row")
    return (
        prompts.with_row_index("_row")
        .with_columns(pl.col("_row").cast(pl.Int64))
        .join(index, on="_row")
        .sort("_row", "sample_index")
        .drop("_row")
    )


class Sample(Operator):
    """Batched generation with the KV cache (Hugging Face `generate`, left padding) or vLLM.
    Greedy when temperature is 0, else seeded: a re-run gives the same samples."""

    version = "2"
    inputs = {"model": Model(), "prompts": Dataset({"id": "string", "prompt": "string"})}
    outputs = {"samples": Dataset(SAMPLES, passthrough="prompts")}
    resources = DefaultResources(cpus=1)
    Params = SampleParams

    @classmethod
    def parallel_workers(cls, params):
        return workers_of(params)

    def run(self, ctx, model, prompts):
        out = sample_table(ctx, model, prompts, ctx.params, ctx.params.prompt_column)
        if ctx.params.prompt_column != "prompt":
            out = out.with_columns(out[ctx.params.prompt_column].alias("prompt"))
        return out
