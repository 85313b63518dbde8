"""Where a word-problem run (`pipelines/smol_arith.yaml` and its ablation) is right and wrong:
held-out accuracy per kind of fact (an addition with or without a carry, a subtraction with
or without a borrow), with 95% Wilson intervals; what the wrong held-out answers did (the
wrong operation, a wrong fact, no equation); and the generated samples whose answer was
right but whose equation was not (what `mode: steps` keeps out of training). Read from the
store; nothing is run.

    stardag run pipelines/smol_arith.yaml
    python bench/story_errors.py [--spec pipelines/smol_arith.yaml] [--store DIR]
        [--json docs/smol-arith-errors.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from operators import stories  # noqa: E402  (the checkout's, not an installed copy)


def kind_of(question: str) -> str:
    a, op, b = stories.parse_question(question)
    if op == "add":
        return "add, carry" if a + b >= 10 else "add, no carry"
    return "sub, borrow" if a >= 10 else "sub, no borrow"


def error_of(question: str, completion: str) -> str:
    """What a wrong completion did: its first equation's operation or fact, or no equation."""
    _, op, _ = stories.parse_question(question)
    found = stories._EQUATION_RE.findall(completion)
    if not found:
        return "no equation"
    x, sign, y, z = found[0]
    if sign != ("+" if op == "add" else "-"):
        return "wrong operation"
    return (
        "wrong fact" if (int(x) + int(y) if sign == "+" else int(x) - int(y)) != int(z) else "other"
    )


def summary(spec: str, store: str | None) -> dict:
    import polars as pl

    import stardag
    from stardag import api
    from stardag.report import wilson

    graph = api.load(spec, store=store).graph
    iterations = sorted({n.iteration for n in graph.nodes.values() if n.iteration is not None})
    out: dict = {"spec": spec, "iterations": []}
    for it in [0, *iterations]:
        stage, at = ("evaluate_base", None) if it == 0 else ("evaluate", it)
        preds = stardag.read(spec, stage, iteration=at, output="predictions", store=store)
        total, right, errors = Counter(), Counter(), Counter()
        for row in preds.iter_rows(named=True):
            kind = kind_of(row["question"])
            total[kind] += 1
            right[kind] += bool(row["correct"])
            if not row["correct"]:
                errors[error_of(row["question"], row["completion"])] += 1
        entry: dict = {
            "iteration": it,
            "by_kind": {
                k: {
                    "n": total[k],
                    "accuracy": right[k] / total[k],
                    "ci95": wilson(right[k] / total[k], total[k]),
                }
                for k in sorted(total)
            },
            "errors": dict(sorted(errors.items())),
        }
        if it:
            v = stardag.read(spec, "verified", iteration=it, store=store)
            answer_right = v.filter(pl.col("pred") == pl.col("answer"))
            entry["generated"] = {
                "answer_right": answer_right.height,
                "steps_right": int(v["correct"].sum()),
                "answer_right_steps_wrong": answer_right.filter(~pl.col("correct")).height,
            }
        out["iterations"].append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(ROOT / "pipelines" / "smol_arith.yaml"))
    ap.add_argument("--store", default=None)
    ap.add_argument("--json", default=None, help="also write the summary here")
    args = ap.parse_args()
    result = summary(args.spec, args.store)
    for entry in result["iterations"]:
        kinds = ", ".join(
            f"{k} {v['accuracy']:.1%} [{v['ci95'][0]:.1%}, {v['ci95'][1]:.1%}] (n={v['n']})"
            for k, v in entry["by_kind"].items()
        )
        print(f"iteration {entry['iteration']}: {kinds}")
        print(f"  wrong held-out answers: {entry['errors']}")
        if "generated" in entry:
            print(f"  generated samples: {entry['generated']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
