"""The work of bench/compare.py, shared by its three pipelines (stardag operators, DVC stage
scripts, one plain script), so that all three compute the same tables: a source table, then
a chain of transforms, each reading the previous stage's Parquet file and writing its own.

Every operation is deterministic (no floating-point sums whose order depends on threads),
so a stage re-run on the same input writes the same values."""

from __future__ import annotations

import numpy as np
import polars as pl


def source(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "g": rng.integers(0, 1000, rows, dtype=np.int64),
            "x": rng.random(rows),
            "s": rng.integers(0, 1_000_000, rows, dtype=np.int64),
        }
    ).with_columns(s=pl.format("key-{}", pl.col("s")))


def transform(df: pl.DataFrame, stage: int, mult: float) -> pl.DataFrame:
    """Modest CPU work on every row: arithmetic, a per-group maximum joined back, a string
    rewrite, a sort."""
    df = df.with_columns(x=((pl.col("x") * mult + stage).sin() + 1.0) / 2.0)
    peaks = df.group_by("g").agg(peak=pl.col("x").max())
    df = (
        df.join(peaks, on="g", how="left")
        .with_columns(
            x=(pl.col("x") + pl.col("peak")) / 2.0,
            g=(pl.col("g") * 7 + stage) % 1000,
            s=pl.col("s").str.slice(1) + pl.col("s").str.slice(0, 1),
        )
        .drop("peak")
    )
    return df.sort("id")
