"""A custom operator: keep only verified samples whose rationale is short enough."""

from stardag.operator import Dataset, Operator, Params


class Threshold(Operator):
    version = "1"
    inputs = {"verified": Dataset({"correct": "bool", "completion": "string"})}
    outputs = {"kept": Dataset({"completion": "string"}, passthrough="verified")}

    class Params(Params):
        max_chars: int = 400

    def run(self, ctx, verified):
        import polars as pl

        return verified.filter(
            pl.col("correct") & (pl.col("completion").str.len_chars() <= ctx.params.max_chars)
        )
