"""The default pipeline's costs, measured on this machine (see docs/benchmarks.md):

1. `--pipeline`: run pipelines/star.yaml (or a variant, with --set overrides) in a fresh
   store: wall time per stage as the driver saw it, the operator's own time inside it, and
   the share of the run's wall time that is engine overhead (everything but operator time
   on the critical path: Ray start/stop, scheduling, loading inputs, hashing and publishing).
2. `--sampler`: the `sample` operator's throughput against a bare `model.generate` loop on
   the same model, prompts and batch size.
3. `--trainer`: `shard_train`'s time per step against a bare PyTorch loop on the same model,
   data and batch size, and its fixed start cost per call (Ray Train's start).

    python bench/star.py --pipeline --sampler --trainer [--set K=V]... [--json out.json]
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
sys.path.insert(0, str(ROOT))


def machine() -> str:
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs ({platform.machine()}), "
        f"Python {platform.python_version()}"
    )


def bench_pipeline(spec: Path, overrides: list[str], store: str, from_record: bool) -> dict:
    """Runs the spec (or, with from_record, reads the store's last run record of it)."""
    import stardag

    ld = stardag.load(spec, overrides, store)
    if from_record:
        records = [  # a fully cached run is recorded too: take the last that computed
            r
            for r in ld.store.runs(ld.graph.name)
            if any(n["status"] == "computed" for n in r["nodes"].values())
        ]
        if not records:
            raise SystemExit(f"no run record of {ld.graph.name} in {store}")
        record = records[-1]
        wall = record["wall_s"]
    else:
        t0 = time.perf_counter()
        stardag.run(spec, overrides=overrides, store=store)
        wall = time.perf_counter() - t0
        record = ld.store.runs(ld.graph.name)[-1]
    stages = {
        n: {"status": r["status"], "wall_s": r["wall_s"], "operator_s": round(r["operator_s"], 3)}
        for n, r in record["nodes"].items()
    }
    # the stages run partly side by side: take the critical path through the graph, with
    # each stage's wall and operator time, so that overlap is not counted twice
    finish, op_path = {}, {}
    for node in ld.graph.nodes.values():
        deps = [d for d in node.deps if d in finish]
        best = max(deps, key=lambda d: finish[d], default=None)
        finish[node.id] = (finish[best] if best else 0.0) + stages[node.id]["wall_s"]
        op_path[node.id] = (op_path[best] if best else 0.0) + stages[node.id]["operator_s"]
    end = max(finish, key=finish.get)
    return {
        "wall_s": round(wall, 2),
        "critical_path": end,
        "critical_path_stage_wall_s": round(finish[end], 2),
        "critical_path_operator_s": round(op_path[end], 2),
        "engine_overhead_share": round(1 - op_path[end] / wall, 4),
        "stages": stages,
    }


def bench_sampler(
    model_dir: Path,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
    threads: int,
    repeat: int = 3,
) -> dict:
    import polars as pl
    import torch

    from operators import hf_common
    from operators.sample import Sample
    from stardag.operator import Context, DefaultResources

    torch.set_num_threads(threads)
    model, tok = hf_common.load(str(model_dir))
    table = pl.DataFrame({"id": [str(i) for i in range(len(prompts))], "prompt": prompts})
    params = Sample.Params(max_new_tokens=max_new_tokens, batch_size=batch_size)
    ctx = Context(params, "bench", {}, DefaultResources(cpus=threads))

    def operator():
        out = Sample().run(ctx, model_dir, table)
        return int(out["completion_tokens"].sum())

    def bare():
        tok.padding_side = "left"
        n = 0
        with torch.inference_mode():
            for s in range(0, len(prompts), batch_size):
                enc = tok(
                    prompts[s : s + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id,
                )
                n += int((gen[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum())
        return n

    times = {"operator": [], "bare": []}
    tokens = {}
    for _ in range(repeat):
        for name, f in (("bare", bare), ("operator", operator)):
            t0 = time.perf_counter()
            tokens[name] = f()
            times[name].append(time.perf_counter() - t0)
    op_tps = tokens["operator"] / min(times["operator"])
    bare_tps = tokens["bare"] / min(times["bare"])
    return {
        "prompts": len(prompts),
        "batch_size": batch_size,
        "threads": threads,
        "operator_tokens_per_s": round(op_tps, 1),
        "bare_tokens_per_s": round(bare_tps, 1),
        "ratio": round(op_tps / bare_tps, 3),
    }


def bench_trainer(
    model_dir: Path,
    examples: list[tuple[str, str]],
    steps: int,
    batch_size: int,
    threads: int,
    max_length: int,
    lr: float,
) -> dict:
    import polars as pl
    import torch

    from operators import hf_common
    from operators.shard_train import ShardTrain
    from stardag.operator import Context, DefaultResources

    def bare() -> float:
        """The plain PyTorch loop: same model, data, batch size, optimizer; seconds per step."""
        torch.set_num_threads(threads)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        data = hf_common.encode_examples(tok, examples, max_length)
        # batches drawn from a shuffled order, as the operator does: in file order the
        # examples come grouped by length and would need less padding
        import random

        order = list(range(len(data)))
        random.Random(0).shuffle(order)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        model.train()
        t0 = time.perf_counter()
        for step in range(steps):
            batch = [data[order[(step * batch_size + i) % len(data)]] for i in range(batch_size)]
            ids, att, lab = hf_common.collate(batch, tok.pad_token_id)
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return (time.perf_counter() - t0) / steps

    table = pl.DataFrame(
        {
            "id": [str(i) for i in range(len(examples))],
            "question": [""] * len(examples),
            "answer": [""] * len(examples),
            "prompt": [p for p, _ in examples],
            "completion": [c for _, c in examples],
            "source": ["generation"] * len(examples),
        }
    )

    def operator(trainer: str, workers: int, n_steps: int) -> tuple[float, float]:
        out = Path(tempfile.mkdtemp())
        params = ShardTrain.Params(
            steps=n_steps,
            growth=1.0,
            lr=lr,
            batch_size=batch_size // workers,
            workers=workers,
            cpus_per_worker=threads // workers,
            max_length=max_length,
            trainer=trainer,
            warmup=0,
        )
        ctx = Context(params, "bench", {"model": out}, DefaultResources(cpus=0))
        t0 = time.perf_counter()
        ShardTrain().run(ctx, model_dir, table)
        return time.perf_counter() - t0, 0.0

    import ray

    ray.init(
        num_cpus=threads,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        logging_level="WARNING",
    )
    try:
        bare_step = bare()
        # two runs of different length on Ray Train: the slope is the time per step, the
        # intercept the fixed cost of a call (worker start, model load, checkpoint, copy)
        results = {}
        for workers in (1, 2):
            short, _ = operator("ray", workers, steps)
            long, _ = operator("ray", workers, 3 * steps)
            per_step = (long - short) / (2 * steps)
            results[f"ray_{workers}w"] = {
                "step_s": round(per_step, 4),
                "fixed_start_s": round(short - steps * per_step, 2),
                "ratio_vs_bare": round(bare_step / per_step, 3),
            }
    finally:
        ray.shutdown()
    return {
        "steps": steps,
        "batch_size": batch_size,
        "threads": threads,
        "bare_step_s": round(bare_step, 4),
        **results,
    }


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--spec", default=str(ROOT / "pipelines" / "star.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--store", help="default: a fresh temporary store")
    ap.add_argument("--pipeline", action="store_true")
    ap.add_argument(
        "--from-record",
        action="store_true",
        help="with --pipeline and --store: analyse the store's last run of the spec",
    )
    ap.add_argument("--sampler", action="store_true")
    ap.add_argument("--trainer", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--json")
    args = ap.parse_args()
    import stardag

    store = args.store or tempfile.mkdtemp(prefix="stardag-star-")
    out: dict = {"machine": machine(), "spec": args.spec, "overrides": args.overrides}
    if args.pipeline:
        out["pipeline"] = bench_pipeline(Path(args.spec), args.overrides, store, args.from_record)
        print(json.dumps({k: v for k, v in out["pipeline"].items() if k != "stages"}, indent=1))
        for node, s in out["pipeline"]["stages"].items():
            print(
                f"  {node:<18} {s['status']:<9} wall {s['wall_s']:>8.2f}s  operator {s['operator_s']:>8.2f}s"
            )
    if args.sampler or args.trainer:
        stardag.run(
            args.spec,
            overrides=args.overrides,
            store=store,
            until=["base", "examples@1"],
            progress=False,
        )
        model_dir = stardag.read(args.spec, "base", overrides=args.overrides, store=store)
        if args.sampler:
            prompts = stardag.read(
                args.spec, "train_prompts", overrides=args.overrides, store=store
            )
            out["sampler"] = bench_sampler(
                model_dir, prompts["prompt"].to_list(), 250, 80, args.threads
            )
            print(json.dumps(out["sampler"], indent=1))
        if args.trainer:
            ex = stardag.read(
                args.spec, "examples", iteration=1, overrides=args.overrides, store=store
            )
            examples = list(zip(ex["prompt"].to_list(), ex["completion"].to_list()))
            out["trainer"] = bench_trainer(
                model_dir, examples, args.train_steps, 32, args.threads, 128, 1e-3
            )
            print(json.dumps(out["trainer"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
