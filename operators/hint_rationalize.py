"""Rationalization: for each problem with no correct sample, sample again with the gold
answer given as a hint, keep the samples that now reach it, and store them with the hint
removed: the prompt kept is the problem's plain prompt, as if the model had found the
rationale unaided. Each row also keeps what the model saw and wrote (`hint_prompt`,
`hinted_completion`), for audit and for `dedupe`'s hinted copies."""

from __future__ import annotations

from stardag.operator import Dataset, DefaultResources, Model, Operator

from .fewshot_prompt import PROMPTS
from .sample import SampleParams, sample_table, workers_of
from .tasks import get
from .verify import VERIFIED, VerifyParams, verify_table

RATIONALIZED = {
    **VERIFIED,
    "rationalized": "bool",
    "hint_prompt": "string",
    "hinted_completion": "string",
}


class HintRationalize(Operator):
    version = "3"
    inputs = {"model": Model(), "prompts": Dataset(PROMPTS), "verified": Dataset(VERIFIED)}
    outputs = {"rationalized": Dataset(RATIONALIZED, passthrough="verified")}
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
        kept = [c for c in verified.columns if c not in ("hint_prompt", "hinted_completion")]
        if failed.height == 0:
            return verified.clear().select(
                *kept,
                pl.lit(True).alias("rationalized"),
                pl.lit(None, pl.Utf8).alias("hint_prompt"),
                pl.lit(None, pl.Utf8).alias("hinted_completion"),
            )
        hinted = sample_table(ctx, model, failed, p, "hint_prompt", shards="hinted")
        hinted = hinted.with_columns(pl.col("completion").alias("hinted_completion"))
        unhint = get(p.task).unhint
        if unhint is not None:  # the rationale as stored: what the hint left in it deleted
            hinted = hinted.with_columns(
                pl.col("completion").map_elements(unhint, return_dtype=pl.Utf8)
            )
        checked = verify_table(hinted, p.task, p.mode, p.extract).filter(pl.col("correct"))
        # the hint is removed: the training example is the plain prompt + the rationale
        # sample_table kept the problem's plain `prompt` column beside the hinted one it used
        return checked.select(
            *kept, pl.lit(True).alias("rationalized"), "hint_prompt", "hinted_completion"
        )
