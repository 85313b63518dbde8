"""The `vllm` backend of `sample`, `hint_rationalize` and `evaluate`: batch inference through
Ray Data LLM (`ray.data.llm.build_processor` with a `vLLMEngineProcessorConfig`, the API of
Ray 2.5x-2.60), with tensor parallelism and several engine replicas. Needs a GPU and
`pip install 'stardag[vllm]'`. Samples come back in prompt order, `n` per prompt, each
request seeded by its position, so a re-run gives the same samples."""

from __future__ import annotations


def require_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise ValueError("backend: vllm needs vLLM on a GPU machine: pip install 'stardag[vllm]' "
                         "(or use backend: hf)") from None


def processor_config(model_dir: str, p):
    """The processor's config: the prompts are plain text (the few-shot prompt has applied
    any chat template already), tokenized and detokenized by Ray Data's CPU stages."""
    from ray.data.llm import vLLMEngineProcessorConfig

    return vLLMEngineProcessorConfig(
        model_source=model_dir,
        engine_kwargs={"tensor_parallel_size": p.tensor_parallel_size, "dtype": p.dtype,
                       "enable_prefix_caching": True, "seed": p.seed},
        concurrency=p.replicas, batch_size=p.batch_size,
        chat_template_stage=False, tokenize_stage=True, detokenize_stage=True)


def requests(prompts: list[str], p) -> list[dict]:
    """One row per sample to draw, with its sampling params (the seed fixed per request)."""
    params = {"temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_new_tokens,
              "stop": list(p.stop) or None}
    return [{"_row": i, "_k": k, "prompt": text,
             "sampling_params": {**params, "seed": p.seed * 1_000_003 + i * p.n + k}}
            for i, text in enumerate(prompts) for k in range(p.n)]


def postprocess(row: dict) -> dict:
    return {"_row": row["_row"], "_k": row["_k"], "text": row["generated_text"],
            "prompt_tokens": int(row.get("num_input_tokens") or 0),
            "completion_tokens": int(row.get("num_generated_tokens") or 0)}


def collect(rows: list[dict], n_prompts: int, n: int) -> list[list[tuple[str, int, int]]]:
    """Rows in any order back to [prompt][sample] = (text, prompt tokens, completion tokens)."""
    out: list[list] = [[None] * n for _ in range(n_prompts)]
    for r in rows:
        out[r["_row"]][r["_k"]] = (r["text"], r["prompt_tokens"], r["completion_tokens"])
    missing = sum(s is None for samples in out for s in samples)
    if missing:
        raise RuntimeError(f"vLLM returned no output for {missing} of {n_prompts * n} requests")
    return out


def generate(model_dir: str, prompts: list[str], p, shards=None,
             log=None) -> list[list[tuple[str, int, int]]]:
    """Every `shard_size` requests are one shard: committed when done, read back on a
    resumed run (requests are seeded one by one, so shards do not depend on each other)."""
    require_vllm()
    import pyarrow as pa
    import ray
    from ray.data.llm import build_processor

    processor = build_processor(processor_config(model_dir, p), postprocess=postprocess)
    reqs = requests(prompts, p)
    rows: list[dict] = []
    chunks = range(0, len(reqs), p.shard_size)
    resumed = 0
    for si, start in enumerate(chunks):
        done = shards.get(si) if shards is not None else None
        if done is not None:
            rows.extend(done.to_pylist())
            resumed += 1
            continue
        got = processor(ray.data.from_items(reqs[start:start + p.shard_size])).take_all()
        got = [{k: r[k] for k in ("_row", "_k", "text", "prompt_tokens", "completion_tokens")}
               for r in got]
        if shards is not None:
            shards.put(si, pa.Table.from_pylist(got))
        rows.extend(got)
    if resumed and log:
        log(f"resumed {resumed} of {len(chunks)} shards committed by an interrupted run")
    return collect(rows, len(prompts), p.n)
