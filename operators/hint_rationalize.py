"""Rationalization: for each problem with no correct sample, sample again with the gold
answer given as a hint, keep the samples that now reach it, and store them with the hint
removed: the prompt kept is the problem's plain prompt, as if the model had found the
rationale unaided."""

from __future__ import annotations

from stardag.operator import Dataset, DefaultResources, Model, Operator

from .fewshot_prompt import PROMPTS
from .sample import SampleParams, sample_table, workers_of
from .tasks import get
from .verify import VERIFIED, VerifyParams, verify_table


class HintRationalize(Operator):
    version = "2"
    inputs = {"model": Model(), "prompts": Dataset(PROMPTS), "verified": Dataset(VERIFIED)}
    outputs = {
        "rationalized": Dataset({**VERIFIED, "rationalized": "bool"}, passthrough="verified")
    }
    resources = DefaultResources(cpus=1)

    class Params(SampleParams, VerifyParams):
        pass

    @classmethod
    def parallel_workers(cls, params):
        return workers_of(params)

    def run(self, ctx, model, prompts, verified):
        import polars as pl

        p = ctx.params
        solved = verified.filter(pl.col("correct"))["id"].unique()
        failed = prompts.filter(~pl.col("id").is_in(solved.implode()))
        ctx.log(f"{failed.height} of {prompts.height} problems unsolved: rationalizing with hints")
        if failed.height == 0:
            return verified.clear().with_columns(pl.lit(True).alias("rationalized"))
        hinted = sample_table(ctx, model, failed, p, "hint_prompt", shards="hinted")
        unhint = get(p.task).unhint
        if unhint is not None:  # the rationale as stored: what the hint left in it deleted
            hinted = hinted.with_columns(
                pl.col("completion").map_elements(unhint, return_dtype=pl.Utf8)
            )
        checked = verify_table(hinted, p.task, p.mode, p.extract).filter(pl.col("correct"))
        # the hint is removed: the training example is the plain prompt + the rationale
        # sample_table kept the problem's plain `prompt` column beside the hinted one it used
        return checked.with_columns(pl.lit(True).alias("rationalized")).select(
            verified.columns + ["rationalized"]
        )
