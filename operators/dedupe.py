"""Training examples from verified samples: correct ones only, exact and normalized-text
duplicates removed, at most k kept per problem; generated ones preferred over rationalized."""

from __future__ import annotations

from stardag.operator import Dataset, Operator, Params

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
    version = "1"
    inputs = {"generated": Dataset(VERIFIED), "rationalized": Dataset(VERIFIED, optional=True)}
    outputs = {"examples": Dataset(EXAMPLES)}

    class Params(Params):
        max_per_problem: int = 1
        normalize: bool = True

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
        ctx.log(
            f"{out.height} examples ({(out['source'] == 'generation').sum()} generated, "
            f"{(out['source'] == 'rationalization').sum()} rationalized)"
        )
        return out
