"""Why rationalization rescues so little in the default pipeline: the pretrained model M0 (the
spec's `base` stage, from the store) on held-out problems, greedy, per digit count, with the
plain prompt (`a+b`) and with the hinted prompt (`a+b|answer`): the hint lift. For the
failures of the longest length, the first scratchpad field that is wrong: an operand
restatement, the digit pair, the carry in, the sum (carry out and digit), the result so far,
a line that does not parse, a missing or extra line, or the answer line.

    stardag run pipelines/star.yaml --until base
    python bench/hint_diagnosis.py [--spec pipelines/star.yaml] [--store DIR]
        [--per-digit 1000] [--json docs/hint-diagnosis.json]

The held-out problems are `make_problems(seed, digits, per_digit, "heldout")`: their first
`heldout_per_digit` per length are the spec's own held-out set (kept out of pretraining);
the script rebuilds the pretraining corpus from the `base` stage's params and reports how
many of the others it holds (for 1 and 2 digits, most: the corpus covers those spaces).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def corpus_questions(params: dict, exclude: set[str]) -> set[str]:
    """The questions of the `base` stage's pretraining corpus, rebuilt as it builds it."""
    import random

    from operators import addition

    mix = {int(k): float(v) for k, v in params["mix"].items()}
    rng = random.Random(params["seed"])
    corpus = addition.pretrain_examples(
        rng, params["corpus_size"], mix, params["hint_share"], exclude=exclude
    )
    return {addition.strip_hint(p).strip() for p, _ in corpus}


def main():
    import polars as pl

    from operators import addition, hf_common
    from stardag import api
    from stardag.report import wilson

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(ROOT / "pipelines" / "star.yaml"))
    ap.add_argument("--store", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--per-digit", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--json", default=str(ROOT / "docs" / "hint-diagnosis.json"))
    args = ap.parse_args()

    ld, manifest = api.artifact(args.spec, "base", None, args.overrides, args.store)
    problems_node = ld.graph.nodes["problems"]
    pp = problems_node.params_json
    model_dir = ld.store.model_dir(manifest["key"], "model")
    hf_common.set_threads(os.cpu_count())
    model, tok = hf_common.load(str(model_dir))
    held = addition.make_problems(pp["seed"], pp["digits"], pp["heldout_per_digit"], "heldout")
    in_corpus = corpus_questions(ld.graph.nodes["base"].params_json, {r["question"] for r in held})
    rows = addition.make_problems(pp["seed"], pp["digits"], args.per_digit, "heldout")
    t0 = time.perf_counter()
    out: dict = {"per_digit": {}, "fields": {}}
    completions = {}
    layout = ld.graph.nodes["base"].params_json.get("layout", "line")
    for hinted in (False, True):
        texts = [
            addition.prompt(r["question"], r["answer"] if hinted else None, layout) for r in rows
        ]
        got = []
        for b in range(0, len(texts), args.batch_size):
            batch = texts[b : b + args.batch_size]
            got += [
                c for c, *_ in hf_common.generate_batch(model, tok, batch, b, max_new_tokens=120)
            ]
        # a model pretrained on restated hints writes them into its lines: the rationale is
        # what is left once they are deleted (a no-op on plain completions)
        completions[hinted] = [addition.unhint(c) for c in got]
    seconds = time.perf_counter() - t0
    table = pl.DataFrame(
        {
            "digits": [r["digits"] for r in rows],
            "question": [r["question"] for r in rows],
            "answer": [r["answer"] for r in rows],
            "plain": completions[False],
            "hinted": completions[True],
        }
    )
    for n in sorted(set(table["digits"])):
        part = table.filter(pl.col("digits") == n)
        entry = {"n": part.height, "in_pretraining": int(part["question"].is_in(in_corpus).sum())}
        for kind in ("plain", "hinted"):
            right = sum(addition.parse_answer(c) == a for c, a in zip(part[kind], part["answer"]))
            share = right / part.height
            entry[kind] = {"accuracy": round(share, 4), "ci95": wilson(share, part.height)}
            entry[f"{kind}_steps"] = round(
                sum(addition.check_steps(q, c) for q, c in zip(part["question"], part[kind]))
                / part.height,
                4,
            )
        entry["hint_lift"] = round(entry["hinted"]["accuracy"] - entry["plain"]["accuracy"], 4)
        out["per_digit"][str(n)] = entry
    longest = max(table["digits"])
    part = table.filter(pl.col("digits") == longest)
    for kind in ("plain", "hinted"):
        where = Counter()
        lines = Counter()
        for q, c, a in zip(part["question"], part[kind], part["answer"]):
            if addition.parse_answer(c) == a:
                continue
            what, line = addition.first_wrong_field(q, c)
            where[what] += 1
            lines[str(line)] += 1
        out["fields"][kind] = {
            "digits": longest,
            "failures": sum(where.values()),
            "first_wrong_field": dict(where.most_common()),
            "first_wrong_line": dict(sorted(lines.items())),
        }
    out["machine"] = (
        f"{platform.node()}: {os.cpu_count()} CPUs ({platform.machine()}), "
        f"Python {platform.python_version()}"
    )
    out["model"] = manifest["key"]
    out["generation_s"] = round(seconds, 1)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"M0 ({manifest['key'][:12]}), greedy, {len(rows)} held-out problems, {seconds:.0f}s")
    print("digits    n  plain (95% CI)        hinted (95% CI)       lift   in pretraining")
    for n, e in out["per_digit"].items():
        pl_, hi = e["plain"], e["hinted"]
        print(
            f"{n:>6} {e['n']:>4}  {pl_['accuracy']:.3f} [{pl_['ci95'][0]:.3f}, {pl_['ci95'][1]:.3f}]"
            f"  {hi['accuracy']:.3f} [{hi['ci95'][0]:.3f}, {hi['ci95'][1]:.3f}]"
            f"  {e['hint_lift']:+.3f}  {e['in_pretraining']}"
        )
    for kind, f in out["fields"].items():
        print(f"{kind}: {f['failures']} failures at {f['digits']} digits; first wrong field:")
        for what, k in f["first_wrong_field"].items():
            print(f"  {what:<20} {k:>4}")
        print(f"  first wrong line: {f['first_wrong_line']}")


if __name__ == "__main__":
    main()
