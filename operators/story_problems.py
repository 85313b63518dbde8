"""Problem source: one-step word problems on single-digit facts (see `operators.stories`),
train and held-out splits that never share a question."""

from typing import Literal

from pydantic import Field

from stardag.operator import Dataset, Operator, Params

from .arithmetic import PROBLEMS


class StoryProblems(Operator):
    version = "1"
    outputs = {"train": Dataset(PROBLEMS), "heldout": Dataset(PROBLEMS)}

    class Params(Params):
        seed: int = 0
        train_size: int = Field(400, ge=1, le=20_000)
        heldout_size: int = Field(400, ge=1, le=20_000)
        ops: list[Literal["add", "sub"]] = Field(["add", "sub"], min_length=1)

    def run(self, ctx):
        import polars as pl

        from . import stories

        p = ctx.params

        def table(split, n):
            rows = stories.make_problems(p.seed, n, split, tuple(p.ops))
            return pl.DataFrame(
                {
                    "id": [r["id"] for r in rows],
                    "question": [r["question"] for r in rows],
                    "answer": [r["answer"] for r in rows],
                    "meta": [{"op": r["op"]} for r in rows],
                }
            )

        return {"train": table("train", p.train_size), "heldout": table("heldout", p.heldout_size)}
