"""The default model: a small character-level GPT-2 (Hugging Face config, tokenizer and
safetensors, like any model) pretrained on synthetic addition scratchpads. The mix of digit
lengths gives it the foothold STaR needs: short additions well learned, the longest ones
rare, so that the outer loop has something to teach."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stardag.operator import Dataset, DefaultResources, Model, Operator, Params


class CharModel(Operator):
    version = "1"
    inputs = {"exclude": Dataset({"question": "string"}, optional=True)}
    outputs = {"model": Model()}
    resources = DefaultResources(cpus=2)

    class Params(Params):
        n_layer: int = 3
        n_embd: int = 128
        n_head: int = 4
        n_positions: int = 160
        steps: int = 1500
        batch_size: int = 64
        lr: float = 2e-3
        warmup: int = 100
        mix: dict[int, float] = {1: 0.3, 2: 0.3, 3: 0.25, 4: 0.135, 5: 0.015}
        # the share of hinted examples, or {digits: share} per length
        hint_share: float | dict[int, float] = 0.1
        # "restated": hinted examples restate the hint's digits on every scratchpad line,
        # where the model finds them by content (see addition.hinted_scratchpad)
        hint_format: Literal["prompt", "restated"] = "prompt"
        # "inline": the prompt ends where the first line's operands end and the completion
        # starts at its ':' (prompts `{question}` and `{question}|{hint}`, no newline), so
        # the model never copies the prompt's line (see addition.LAYOUTS)
        layout: Literal["line", "inline"] = "line"
        corpus_size: int = 50_000
        seed: int = 0
        # the training state is saved every this many steps (on a local store): a killed
        # pretraining resumes from the last one, with the same result
        checkpoint_every: int = Field(100, gt=0)

    def run(self, ctx, exclude=None):
        import random

        from . import addition, hf_common, tiny_gpt

        p = ctx.params
        hf_common.set_threads(ctx.resources.cpus)
        rng = random.Random(p.seed)
        held = set(exclude["question"].to_list()) if exclude is not None else None
        corpus = addition.pretrain_examples(
            rng,
            p.corpus_size,
            p.mix,
            p.hint_share,
            exclude=held,
            hint_format=p.hint_format,
            layout=p.layout,
        )
        tok = tiny_gpt.make_tokenizer()
        model = tiny_gpt.make_model(tok, p.n_layer, p.n_embd, p.n_head, p.n_positions, p.seed)
        kept = ctx.checkpoint_dir("pretrain")  # checkpoints kept until the model is published
        tiny_gpt.pretrain(
            model,
            tok,
            corpus,
            p.steps,
            p.batch_size,
            p.lr,
            p.warmup,
            p.seed,
            log=lambda step, loss, lr: ctx.progress(step, p.steps, "steps", loss=loss),
            state_dir=str(kept / "state") if kept else None,
            checkpoint_every=p.checkpoint_every,
            resumed=lambda step: ctx.log(f"resumed from the checkpoint at step {step}"),
        )
        hf_common.save(model, tok, ctx.output_dir("model"))
