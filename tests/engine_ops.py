"""Small operators that the engine tests run. Each records its call in $STARDAG_TEST_CALLS."""

import os
import time

import polars as pl

from stardag.operator import Dataset, DefaultResources, Model, Operator, Params


def record(ctx):
    path = os.environ.get("STARDAG_TEST_CALLS")
    if path:
        with open(path, "a") as f:
            f.write(ctx.stage + "\n")


class Numbers(Operator):
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        n: int = 5
        start: int = 0

    def run(self, ctx):
        record(ctx)
        return pl.DataFrame({"x": list(range(ctx.params.start, ctx.params.start + ctx.params.n))})


class Scale(Operator):
    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        factor: int = 2

    def run(self, ctx, table):
        record(ctx)
        return table.with_columns(pl.col("x") * ctx.params.factor)


class Clip(Operator):
    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        max: int = 100

    def run(self, ctx, table):
        record(ctx)
        return table.with_columns(pl.col("x").clip(upper_bound=ctx.params.max))


class Sum(Operator):
    inputs = {"table": Dataset({"x": "int64"}), "extra": Dataset({"x": "int64"}, optional=True)}
    outputs = {"total": Dataset({"total": "int64"})}

    def run(self, ctx, table, extra=None):
        record(ctx)
        total = table["x"].sum() + (extra["x"].sum() if extra is not None else 0)
        return pl.DataFrame({"total": [total]})


class Words(Operator):
    outputs = {"table": Dataset({"word": "string"})}

    def run(self, ctx):
        record(ctx)
        return pl.DataFrame({"word": ["a", "b"]})


class Step(Operator):
    """Loop body: adds the iteration index to every value."""

    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        iteration: int = 0

    def run(self, ctx, table):
        record(ctx)
        return table.with_columns(pl.col("x") + ctx.params.iteration)


class Fail(Operator):
    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        fail: bool = True

    def run(self, ctx, table):
        record(ctx)
        if ctx.params.fail:
            raise ValueError("this operator was told to fail")
        return table


class Meet(Operator):
    """Writes `<dir>/<me>`, then waits for the file of the other one (`a` and `b`): both
    end only if they run at the same time."""

    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        dir: str
        me: str = "a"
        timeout_s: float = 90.0

    def run(self, ctx, table):
        from pathlib import Path

        record(ctx)
        here = Path(ctx.params.dir)
        (here / ctx.params.me).write_text("")
        other = here / ("b" if ctx.params.me == "a" else "a")
        deadline = time.monotonic() + ctx.params.timeout_s
        while not other.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{other.name} never came: the two did not run side by side")
            time.sleep(0.05)
        return table


class Sleep(Operator):
    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"table": Dataset({"x": "int64"}), "blob": Model()}

    class Params(Params):
        seconds: float = 30

    def run(self, ctx, table):
        record(ctx)
        (ctx.output_dir("blob") / "half.bin").write_bytes(b"x" * 1000)
        block = os.environ.get("STARDAG_TEST_BLOCK")
        deadline = time.monotonic() + ctx.params.seconds
        while block and os.path.exists(block) and time.monotonic() < deadline:
            time.sleep(0.05)
        (ctx.output_dir("blob") / "other.bin").write_bytes(b"y" * 1000)
        return table


class Weights(Operator):
    """Writes a 'model' directory."""

    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"model": Model()}

    def run(self, ctx, table):
        record(ctx)
        out = ctx.output_dir("model")
        (out / "weights.txt").write_text(",".join(str(v) for v in table["x"]))
        (out / "config.json").write_text('{"kind": "test"}')


class ReadWeights(Operator):
    inputs = {"model": Model()}
    outputs = {"table": Dataset({"x": "int64"})}
    resources = DefaultResources(cpus=1)

    def run(self, ctx, model):
        record(ctx)
        values = (model / "weights.txt").read_text().split(",")
        return pl.DataFrame({"x": [int(v) for v in values]})
