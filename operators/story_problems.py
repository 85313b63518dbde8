"""Problem source: one-step word problems on single-digit facts (see `operators.stories`),
train and held-out splits that never share a question."""

from typing import Literal

from pydantic import Field, model_validator

from stardag.operator import Dataset, Operator, Params

from .arithmetic import PROBLEMS

#: the most problems a split takes per operation
PER_OP = 10_000


class StoryProblems(Operator):
    version = "1"
    outputs = {"train": Dataset(PROBLEMS), "heldout": Dataset(PROBLEMS)}

    class Params(Params):
        seed: int = 0
        train_size: int = Field(400, ge=1, le=20_000)
        heldout_size: int = Field(400, ge=1, le=20_000)
        ops: list[Literal["add", "sub"]] = Field(["add", "sub"], min_length=1)

        @model_validator(mode="after")
        def _enough_questions(self):
            # each operation has about 19,000 distinct held-out questions and 58,000 train
            # ones: asking for more than half of them would make drawing them slow, and
            # asking for more than all of them would never end
            ops = sorted(set(self.ops))
            most = PER_OP * len(ops)
            for name in ("train_size", "heldout_size"):
                if getattr(self, name) > most:
                    raise ValueError(f"{name}: at most {most} problems with ops {ops}")
            return self

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
