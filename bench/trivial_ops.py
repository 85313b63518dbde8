"""Trivial operators for the engine benchmark: the work is negligible, so what is measured
is the engine."""

from stardag.operator import Dataset, Metric, Metrics, Operator, Params


class Source(Operator):
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        n: int = 10

    def run(self, ctx):
        import pyarrow as pa

        return pa.table({"x": pa.array(range(ctx.params.n), pa.int64())})


class Inc(Operator):
    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        add: int = 1

    def run(self, ctx, table):
        import pyarrow as pa
        import pyarrow.compute as pc

        return pa.table({"x": pc.add(table.to_arrow()["x"], ctx.params.add)})


class Score(Operator):
    """A metrics table of a few kinds and slices, as an evaluation writes one."""

    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {
        "metrics": Metrics(kinds={"score": Metric("score", show="score"), "share": Metric("share")})
    }

    def run(self, ctx, table):
        import polars as pl

        xs = table["x"].to_list()
        rows = [("score", "all", sum(x % 2 for x in xs) / len(xs), len(xs))]
        rows += [("score", str(d), (d + xs[0] % 5) / 10, 20) for d in range(1, 6)]
        rows += [("share", s, 0.5, 100) for s in ("a", "b")]
        return pl.DataFrame(
            rows,
            orient="row",
            schema={"kind": pl.Utf8, "slice": pl.Utf8, "value": pl.Float64, "n": pl.Int64},
        )
