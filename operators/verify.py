"""Verifying samples: the task's extraction reads the final answer and compares it with the
gold one; `mode: steps` also checks every step where the task can (arithmetic scratchpads).
A sample cut off at its token limit (`finish_reason: length`) is never correct, whatever
its text says: its answer may be the start of a longer number."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from stardag.operator import Dataset, InputError, Operator, Params

from .sample import SAMPLES
from .tasks import TaskName

VERIFIED = {
    **SAMPLES,
    "question": "string",
    "answer": "string",
    "pred": "string",
    "correct": "bool",
}


class VerifyParams(Params):
    task: TaskName = "arithmetic"
    mode: Literal["answer", "steps"] = "answer"
    # how the answer is read: the task's default when left out; GSM8K and CommonsenseQA
    # have `strict` (the final-answer line only) and `flexible` (GSM8K: the last number)
    extract: Literal["strict", "flexible"] | None = None

    @model_validator(mode="after")
    def _task_has_extraction(self):
        from .tasks import get

        get(self.task).extractor(self.extract)
        return self


def verify_table(samples, task_name: str, mode: str, extract: str | None = None):
    import polars as pl

    from .tasks import get

    task = get(task_name)
    if mode == "steps" and task.check_steps is None:
        raise InputError(f"task {task_name!r} has no step checker; use mode: answer")
    parse = task.extractor(extract)
    preds, correct = [], []
    for row in samples.select("question", "answer", "completion", "finish_reason").iter_rows(
        named=True
    ):
        pred = parse(row["completion"], row["question"])
        ok = (
            pred is not None
            and row["finish_reason"] != "length"
            and pred == task.gold(row["answer"])
        )
        if ok and mode == "steps":
            ok = task.check_steps(row["question"], row["completion"])
        preds.append(pred)
        correct.append(ok)
    return samples.with_columns(
        pl.Series("pred", preds, dtype=pl.Utf8), pl.Series("correct", correct, dtype=pl.Boolean)
    )


class Verify(Operator):
    version = "2"
    inputs = {"samples": Dataset({**SAMPLES, "question": "string", "answer": "string"})}
    outputs = {"verified": Dataset(VERIFIED, passthrough="samples")}

    Params = VerifyParams

    def run(self, ctx, samples):
        p = ctx.params
        return verify_table(samples, p.task, p.mode, p.extract)
