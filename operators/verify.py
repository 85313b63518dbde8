"""Verifying samples: the task's parser reads the final answer and compares it with the gold
one; `mode: steps` also checks every step where the task can (arithmetic scratchpads)."""

from __future__ import annotations

from typing import Literal

from stardag.operator import Dataset, InputError, Operator, Params

from .sample import SAMPLES
from .tasks import TaskName

VERIFIED = {**SAMPLES, "question": "string", "answer": "string", "pred": "string",
            "correct": "bool"}


def verify_table(samples, task_name: str, mode: str):
    import polars as pl

    from .tasks import get

    task = get(task_name)
    if mode == "steps" and task.check_steps is None:
        raise InputError(f"task {task_name!r} has no step checker; use mode: answer")
    preds, correct = [], []
    for row in samples.select("question", "answer", "completion").iter_rows(named=True):
        pred = task.parse(row["completion"], row["question"])
        ok = pred is not None and pred == task.gold(row["answer"])
        if ok and mode == "steps":
            ok = task.check_steps(row["question"], row["completion"])
        preds.append(pred)
        correct.append(ok)
    return samples.with_columns(pl.Series("pred", preds, dtype=pl.Utf8),
                                pl.Series("correct", correct, dtype=pl.Boolean))


class Verify(Operator):
    version = "1"
    inputs = {"samples": Dataset({**SAMPLES, "question": "string", "answer": "string"})}
    outputs = {"verified": Dataset(VERIFIED, passthrough="samples")}

    class Params(Params):
        task: TaskName = "arithmetic"
        mode: Literal["answer", "steps"] = "answer"

    def run(self, ctx, samples):
        return verify_table(samples, ctx.params.task, ctx.params.mode)
