"""Problem source: n-digit addition with gold answers, train and held-out splits."""

from stardag.operator import Dataset, Operator, Params

PROBLEMS = {"id": "string", "question": "string", "answer": "string"}


class Arithmetic(Operator):
    version = "1"
    outputs = {"train": Dataset(PROBLEMS), "heldout": Dataset(PROBLEMS)}

    class Params(Params):
        seed: int = 0
        digits: list[int] = [1, 2, 3, 4, 5]
        train_per_digit: int = 200
        heldout_per_digit: int = 200

    def run(self, ctx):
        import polars as pl

        from . import addition

        p = ctx.params

        def table(split, per_digit):
            rows = addition.make_problems(p.seed, p.digits, per_digit, split=split)
            return pl.DataFrame(
                {
                    "id": [r["id"] for r in rows],
                    "question": [r["question"] for r in rows],
                    "answer": [r["answer"] for r in rows],
                    "meta": [{"digits": r["digits"]} for r in rows],
                }
            )

        return {
            "train": table("train", p.train_per_digit),
            "heldout": table("heldout", p.heldout_per_digit),
        }
