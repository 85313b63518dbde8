"""Operators for the cluster tests: one that says where Ray ran it, one that reads a file
named by a FilePath param (a file that must travel with a submitted job)."""

import json

import polars as pl

from stardag.operator import Dataset, FilePath, Operator, Params


class Where(Operator):
    """The Ray node this stage ran on, and the resources Ray assigned to it. Resources are
    not part of a stage's key: give stages pinned to different nodes different `label`s."""

    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"where": Dataset({"node_id": "string", "resources": "string", "rows": "int64"})}

    class Params(Params):
        label: str = ""

    def run(self, ctx, table):
        import ray

        rc = ray.get_runtime_context()
        return pl.DataFrame(
            {
                "node_id": [rc.get_node_id()],
                "resources": [json.dumps(rc.get_assigned_resources(), sort_keys=True)],
                "rows": [table.height],
            }
        )


class Lines(Operator):
    outputs = {"table": Dataset({"line": "string"})}

    class Params(Params):
        file: FilePath

    def run(self, ctx):
        with open(ctx.params.file) as f:
            return pl.DataFrame({"line": f.read().split()})
