"""Sampling throughput on this machine (numbers in docs/benchmarks.md):

1. `--backends`: completion tokens per second of the `sample` operator with the HF backend
   against the vLLM backend, on the same model, prompts, batch and max tokens (greedy), and
   vLLM's own offline `LLM.generate` on the same engine as the ceiling of the vLLM path.
   Needs vLLM: run it with .venv-vllm/bin/python (scripts/setup.sh --vllm).
2. `--workers`: `sample` as a stage on a local Ray, 1 worker x 2 CPUs against 2 workers x 1
   CPU (`workers: 2`), and the per-worker efficiency.

The model is SmolLM2-135M-Instruct, stored by the `hf_model` stage from the GGUF in
../shared/models (or --model DIR); the prompts are GSM8K questions from ../shared/data.

    .venv-vllm/bin/python bench/sampler.py --backends [--json out.json]
    .venv/bin/python bench/sampler.py --workers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
GGUF = SHARED / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_dir(work: Path) -> Path:
    """SmolLM2 as the hf_model stage stores it (safetensors, float32)."""
    import stardag

    spec = work / "model.yaml"
    spec.write_text(
        f"name: model\nstages:\n  base:\n    op: hf_model\n    params: {{path: {GGUF}}}\n"
    )
    stardag.run(spec, store=str(work / "store"), executor="local", progress=False)
    return stardag.read(spec, "base", store=str(work / "store"))


def prompts(n: int) -> list[str]:
    rows = [json.loads(line) for line in (SHARED / "data" / "gsm8k" / "train.jsonl").open()][:n]
    return [f"Question: {r['question']}\nAnswer: Let's think step by step." for r in rows]


def backends(model: Path, n_prompts: int, batch: int, max_new: int, threads: int) -> dict:
    import polars as pl

    from operators import hf_common
    from operators.sample import Sample
    from operators.vllm_backend import VLLMSampler, chunks_of
    from stardag.operator import Context, DefaultResources

    texts = prompts(n_prompts)
    table = pl.DataFrame({"id": [str(i) for i in range(len(texts))], "prompt": texts})
    res: dict = {
        "prompts": len(texts),
        "batch_size": batch,
        "max_new_tokens": max_new,
        "threads": threads,
    }

    p = Sample.Params(max_new_tokens=max_new, batch_size=batch, shard_size=10**6)
    hf_common.load.cache_clear() if hasattr(hf_common.load, "cache_clear") else None
    t0 = time.perf_counter()
    out = Sample().run(Context(p, "bench", {}, DefaultResources(cpus=threads)), model, table)
    wall = time.perf_counter() - t0
    res["hf"] = {
        "wall_s": wall,
        "tokens": int(out["completion_tokens"].sum()),
        "tokens_per_s": int(out["completion_tokens"].sum()) / wall,
    }

    vp = Sample.Params(backend="vllm", max_new_tokens=max_new, batch_size=batch, shard_size=10**6)
    config = {**vp.model_dump(), "model": str(model), "cpus": threads, "gpus": 0}
    t0 = time.perf_counter()
    worker = VLLMSampler(config)
    res["vllm_load_s"] = time.perf_counter() - t0
    chunk = chunks_of(texts, vp)[0]
    worker(0, chunk[:8])  # warm-up: the first batch compiles kernels
    t0 = time.perf_counter()
    got = worker(0, chunk)
    wall = time.perf_counter() - t0
    tokens = sum(got.column("ct").to_pylist())
    res["vllm_operator"] = {"wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall}

    from vllm import SamplingParams

    t0 = time.perf_counter()
    outs = worker.llm.generate(
        texts, SamplingParams(temperature=0, max_tokens=max_new), use_tqdm=False
    )
    wall = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    res["vllm_ceiling"] = {"wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall}
    res["operator_share_of_ceiling"] = (
        res["vllm_operator"]["tokens_per_s"] / res["vllm_ceiling"]["tokens_per_s"]
    )
    res["vllm_over_hf"] = res["vllm_operator"]["tokens_per_s"] / res["hf"]["tokens_per_s"]
    same = sum(a == b for a, b in zip(out["completion"].to_list(), got.column("text").to_pylist()))
    res["greedy_agreement"] = same / len(texts)
    return res


def workers(model: Path, n_prompts: int, batch: int, max_new: int) -> dict:
    import stardag

    work = Path(tempfile.mkdtemp(prefix="stardag-workers-"))
    (work / "prompts.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": "#### 0"}) + "\n" for q in prompts(n_prompts))
    )
    spec = work / "w.yaml"
    spec.write_text(f"""name: w
stages:
  base: {{op: hf_model, params: {{path: {model}}}}}
  problems:
    op: gsm8k
    params: {{path: prompts.jsonl, heldout_size: 1}}
  prompts:
    op: fewshot_prompt
    inputs: {{problems: problems.train}}
    params: {{template: "{{question}}\\n"}}
  samples:
    op: sample
    inputs: {{model: base, prompts: prompts}}
    params: {{max_new_tokens: {max_new}, batch_size: {batch}, shard_size: {batch}}}
""")
    out = {}
    for label, over in (
        ("1 worker x 1 CPU", ["stages.samples.resources={cpus: 1}"]),
        ("1 worker x 2 CPUs", ["stages.samples.resources={cpus: 2}"]),
        (
            "2 workers x 1 CPU",
            ["stages.samples.resources={cpus: 1}", "stages.samples.params.workers=2"],
        ),
    ):
        store = work / label.replace(" ", "")
        stardag.run(spec, overrides=over, store=str(store), until="prompts", progress=False)
        result = stardag.run(spec, overrides=over, store=str(store), progress=False)
        out[label] = {"stage_s": result.nodes["samples"].manifest["timings"]["seconds"]}
    one, two_cpus, two = (
        out[k]["stage_s"] for k in ("1 worker x 1 CPU", "1 worker x 2 CPUs", "2 workers x 1 CPU")
    )
    out["speedup_2_workers_over_1_worker_1_cpu"] = one / two
    out["per_worker_efficiency"] = one / two / 2
    out["2_workers_x_1_cpu_over_1_worker_x_2_cpus"] = two_cpus / two
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", action="store_true")
    ap.add_argument("--workers", action="store_true")
    ap.add_argument("--model", help="a model directory (default: SmolLM2 from the shared GGUF)")
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stardag-sampler-"))
    model = Path(args.model) if args.model else model_dir(work)
    res: dict = {
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}",
        "python": sys.version.split()[0],
    }
    if args.backends:
        res["backends"] = backends(model, args.prompts, args.batch, args.max_new, args.threads)
    if args.workers:
        res["workers"] = workers(model, args.prompts, args.batch, args.max_new)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
