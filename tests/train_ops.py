"""A test operator for training: gold scratchpad examples for arithmetic problems."""

import polars as pl

from operators import addition
from operators.dedupe import EXAMPLES
from stardag.operator import Dataset, Operator


class GoldExamples(Operator):
    inputs = {"problems": Dataset({"id": "string", "question": "string", "answer": "string"})}
    outputs = {"examples": Dataset(EXAMPLES)}

    def run(self, ctx, problems):
        def pad(q: str) -> str:
            a, b = q.split("+")
            return addition.scratchpad(int(a), int(b))

        return problems.select("id", "question", "answer").with_columns(
            pl.col("question")
            .map_elements(lambda q: q + "\n", return_dtype=pl.Utf8)
            .alias("prompt"),
            pl.col("question").map_elements(pad, return_dtype=pl.Utf8).alias("completion"),
            pl.lit("generation").alias("source"),
        )
