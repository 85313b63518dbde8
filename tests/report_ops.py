"""An operator that writes a metrics table as `evaluate` does, with the numbers given as
params: what `stardag report` reads, without a model."""

import polars as pl

from stardag.operator import Metric, Metrics, Model, Operator, Params

# a pipeline of these operators, as the report, compare and tracking tests use it: a score
# before the loop, then two iterations of a training stage and a score after it
SCORES_SPEC = """
name: scores
stages:
  before:
    op: report_ops:Scores
    params: {correct: [0], n: 10}
loop:
  iterations: 2
  stages:
    train:
      op: report_ops:Trained
      params: {losses: [2.0, 1.5, 1.0]}
    after:
      op: report_ops:Scores
      params: {correct: [0, 5, 10], n: 10}
"""

METRICS = Metrics(
    kinds={
        "accuracy": Metric("accuracy", show="score", short="acc"),
        "truncated": Metric("truncated", whole=True),
        "heldout": Metric("held-out problems", show="source"),
    },
    axis="held-out accuracy",
)


class Scores(Operator):
    outputs = {"metrics": METRICS}

    class Params(Params):
        correct: list[int]  # per iteration, 0 first: right answers of `n`
        n: int
        heldout: str = "test.jsonl, whole"
        iteration: int = 0

    def run(self, ctx):
        p = ctx.params
        k = p.correct[p.iteration]
        rows = [
            ("accuracy", "all", k / p.n, p.n),
            ("accuracy", "short", k / p.n, p.n),
            ("truncated", "all", 1 / p.n, p.n),
            ("heldout", p.heldout, 1.0, p.n),
        ]
        return pl.DataFrame(
            rows,
            orient="row",
            schema={"kind": pl.Utf8, "slice": pl.Utf8, "value": pl.Float64, "n": pl.Int64},
        )


class Trained(Operator):
    """A model directory with the training log shard_train keeps beside the weights."""

    outputs = {"model": Model()}

    class Params(Params):
        losses: list[float]
        iteration: int = 1

    def run(self, ctx):
        import json

        steps = [
            {"step": i + 1, "loss": x / ctx.params.iteration, "lr": 1e-5}
            for i, x in enumerate(ctx.params.losses)
        ]
        out = ctx.output_dir("model")
        (out / "training_log.json").write_text(json.dumps({"steps": steps}))
