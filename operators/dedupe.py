"""Training examples from verified samples: correct ones only, exact and normalized-text
duplicates removed, at most k kept per problem; generated ones preferred over rationalized.
With `hinted_copies`, each rationalized example kept is also kept as the model wrote it, with
its hint (source "hinted")."""

from __future__ import annotations

from stardag.operator import Dataset, Operator, Params

from .hint_rationalize import RATIONALIZED
from .verify import VERIFIED

EXAMPLES = {
    "id": "string",
    "question": "string",
    "answer": "string",
    "prompt": "string",
    "completion": "string",
    "source": "string",
}


class Dedupe(Operator):
    version = "2"
    inputs = {
        "generated": Dataset(VERIFIED),
        "rationalized": Dataset(RATIONALIZED, optional=True),
    }
    outputs = {"examples": Dataset(EXAMPLES)}

    class Params(Params):
        max_per_problem: int = 1
        normalize: bool = True
        # also train on each rationalized example as written, hint in its prompt and in its
        # lines: a model that cannot read a hint in context (the small arithmetic model)
        # keeps the skill rationalization needs only if it is trained; not counted toward
        # max_per_problem, nor as a rationalized example
        hinted_copies: bool = False

    def run(self, ctx, generated, rationalized=None):
        import polars as pl

        cols = ["id", "question", "answer", "prompt", "completion"]
        parts = [
            generated.filter(pl.col("correct"))
            .select(cols)
            .with_columns(pl.lit("generation").alias("source"))
        ]
        if rationalized is not None:
            parts.append(
                rationalized.filter(pl.col("correct"))
                .select(cols)
                .with_columns(pl.lit("rationalization").alias("source"))
            )
        examples = pl.concat(parts, how="vertical_relaxed").with_row_index("_order")
        text = pl.col("completion")
        if ctx.params.normalize:
            text = text.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
        out = (
            examples.with_columns(text.alias("_norm"))
            .unique(subset=["id", "_norm"], keep="first", maintain_order=True)
            .filter(pl.int_range(pl.len()).over("id") < ctx.params.max_per_problem)
            .sort("_order")
            .drop("_order", "_norm")
        )
        if ctx.params.hinted_copies and rationalized is not None:
            kept = out.filter(pl.col("source") == "rationalization").select("id", "completion")
            copies = (
                rationalized.filter(pl.col("correct"))
                .join(kept, on=["id", "completion"])
                .unique(subset=["id", "completion"], keep="first", maintain_order=True)
                .select(
                    "id",
                    "question",
                    "answer",
                    pl.col("hint_prompt").alias("prompt"),
                    pl.col("hinted_completion").alias("completion"),
                    pl.lit("hinted").alias("source"),
                )
            )
            out = pl.concat([out, copies], how="vertical_relaxed")
        ctx.log(
            f"{out.height} examples ({(out['source'] == 'generation').sum()} generated, "
            f"{(out['source'] == 'rationalization').sum()} rationalized"
            + (
                f", {(out['source'] == 'hinted').sum()} hinted copies"
                if ctx.params.hinted_copies
                else ""
            )
            + ")"
        )
        return out
