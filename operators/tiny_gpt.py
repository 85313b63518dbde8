"""A character-level GPT-2 for the arithmetic task: tokenizer, model, pretraining loop,
batched greedy generation.

torch, tokenizers and transformers are imported inside the functions, so that importing this
module is cheap. Everything here saves with ``save_pretrained`` and loads with
``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained`` (no remote code).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from .hf_common import collate, encode_examples, lr_at  # noqa: F401  (shared with shard_train)

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
#: the characters of the task (operators.addition.CHARS) plus a few spare symbols
VOCAB_CHARS = "0123456789+=|\n -*:,.?"


def make_tokenizer(chars: str = VOCAB_CHARS):
    """A `PreTrainedTokenizerFast` with one token per character of `chars` plus
    <pad>, <bos>, <eos>, <unk>. No special tokens are added when encoding; decoding gives the
    exact text back (no spaces between characters)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in chars:
        if ch not in vocab:
            vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # every single character (newline included) is its own pre-token
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    return fast


def make_model(
    tokenizer,
    n_layer: int = 3,
    n_embd: int = 128,
    n_head: int = 4,
    n_positions: int = 128,
    seed: int = 0,
):
    """A freshly initialized `GPT2LMHeadModel` sized for `tokenizer`, with bos/eos/pad ids set
    in the config and the generation config (greedy, stops at eos)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_inner=4 * n_embd,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(cfg)
    gc = model.generation_config
    gc.bos_token_id = tokenizer.bos_token_id
    gc.eos_token_id = tokenizer.eos_token_id
    gc.pad_token_id = tokenizer.pad_token_id
    gc.do_sample = False
    gc.max_length = None
    gc.max_new_tokens = 64
    return model


def pretrain(
    model,
    tokenizer,
    examples: Sequence[tuple[str, str]],
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    warmup: int = 50,
    seed: int = 0,
    log: Callable[[int, float, float], None] | None = None,
    log_every: int = 50,
    weight_decay: float = 0.01,
    state_dir: str | None = None,
    checkpoint_every: int = 0,
    resumed: Callable[[int], None] | None = None,
):
    """Train `model` in place on (prompt, completion) pairs for `steps` AdamW steps
    (warmup + cosine), loss on completion tokens only. Batches are drawn by walking
    shuffled epochs of `examples`. `log(step, loss, lr)` is called every `log_every` steps
    and at the end. Returns the mean loss of the last `log_every` steps. With `state_dir`,
    the whole training state is saved there every `checkpoint_every` steps, and a state
    found there is resumed from (`resumed(step)` is told): the same result as a run that
    never stopped."""
    import torch

    from . import hf_common

    if not examples:
        raise ValueError("no examples to train on")
    data = encode_examples(tokenizer, examples, model.config.n_positions)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    model.train()
    order: list[int] = []
    recent: list[float] = []
    pad = tokenizer.pad_token_id
    first = 0
    found = hf_common.latest_state(state_dir)
    if found is not None:
        meta = hf_common.load_state(found, model, opt, 0)
        first, order, recent = meta["step"], meta["order"], meta["losses"]
        rng.setstate(hf_common.as_rng_state(meta["rng"]))
        if resumed:
            resumed(first)
    for step in range(first, steps):
        if len(order) < batch_size:
            more = list(range(len(data)))
            rng.shuffle(more)
            order.extend(more)
        idx, order = order[:batch_size], order[batch_size:]
        ids, att, lab = collate([data[i] for i in idx], pad)
        cur = lr_at(step, steps, lr, warmup)
        for g in opt.param_groups:
            g["lr"] = cur
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        recent = recent[-log_every:]
        if log is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
            log(step + 1, sum(recent) / len(recent), cur)
        if (
            state_dir
            and checkpoint_every
            and (step + 1) % checkpoint_every == 0
            and step + 1 < steps
        ):
            hf_common.save_state_atomically(
                Path(state_dir), model, opt, step + 1, order, rng, recent
            )
    model.eval()
    return sum(recent) / max(1, len(recent))
