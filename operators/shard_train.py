"""Fine-tuning on the kept examples, as data-parallel workers that the engine runs
(`ctx.train`: Ray Train's workers, one per GPU or CPU workers, or this process with
`trainer: torch`), each training on its shard of the data, loss on the rationale and answer
only.
Each STaR iteration starts from the base model by default, as the paper does, with a step
budget of `steps * growth ** (iteration - 1)`."""

from __future__ import annotations

import random
import sys
import time
import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field

from stardag.operator import Dataset, DefaultResources, Model, Operator, Params

from .dedupe import EXAMPLES


class LoraParams(Params):
    """Low-rank adapters (through `peft`) instead of full fine-tuning: only the adapters
    train, and they are merged into the weights before saving, so the stage's output is a
    plain model directory that `sample`, `evaluate` and the vLLM backend load as any other."""

    r: int = Field(16, gt=0)
    alpha: float = 32
    dropout: float = Field(0.05, ge=0, lt=1)
    # None: peft's defaults for the architecture (attention projections)
    target_modules: list[str] | None = None


class TrainParams(Params):
    steps: int = 40
    growth: float = 1.2
    iteration: int = 1
    start: Literal["base", "previous"] = "base"
    lr: float = 1e-5
    warmup: int = 10
    min_lr_ratio: float = 1.0
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    seed: int = 0
    workers: int = 1
    cpus_per_worker: float = 1
    use_gpu: bool = False
    bf16: bool = False
    trainer: Literal["ray", "torch"] = "ray"
    lora: LoraParams | None = None
    # a checkpoint (weights, optimizer, data order, RNG) every this many steps, kept in the
    # store until the model is published: a killed training resumes from the last one
    checkpoint_every: int = Field(50, gt=0)
    # a line in the stage's log every this many steps: loss, learning rate, tokens/s (0: none)
    log_every: int = Field(10, ge=0)
    # recompute activations in the backward pass instead of keeping them: less memory,
    # about a third more compute, the same loss
    gradient_checkpointing: bool = False
    # the batch's examples laid end to end in rows of max_length tokens, each attending only
    # to itself: less padding, the same loss (see hf_common.pack)
    packing: bool = False


def step_budget(steps: int, growth: float, iteration: int) -> int:
    """The paper's schedule: `steps` in the first iteration, times `growth` each next one."""
    return max(1, round(steps * growth ** max(0, iteration - 1)))


def say(message: str):
    """A line in the stage's log from a training worker. Written to stderr directly: Ray
    Train patches `print` in its workers, and every printed line reached the log twice."""
    sys.stderr.write(f"  {message}\n")
    sys.stderr.flush()


def train_loop(config: dict, session):
    """Runs on every worker (a stardag.training.TrainSession: its rank, device, checkpoints)."""
    import torch

    from . import hf_common

    rank, world = session.rank, session.world_size
    hf_common.set_threads(config["cpus_per_worker"])
    torch.manual_seed(config["seed"])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_common.quiet()
    tok = AutoTokenizer.from_pretrained(config["start"])
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(config["start"], dtype=torch.float32)
    if config["gradient_checkpointing"]:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if config["lora"]:
        model = with_lora(model, config["lora"])
    model = session.prepare(model)
    device = session.device
    inner = getattr(model, "module", model)
    # fewer examples than workers: every worker takes them all rather than none
    shard = config["examples"][rank::world] or config["examples"]
    data = hf_common.encode_examples(tok, shard, config["max_length"])
    rng = random.Random(config["seed"] * 1000 + rank)
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=config["lr"], weight_decay=config["weight_decay"])
    model.train()
    order: list[int] = []
    bs, steps = config["batch_size"], config["total_steps"]
    t0, losses = time.monotonic(), []
    first = 0
    state_dir = hf_common.latest_state(session.latest_checkpoint())
    if state_dir is not None:
        state = hf_common.load_state(state_dir, inner, opt, rank)
        first, order, losses = state["step"], state["order"], state["losses"]
        rng.setstate(hf_common.as_rng_state(state["rng"]))
        if rank == 0:
            say(f"resumed training from the checkpoint at step {first} of {steps}")
    seen, since, logged = 0, time.monotonic(), len(losses)
    for step in range(first, steps):
        opt.zero_grad(set_to_none=True)
        for _ in range(config["grad_accum"]):
            if len(order) < bs:
                more = list(range(len(data)))
                rng.shuffle(more)
                order.extend(more * max(1, -(-bs // max(1, len(more)))))
            idx, order = order[:bs], order[bs:]
            batch = [data[i] for i in idx]
            seen += sum(len(ids) for ids, _ in batch)
            if config["packing"]:
                ids, pos, lab = (
                    t.to(device)
                    for t in hf_common.pack(batch, config["max_length"], tok.pad_token_id)
                )
                inputs = dict(input_ids=ids, position_ids=pos, labels=lab, use_cache=False)
            else:
                ids, att, lab = (t.to(device) for t in hf_common.collate(batch, tok.pad_token_id))
                inputs = dict(input_ids=ids, attention_mask=att, labels=lab)
            with torch.autocast(
                device_type="cuda", dtype=torch.bfloat16, enabled=config["bf16"] and device != "cpu"
            ):
                loss = model(**inputs).loss / config["grad_accum"]
            loss.backward()
        for g in opt.param_groups:
            g["lr"] = hf_common.lr_at(
                step, steps, config["lr"], config["warmup"], config["min_lr_ratio"]
            )
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        losses.append(loss.item() * config["grad_accum"])
        every = config["log_every"]
        if rank == 0 and every and ((step + 1) % every == 0 or step + 1 == steps):
            recent = losses[logged:]  # the steps since the last line
            rate = seen * world / max(time.monotonic() - since, 1e-9)
            say(
                f"step {step + 1}/{steps}: loss {sum(recent) / len(recent):.4f}, "
                f"lr {opt.param_groups[0]['lr']:.3g}, {rate:.0f} tokens/s"
            )
            seen, since, logged = 0, time.monotonic(), len(losses)
        if (step + 1) % config["checkpoint_every"] == 0 and step + 1 < steps:
            done = step + 1
            session.checkpoint(
                lambda d, done=done, order=order: hf_common.save_state(
                    d, inner, opt, done, order, rng, losses, rank
                ),
                {"step": done},
            )
    metrics = {
        "loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
        "steps": steps,
        "seconds": time.monotonic() - t0,
        "resumed_from": first,
    }

    def save_model(out: Path):
        final = inner
        if config["lora"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                final = final.merge_and_unload()
        hf_common.save(final, tok, out)
        write_training_log(out, losses, config)

    session.finish(save_model, metrics)


TRAINING_LOG = "training_log.json"


def write_training_log(out: Path, losses: list[float], config: dict):
    """Every step's loss and learning rate beside the weights, for `stardag report`'s curves.
    Only what the run determines (no timings), so the model's content hash stays
    reproducible; a resumed training logs the steps before the kill from its checkpoint."""
    import json

    from . import hf_common

    steps = config["total_steps"]
    log = {
        "steps": [
            {
                "step": i + 1,
                "loss": loss,
                "lr": hf_common.lr_at(
                    i, steps, config["lr"], config["warmup"], config["min_lr_ratio"]
                ),
            }
            for i, loss in enumerate(losses)
        ]
    }
    (out / TRAINING_LOG).write_text(json.dumps(log))


def with_lora(model, lora: dict):
    """The model wrapped with trainable low-rank adapters; its own weights frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ValueError("lora: needs peft: pip install 'stardag[lora]'") from None
    config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # GPT-2's Conv1D: peft sets fan_in_fan_out itself and says so
        warnings.simplefilter("ignore", UserWarning)
        return get_peft_model(model, config)


class ShardTrain(Operator):
    version = "2"
    inputs = {"base": Model(), "examples": Dataset(EXAMPLES), "previous": Model(optional=True)}
    outputs = {"model": Model()}
    # the stage only orchestrates: Ray Train's workers take the CPUs/GPUs (see STACK-NOTES:
    # an orchestrating task holding CPUs deadlocks a small machine)
    resources = DefaultResources(cpus=0)
    Params = TrainParams

    def run(self, ctx, base, examples, previous=None):
        p = ctx.params
        if examples.height == 0:
            raise ValueError(
                "no training examples: every sample was wrong (try more samples, "
                "a higher temperature, or rationalization)"
            )
        start = previous if p.start == "previous" and previous is not None else base
        config = {
            **p.model_dump(),
            "start": str(start),
            "examples": list(zip(examples["prompt"].to_list(), examples["completion"].to_list())),
            "total_steps": step_budget(p.steps, p.growth, p.iteration),
        }
        ctx.log(
            f"{examples.height} examples, {config['total_steps']} steps from "
            f"{'the previous model' if start is previous else 'the base model'}, "
            f"{p.workers} {'GPU' if p.use_gpu else 'CPU'} worker(s) ({p.trainer})"
            + (f", LoRA r={p.lora.r}" if p.lora else "")
        )
        metrics = ctx.train(
            train_loop,
            config,
            workers=p.workers,
            cpus_per_worker=p.cpus_per_worker,
            gpus_per_worker=1 if p.use_gpu else 0,
            backend="local" if p.trainer == "torch" else "ray",
        )
        ctx.log(
            f"done: loss {metrics['loss']:.4f}, {metrics['seconds']:.1f}s in the loop"
            + (
                f" (resumed at step {metrics['resumed_from']})"
                if metrics.get("resumed_from")
                else ""
            )
        )
