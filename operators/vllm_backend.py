"""The `vllm` backend of `sample`, `hint_rationalize` and `evaluate`: batch inference through
Ray Data LLM (`ray.data.llm`), with tensor parallelism and several engine replicas. Needs a
GPU and `pip install 'stardag[vllm]'`. Samples come back in prompt order, `n` per prompt,
seeded per request so that a re-run gives the same samples."""

from __future__ import annotations


def generate(model_dir: str, prompts: list[str], p) -> list[list[tuple[str, int, int]]]:
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise ValueError("backend: vllm needs vLLM on a GPU machine: pip install 'stardag[vllm]' "
                         "(or use backend: hf)") from None
    import ray
    from ray.data import llm as ray_llm

    config = ray_llm.vLLMEngineProcessorConfig(
        model_source=model_dir,
        engine_kwargs={"tensor_parallel_size": p.tensor_parallel_size, "dtype": p.dtype,
                       "max_model_len": 8192, "enable_prefix_caching": True},
        concurrency=p.replicas, batch_size=p.batch_size,
        apply_chat_template=False, tokenize=True, detokenize=True)

    def pre(row):
        return {**row, "prompt": row["prompt"], "sampling_params": {
            "temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_new_tokens,
            "stop": list(p.stop) or None, "seed": p.seed * 1_000_003 + row["_request"]}}

    def post(row):
        return {"_row": row["_row"], "_k": row["_k"], "text": row["generated_text"],
                "prompt_tokens": len(row.get("prompt_token_ids") or []),
                "completion_tokens": len(row.get("generated_tokens") or [])}

    build = getattr(ray_llm, "build_processor", None) or ray_llm.build_llm_processor
    processor = build(config, preprocess=pre, postprocess=post)
    items = [{"_row": i, "_k": k, "_request": i * p.n + k, "prompt": text}
             for i, text in enumerate(prompts) for k in range(p.n)]
    rows = processor(ray.data.from_items(items)).take_all()
    out: list[list] = [[None] * p.n for _ in prompts]
    for r in rows:
        out[r["_row"]][r["_k"]] = (r["text"], r["prompt_tokens"], r["completion_tokens"])
    return out
