"""Arithmetic STaR end to end in plain PyTorch + Hugging Face generate (no engine).

Pretrains a small character-level GPT-2 on generated additions (the base model M0), then runs
STaR iterations: greedy-sample every training problem with the previous model, keep the right
ones (by final answer or by the step checker), rationalize the failures with the answer as a
hint (stored without the hint), fine-tune M0 afresh on the kept examples for
steps * growth**(iteration-1) steps, evaluate on held-out problems per digit count.

    python bench/arith_prototype.py                       # recommended settings
    python bench/arith_prototype.py --no-rationalization
    python bench/arith_prototype.py --verifier steps
    python bench/arith_prototype.py --base-dir /tmp/base  # pretrain once, reuse for variants
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from operators import arith as A  # noqa: E402
from operators import charlm as C  # noqa: E402

DEFAULT_MIX = "1:0.1,2:0.27,3:0.3,4:0.31,5:0.02"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--digits", default="1-5", help="range of operand lengths, e.g. 1-5")
    p.add_argument("--mix", default=DEFAULT_MIX, help="pretraining digit mix 'n:weight,...'")
    p.add_argument("--hint-share", type=float, default=0.2, help="share of hinted pretraining prompts")
    p.add_argument("--n-layer", type=int, default=3)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-positions", type=int, default=160)
    p.add_argument("--pretrain-steps", type=int, default=1500)
    p.add_argument("--pretrain-batch", type=int, default=64)
    p.add_argument("--pretrain-lr", type=float, default=2e-3)
    p.add_argument("--pretrain-warmup", type=int, default=60)
    p.add_argument("--train-per-digit", type=int, default=200)
    p.add_argument("--heldout-per-digit", type=int, default=200)
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--ft-steps", type=int, default=150)
    p.add_argument("--growth", type=float, default=1.2)
    p.add_argument("--ft-batch", type=int, default=32)
    p.add_argument("--ft-lr", type=float, default=5e-4)
    p.add_argument("--ft-warmup", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--verifier", choices=["answer", "steps"], default="answer")
    p.add_argument("--no-rationalization", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="model init and training order")
    p.add_argument("--data-seed", type=int, default=0, help="problems and pretraining corpus")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--gen-batch", type=int, default=256)
    p.add_argument("--base-dir", default=None,
                   help="load the pretrained base from here if present, else pretrain and save it there")
    p.add_argument("--json-out", default=None, help="write the per-iteration numbers here")
    return p.parse_args(argv)


def digit_range(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


def evaluate(model, tok, heldout, max_new, gen_batch):
    prompts = [A.prompt(r["question"]) for r in heldout]
    outs = C.generate(model, tok, prompts, batch_size=gen_batch, max_new_tokens=max_new)
    per: dict[int, list[int]] = {}
    steps_ok = 0
    for r, o in zip(heldout, outs):
        per.setdefault(r["digits"], []).append(int(A.check_answer(r["answer"], o)))
        steps_ok += A.check_steps(r["question"], o)
    acc = {d: sum(v) / len(v) for d, v in sorted(per.items())}
    mean = sum(acc.values()) / len(acc)
    return acc, mean, steps_ok / len(heldout)


def fmt_acc(acc, mean):
    return " ".join(f"{d}d={a:.3f}" for d, a in acc.items()) + f"  mean={mean:.3f}"


def main(argv=None):
    args = parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    digits = digit_range(args.digits)
    mix = A.parse_mix(args.mix)
    train = A.make_problems(args.data_seed, digits, args.train_per_digit, split="train")
    heldout = A.make_problems(args.data_seed, digits, args.heldout_per_digit, split="heldout")
    top = max(max(digits), max(mix))
    max_new = len(A.scratchpad(10**top - 1, 10**top - 1)) + 2
    print(f"# args {json.dumps(vars(args))}", flush=True)
    print(f"# {len(train)} train problems, {len(heldout)} held-out, max_new_tokens={max_new}", flush=True)
    record = {"args": vars(args), "iterations": []}

    t0 = time.perf_counter()
    if args.base_dir and os.path.exists(os.path.join(args.base_dir, "config.json")):
        tok = AutoTokenizer.from_pretrained(args.base_dir)
        base = AutoModelForCausalLM.from_pretrained(args.base_dir)
        print(f"# loaded base from {args.base_dir}", flush=True)
        t_pre = 0.0
    else:
        tok = C.make_tokenizer()
        base = C.make_model(tok, args.n_layer, args.n_embd, args.n_head, args.n_positions, args.seed)
        nparams = sum(p.numel() for p in base.parameters())
        heldout_q = {r["question"] for r in heldout}
        corpus = A.pretrain_examples(random.Random(args.data_seed), args.pretrain_steps * args.pretrain_batch,
                                     mix, args.hint_share, exclude=heldout_q)
        print(f"# pretraining {nparams} params on {len(corpus)} examples", flush=True)
        C.pretrain(base, tok, corpus, args.pretrain_steps, args.pretrain_batch, args.pretrain_lr,
                   args.pretrain_warmup, args.seed,
                   log=lambda s, l, lr: print(f"  pretrain step {s} loss {l:.4f} lr {lr:.2e}", flush=True),
                   log_every=200)
        t_pre = time.perf_counter() - t0
        if args.base_dir:
            base.save_pretrained(args.base_dir)
            tok.save_pretrained(args.base_dir)
    base.eval()
    base_state = copy.deepcopy(base.state_dict())

    t1 = time.perf_counter()
    acc, mean, steps_share = evaluate(base, tok, heldout, max_new, args.gen_batch)
    t_eval0 = time.perf_counter() - t1
    print(f"iter 0  pretrain {t_pre:.1f}s  eval {t_eval0:.1f}s  held-out {fmt_acc(acc, mean)}  "
          f"correct-steps {steps_share:.3f}", flush=True)
    record["iterations"].append({"iteration": 0, "acc": acc, "mean": mean, "pretrain_s": t_pre,
                                 "eval_s": t_eval0, "heldout_steps_ok": steps_share})

    model = base
    total = t_pre + t_eval0
    for it in range(1, args.iterations + 1):
        ti = time.perf_counter()
        prompts = [A.prompt(r["question"]) for r in train]
        outs = C.generate(model, tok, prompts, batch_size=args.gen_batch, max_new_tokens=max_new,
                          temperature=args.temperature, seed=args.seed * 1000 + it)
        ok = (lambda r, o: A.check_steps(r["question"], o)) if args.verifier == "steps" else \
             (lambda r, o: A.check_answer(r["answer"], o))
        kept: dict[str, tuple[str, str, str]] = {}  # question -> (prompt, completion, source)
        failed = []
        for r, o in zip(train, outs):
            if ok(r, o):
                kept[r["question"]] = (A.prompt(r["question"]), o, "gen")
            else:
                failed.append(r)
        n_gen = len(kept)
        t_gen = time.perf_counter() - ti

        tr = time.perf_counter()
        n_rat = 0
        if not args.no_rationalization and failed:
            hp = [A.prompt(r["question"], hint=r["answer"]) for r in failed]
            houts = C.generate(model, tok, hp, batch_size=args.gen_batch, max_new_tokens=max_new,
                               temperature=args.temperature, seed=args.seed * 1000 + it + 500)
            for r, p, o in zip(failed, hp, houts):
                if ok(r, o):
                    kept[r["question"]] = (A.strip_hint(p), o, "rat")
                    n_rat += 1
        t_rat = time.perf_counter() - tr

        def steps_share_of(src):
            items = [(q, c) for q, (_, c, s) in kept.items() if s == src]
            return sum(A.check_steps(q, c) for q, c in items) / len(items) if items else float("nan")

        kept_steps_ok = sum(A.check_steps(q, c) for q, (_, c, _) in kept.items()) / max(1, len(kept))
        kept_by_digit: dict[int, int] = {}
        for q in kept:
            d = len(A.parse_question(q)[0].__str__())
            kept_by_digit[d] = kept_by_digit.get(d, 0) + 1

        tf = time.perf_counter()
        model = AutoModelForCausalLM.from_config(base.config)
        model.load_state_dict(base_state)
        model.generation_config = copy.deepcopy(base.generation_config)
        steps = int(round(args.ft_steps * args.growth ** (it - 1)))
        examples = [(p, c) for (p, c, _) in kept.values()]
        loss = float("nan")
        if examples:
            loss = C.pretrain(model, tok, examples, steps, args.ft_batch, args.ft_lr, args.ft_warmup,
                              args.seed + it, log=None, log_every=50)
        t_ft = time.perf_counter() - tf

        te = time.perf_counter()
        acc, mean, steps_share = evaluate(model, tok, heldout, max_new, args.gen_batch)
        t_ev = time.perf_counter() - te
        wall = time.perf_counter() - ti
        total += wall
        print(f"iter {it}  held-out {fmt_acc(acc, mean)}  correct-steps {steps_share:.3f}", flush=True)
        print(f"        kept gen={n_gen} rat={n_rat} (of {len(failed)} failed) by-digit={dict(sorted(kept_by_digit.items()))} "
              f"kept-steps-ok={kept_steps_ok:.3f} (gen {steps_share_of('gen'):.3f}, rat {steps_share_of('rat'):.3f})  "
              f"ft {steps} steps loss {loss:.4f}", flush=True)
        print(f"        times: sample {t_gen:.1f}s  rationalize {t_rat:.1f}s  finetune {t_ft:.1f}s  "
              f"eval {t_ev:.1f}s  iteration {wall:.1f}s  cumulative {total:.1f}s", flush=True)
        record["iterations"].append({
            "iteration": it, "acc": acc, "mean": mean, "heldout_steps_ok": steps_share,
            "kept_gen": n_gen, "kept_rat": n_rat, "failed": len(failed), "kept_by_digit": kept_by_digit,
            "kept_steps_ok": kept_steps_ok, "kept_steps_ok_gen": steps_share_of("gen"),
            "kept_steps_ok_rat": steps_share_of("rat"), "ft_steps": steps, "ft_loss": loss,
            "sample_s": t_gen, "rationalize_s": t_rat, "finetune_s": t_ft, "eval_s": t_ev,
            "iteration_s": wall, "cumulative_s": total,
        })
    print(f"# total {total:.1f}s", flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(record, f, indent=1, default=str)


if __name__ == "__main__":
    main()
