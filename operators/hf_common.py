"""Hugging Face helpers shared by the operators that load, sample from and train causal LMs.
torch and transformers are imported inside the functions."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path


def quiet():
    """No per-file progress bars or advisory warnings from transformers in stage logs."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # e.g. the GGUF conversion's bar
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def set_threads(cpus: float | None):
    import torch

    n = max(
        1, int(cpus or 0) or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count() or 1
    )
    torch.set_num_threads(n)


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def require_safetensors(path: str | Path):
    """Refuse a model directory without safetensors weights: the other formats (PyTorch
    `.bin`, `.pt`) are pickles, which can run code when loaded."""
    from stardag.operator import InputError

    path = Path(path)
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in path.glob(pattern))
        found = f" (it has {', '.join(pickles[:3])}: pickle files, never loaded)" if pickles else ""
        raise InputError(
            f"{path}: no safetensors weights{found}; convert the model with "
            "save_pretrained(..., safe_serialization=True)"
        )


@lru_cache(maxsize=2)
def load(path: str, dtype: str = "float32", device: str = "cpu"):
    """(model, tokenizer) from a model directory, loaded once per process. No remote code,
    safetensors weights only."""
    require_safetensors(path)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, dtype), use_safetensors=True
    )
    model.to(device).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


# a committed shard of samples: prompt index, sample index, completion, token counts, and
# why the completion ended
SHARD_COLUMNS = ("i", "k", "text", "pt", "ct", "finish")


def generate(
    model,
    tok,
    prompts: Sequence[str],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    stop: Sequence[str] = (),
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[..., None] | None = None,
    shards=None,
    shard_batches: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[list[tuple[str, int, int, str]]]:
    """For each prompt, `n` samples as (completion, prompt tokens, completion tokens, finish
    reason): "stop" (a stop string ended it), "eos" (the model's end token) or "length"
    (cut off at `max_new_tokens`).
    Batched with left padding and the KV cache; prompts are sorted by length so that a
    batch needs little padding. Greedy when temperature is 0; otherwise each batch is seeded
    from `seed` and its position, so a re-run gives the same samples.

    With `shards` (a shard log: get/put of Arrow tables), every `shard_batches` batches are
    committed as one shard, and shards already committed are read back instead of
    generated: a killed run resumes where it stopped, with the same result."""
    import pyarrow as pa

    out: list[list] = [[None] * n for _ in prompts]
    done_tokens, t0 = 0, time.monotonic()
    plan = batch_plan(prompts, n, batch_size)
    per_shard = shard_batches if shards is not None and shard_batches > 0 else len(plan) or 1
    shard_of = {b: b // per_shard for b in range(len(plan))}
    resumed: set[int] = set()
    if shards is not None:
        for si in sorted(set(shard_of.values())):
            table = shards.get(si)
            if table is None or table.column_names != list(SHARD_COLUMNS):
                continue
            resumed.add(si)
            for i, k, text, pl_, cl, finish in zip(
                *(table.column(c).to_pylist() for c in SHARD_COLUMNS)
            ):
                out[i][k] = (text, pl_, cl, finish)
        if resumed and log:
            log(
                f"resumed {len(resumed)} of {len(set(shard_of.values()))} shards committed "
                "by an interrupted run"
            )
    shard_rows: list[tuple] = []
    done = 0
    for b, batch in enumerate(plan):
        done += len(batch)
        if shard_of[b] in resumed:
            continue
        got = generate_batch(
            model,
            tok,
            [prompts[i] for i, _ in batch],
            b,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            stop=stop,
            seed=seed,
        )
        for (i, k), sample in zip(batch, got):
            out[i][k] = sample
            shard_rows.append((i, k, *sample))
            done_tokens += sample[2]
        if shards is not None and (b + 1 == len(plan) or shard_of[b + 1] != shard_of[b]):
            columns = map(list, zip(*shard_rows))
            shards.put(shard_of[b], pa.table(dict(zip(SHARD_COLUMNS, columns))))
            shard_rows = []
        if progress:
            elapsed = time.monotonic() - t0
            progress(
                done, sum(map(len, plan)), "samples", tokens_per_s=done_tokens / max(elapsed, 1e-9)
            )
    return out


def batch_plan(prompts: Sequence[str], n: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """The batches of (prompt index, sample index): prompts sorted by length, so that a
    batch needs little padding. Batch b's samples are seeded from b: the plan, not the
    worker that runs it, decides every sample."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    jobs = [(i, k) for i in order for k in range(n)]
    return [jobs[s : s + batch_size] for s in range(0, len(jobs), batch_size)]


def generate_batch(
    model,
    tok,
    texts: Sequence[str],
    b: int,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    stop: Sequence[str] = (),
    seed: int = 0,
) -> list[tuple[str, int, int, str]]:
    """Batch number `b` of a plan: (completion, prompt tokens, completion tokens, finish
    reason) per text, left-padded, with the KV cache; seeded from `seed` and `b`."""
    import torch

    tok.padding_side = "left"
    kwargs: dict = dict(do_sample=False)
    if temperature > 0:
        kwargs = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    with torch.inference_mode():
        enc = tok(list(texts), return_tensors="pt", padding=True, add_special_tokens=False).to(
            model.device
        )
        if temperature > 0:
            torch.manual_seed(seed * 1_000_003 + b)
        criteria = [_StopStrings(tok, stop, enc["input_ids"].shape[1])] if stop else None
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            stopping_criteria=criteria,
            **kwargs,
        )
    new = gen[:, enc["input_ids"].shape[1] :]
    decoded = tok.batch_decode(new, skip_special_tokens=True)
    prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
    out = []
    for text, pl_, ids in zip(decoded, prompt_lengths, new.tolist()):
        reason = finish_reason(text, stop, tok.eos_token_id in ids)
        out.append((truncate(text, stop), int(pl_), generated(ids, reason, tok), reason))
    return out


def generated(ids: Sequence[int], reason: str, tok) -> int:
    """How many tokens the model generated, its end token counted (as vLLM and OpenAI's usage
    count it). A sequence that ended before the batch's longest is padded, and the padding
    may be the end token itself: so the end token is looked for only when it ended one."""
    if reason == "eos":
        return ids.index(tok.eos_token_id) + 1
    return sum(i != tok.pad_token_id for i in ids)


def _StopStrings(tok, stop: Sequence[str], start: int):
    """Stops each sequence once its new text contains a stop string. (transformers' own
    `stop_strings` assumes a byte-level BPE vocabulary and fails on others.)"""
    import torch
    from transformers import StoppingCriteria

    class StopStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tok.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in texts], device=input_ids.device)

    return StopStrings()


def finish_reason(text: str, stop: Sequence[str], eos: bool) -> str:
    """Why a completion ended, as vLLM and OpenAI name it: a stop string in its text, else
    the end token among its tokens, else the token limit. (A sequence that ends is padded,
    perhaps with the end token itself, so the stop string is looked for first.)"""
    if any(s in text for s in stop):
        return "stop"
    return "eos" if eos else "length"


def truncate(text: str, stop: Sequence[str]) -> str:
    """The text up to the first stop string."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def encode_examples(tok, examples: Sequence[tuple[str, str]], max_length: int | None):
    """(ids, labels) per (prompt, completion): eos appended, labels -100 on the prompt, so
    the loss falls on the rationale and answer only."""
    eos = tok.eos_token_id
    out = []
    for prompt, completion in examples:
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion, add_special_tokens=False)["input_ids"] + [eos]
        ids, labels = p + c, [-100] * len(p) + c
        if max_length:
            ids, labels = ids[:max_length], labels[:max_length]
        out.append((ids, labels))
    return out


def collate(batch, pad_id: int):
    """Right-padded (input_ids, attention_mask, labels) tensors."""
    import torch

    n = max(len(ids) for ids, _ in batch)
    ids_t = torch.full((len(batch), n), pad_id, dtype=torch.long)
    lab_t = torch.full((len(batch), n), -100, dtype=torch.long)
    att_t = torch.zeros((len(batch), n), dtype=torch.long)
    for i, (ids, labels) in enumerate(batch):
        ids_t[i, : len(ids)] = torch.tensor(ids)
        lab_t[i, : len(labels)] = torch.tensor(labels)
        att_t[i, : len(ids)] = 1
    return ids_t, att_t, lab_t


def pack(batch, max_length: int, pad_id: int):
    """(input_ids, position_ids, labels) tensors with the examples laid end to end in rows
    of at most `max_length` tokens (first fit, in the given order), instead of one padded
    row each. Positions restart at 0 for each example, which transformers' attention
    masking reads as separate sequences (with no attention mask given and no cache), and
    each example's first label is ignored, as no token predicts it when it stands alone:
    the loss is the padded batch's, with less padding."""
    import torch

    rows: list[list[tuple[list[int], list[int]]]] = []
    for ids, labels in batch:
        row = next((r for r in rows if sum(len(i) for i, _ in r) + len(ids) <= max_length), None)
        if row is None:
            rows.append(row := [])
        row.append((ids, [-100] + labels[1:]))
    n = max(sum(len(i) for i, _ in r) for r in rows)
    ids_t = torch.full((len(rows), n), pad_id, dtype=torch.long)
    pos_t = torch.zeros((len(rows), n), dtype=torch.long)
    lab_t = torch.full((len(rows), n), -100, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for ids, labels in row:
            ids_t[r, at : at + len(ids)] = torch.tensor(ids)
            pos_t[r, at : at + len(ids)] = torch.arange(len(ids))
            lab_t[r, at : at + len(ids)] = torch.tensor(labels)
            at += len(ids)
        pos_t[r, at:] = torch.arange(n - at)  # the padding: a sequence of its own, no labels
    return ids_t, pos_t, lab_t


def save(model, tok, out: Path):
    """safetensors weights, config, generation config and tokenizer."""
    quiet()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def lr_at(step: int, steps: int, lr: float, warmup: int, min_ratio: float = 0.1) -> float:
    """Linear warmup to `lr`, then cosine decay to `min_ratio * lr` at `steps`."""
    import math

    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


# --- training state: everything a training loop needs to go on as if it had not stopped --


def save_state(
    d: Path, model, opt, step: int, order: list[int], rng, losses: list[float], rank: int = 0
):
    """Rank 0 writes the weights and optimizer (data-parallel ranks hold the same ones) as
    safetensors (no pickle); every rank writes its own data order and RNG states."""
    import torch
    from safetensors.torch import save_file, save_model

    d.mkdir(parents=True, exist_ok=True)
    meta = {"step": step, "order": order, "rng": rng.getstate(), "losses": losses}
    if rank == 0:
        save_model(model, str(d / "weights.safetensors"))
        sd = opt.state_dict()
        tensors = {
            f"{i}.{name}": (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
            for i, st in sd["state"].items()
            for name, v in st.items()
        }
        save_file(tensors, str(d / "optimizer.safetensors"))
        meta["param_groups"] = sd["param_groups"]
    save_file({"torch_rng": torch.get_rng_state()}, str(d / f"rng-rank{rank}.safetensors"))
    (d / f"state-rank{rank}.json").write_text(json.dumps(meta))


def load_state(d: Path, model, opt, rank: int) -> dict:
    import torch
    from safetensors.torch import load_file, load_model

    load_model(model, str(d / "weights.safetensors"))
    state: dict = {}
    for name, v in load_file(str(d / "optimizer.safetensors")).items():
        i, field = name.split(".", 1)
        state.setdefault(int(i), {})[field] = v
    groups = json.loads((d / "state-rank0.json").read_text())["param_groups"]
    opt.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(load_file(str(d / f"rng-rank{rank}.safetensors"))["torch_rng"])
    return json.loads((d / f"state-rank{rank}.json").read_text())


def as_rng_state(s):
    """A `random.Random` state read back from JSON."""
    return (s[0], tuple(s[1]), s[2])


def save_state_atomically(d: Path, *args, **kwargs):
    """`save_state` into `d`, replacing what was there only once the new state is whole."""
    import shutil

    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_state(tmp, *args, **kwargs)
    old = d.with_name(d.name + ".old")
    if d.exists():
        d.rename(old)
    tmp.rename(d)
    shutil.rmtree(old, ignore_errors=True)


def latest_state(d: str | Path | None) -> Path | None:
    """`d` if it holds a whole saved state (or its previous copy, if a crash came between
    the two renames of `save_state_atomically`)."""
    if not d:
        return None
    d = Path(d)
    for c in (d, d.with_name(d.name + ".old")):
        if (c / "state-rank0.json").exists():
            return c
    return None
