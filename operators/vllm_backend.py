"""The `vllm` backend of `sample`, `hint_rationalize` and `evaluate`: batch inference through
Ray Data LLM (`ray.data.llm.build_processor` with a `vLLMEngineProcessorConfig`, the API of
Ray 2.5x-2.60), with tensor parallelism and several engine replicas. Needs a GPU and
`pip install 'stardag[vllm]'`. Samples come back in prompt order, `n` per prompt, each
request seeded by its position, so a re-run gives the same samples.

Ray Data LLM passes on vLLM's tokens and text but not its `finish_reason`, so the reason is
read back the way vLLM decides it: the stop string (kept in the text by
`include_stop_str_in_output`, then cut here as the HF backend cuts it), else an end token
(the last token is one of the model's `eos_token_id`s, or the sample stopped short of
`max_tokens`, which only a stop string or an end token does), else the token limit."""

from __future__ import annotations

import json
from pathlib import Path

from .hf import finish_reason, truncate

COLUMNS = ("_row", "_k", "text", "prompt_tokens", "completion_tokens", "finish_reason")


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
              "stop": list(p.stop) or None, "include_stop_str_in_output": True}
    return [{"_row": i, "_k": k, "prompt": text,
             "sampling_params": {**params, "seed": p.seed * 1_000_003 + i * p.n + k}}
            for i, text in enumerate(prompts) for k in range(p.n)]


def postprocess(row: dict) -> dict:
    tokens = row.get("generated_tokens")
    return {"_row": row["_row"], "_k": row["_k"], "text": row["generated_text"],
            "prompt_tokens": int(row.get("num_input_tokens") or 0),
            "completion_tokens": int(row.get("num_generated_tokens") or 0),
            "last_token": int(tokens[-1]) if tokens is not None and len(tokens) else -1}


def eos_ids(model_dir: str) -> set[int]:
    """The model's end tokens, from its generation config and config, as vLLM reads them."""
    ids: set[int] = set()
    for name in ("generation_config.json", "config.json"):
        path = Path(model_dir) / name
        if path.is_file():
            value = json.loads(path.read_text()).get("eos_token_id")
            ids |= set(value if isinstance(value, list) else [] if value is None else [value])
    return ids


def finished(row: dict, p, eos: set[int]) -> dict:
    """A postprocessed row as a sample: the text cut at its stop string, and why it ended."""
    ended = row["last_token"] in eos or row["completion_tokens"] < p.max_new_tokens
    return {"_row": row["_row"], "_k": row["_k"], "text": truncate(row["text"], p.stop),
            "prompt_tokens": row["prompt_tokens"], "completion_tokens": row["completion_tokens"],
            "finish_reason": finish_reason(row["text"], p.stop, ended)}


def collect(rows: list[dict], n_prompts: int, n: int) -> list[list[tuple[str, int, int, str]]]:
    """Rows in any order back to [prompt][sample] = (text, prompt tokens, completion tokens,
    finish reason)."""
    out: list[list] = [[None] * n for _ in range(n_prompts)]
    for r in rows:
        out[r["_row"]][r["_k"]] = tuple(r[c] for c in COLUMNS[2:])
    missing = sum(s is None for samples in out for s in samples)
    if missing:
        raise RuntimeError(f"vLLM returned no output for {missing} of {n_prompts * n} requests")
    return out


def generate(model_dir: str, prompts: list[str], p, shards=None,
             log=None) -> list[list[tuple[str, int, int, str]]]:
    """Every `shard_size` requests are one shard: committed when done, read back on a
    resumed run (requests are seeded one by one, so shards do not depend on each other)."""
    require_vllm()
    import pyarrow as pa
    import ray
    from ray.data.llm import build_processor

    processor = build_processor(processor_config(model_dir, p), postprocess=postprocess)
    reqs = requests(prompts, p)
    eos = eos_ids(model_dir)
    rows: list[dict] = []
    chunks = range(0, len(reqs), p.shard_size)
    resumed = 0
    for si, start in enumerate(chunks):
        done = shards.get(si) if shards is not None else None
        if done is not None and done.column_names == list(COLUMNS):
            rows.extend(done.to_pylist())
            resumed += 1
            continue
        got = processor(ray.data.from_items(reqs[start:start + p.shard_size])).take_all()
        got = [finished(r, p, eos) for r in got]
        if shards is not None:
            shards.put(si, pa.Table.from_pylist(got))
        rows.extend(got)
    if resumed and log:
        log(f"resumed {resumed} of {len(chunks)} shards committed by an interrupted run")
    return collect(rows, len(prompts), p.n)
