"""Operators for the data-parallel tests: squares computed by `ctx.map` workers, a worker
that dies once (to be replaced), and a record of where each worker ran."""

import os
from typing import Annotated

import pyarrow as pa

from stardag.operator import Dataset, Operator, Params, Unkeyed


class SquareWorker:
    def __init__(self, config: dict):
        self.config = config

    def __call__(self, index: int, chunk: list[int]):
        crash = self.config["crash_once"]
        if crash and index == 1 and not os.path.exists(crash):
            open(crash, "w").close()
            os._exit(1)  # the worker process dies in the middle of the stage
        if self.config["record"]:
            import ray

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
            with open(self.config["record"], "a") as f:
                f.write(f"{node} {os.getpid()}\n")
        return pa.table({"x": chunk, "y": [v * v for v in chunk]})

    def close(self):
        if self.config["closed"]:
            with open(self.config["closed"], "a") as f:
                f.write(f"{os.getpid()}\n")


class Squares(Operator):
    outputs = {"table": Dataset({"x": "int64", "y": "int64"})}

    class Params(Params):
        n: int = 40
        chunk: int = 5
        workers: Annotated[int, Unkeyed] = 1
        crash_once: str = ""  # a file: the first worker to reach chunk 1 dies unless it exists
        record: str = ""  # a file: each chunk appends the node and pid that computed it
        closed: str = ""  # a file: each worker appends its pid when it is closed

    @classmethod
    def parallel_workers(cls, params):
        return params.workers

    def run(self, ctx):
        p = ctx.params
        chunks = [list(range(s, min(s + p.chunk, p.n))) for s in range(0, p.n, p.chunk)]
        tables = ctx.map(SquareWorker, p.model_dump(), chunks, name="squares", workers=p.workers)
        return pa.concat_tables(tables)
