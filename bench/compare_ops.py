"""stardag operators for bench/compare.py: the work itself is in compare_work.py."""

# ports are class attributes, as stardag.operator.Operator declares them (ClassVar)
# ruff: noqa: RUF012

from stardag.operator import Dataset, Operator, Params

COLUMNS = {"id": "int64", "g": "int64", "x": "float64", "s": "string"}


class Source(Operator):
    outputs = {"table": Dataset(COLUMNS)}

    class Params(Params):
        rows: int
        seed: int = 0

    def run(self, ctx):
        from compare_work import source

        return source(ctx.params.rows, ctx.params.seed)


class Transform(Operator):
    inputs = {"table": Dataset(COLUMNS)}
    outputs = {"table": Dataset(COLUMNS)}

    class Params(Params):
        stage: int
        mult: float = 1.0

    def run(self, ctx, table):
        from compare_work import transform

        return transform(table, ctx.params.stage, ctx.params.mult)
