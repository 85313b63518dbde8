"""Trivial operators for the engine benchmark: the work is negligible, so what is measured
is the engine."""

from stardag.operator import Dataset, Operator, Params


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
