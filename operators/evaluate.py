"""Held-out accuracy, overall and by slice, and what the iteration trained on: the share of
training problems solved by generation and by rationalization (the paper's "train data
used"), and, where the task can check steps, the share of kept examples whose every step is
right. Also the share of held-out completions cut off at the token limit (`truncated`,
never counted correct), and where the held-out problems came from (`heldout`, its slice
naming the file or split, as the problem source wrote it)."""

from __future__ import annotations

from stardag.operator import Dataset, DefaultResources, Metric, Metrics, Model, Operator

from .dedupe import EXAMPLES
from .fewshot_prompt import PROMPTS
from .sample import SampleParams, sample_table, workers_of
from .verify import VERIFIED, VerifyParams, verify_table

SOURCES = {"generation": "gen", "rationalization": "rat"}
# how `stardag report` and `compare` show each kind of row
REPORT = Metrics(
    kinds={
        "accuracy": Metric("accuracy", show="score", short="acc"),
        "truncated": Metric("truncated", whole=True),
        "train_used": Metric("used", slices=SOURCES),
        "faithful": Metric("faithful", slices=SOURCES),
        "heldout": Metric("held-out problems", show="source"),
    },
    axis="held-out accuracy",
)


class Evaluate(Operator):
    version = "2"
    inputs = {
        "model": Model(),
        "heldout": Dataset(PROMPTS),
        "examples": Dataset(EXAMPLES, optional=True),
        "train": Dataset({"id": "string"}, optional=True),
    }
    outputs = {"metrics": REPORT, "predictions": Dataset(VERIFIED, passthrough="heldout")}
    resources = DefaultResources(cpus=1)

    class Params(SampleParams, VerifyParams):
        slice_field: str | None = None

    @classmethod
    def parallel_workers(cls, params):
        return workers_of(params)

    def run(self, ctx, model, heldout, examples=None, train=None):
        import polars as pl

        from .tasks import get

        p = ctx.params
        preds = verify_table(
            sample_table(ctx, model, heldout, p, "prompt"), p.task, p.mode, p.extract
        )
        rows = [
            ("accuracy", "all", preds["correct"].mean(), preds.height),
            ("truncated", "all", (preds["finish_reason"] == "length").mean(), preds.height),
        ]
        if "split" in preds.columns:
            rows += [
                ("heldout", r["split"], r["len"] / preds.height, r["len"])
                for r in preds.group_by("split").len().sort("split").iter_rows(named=True)
            ]
        if p.slice_field:
            key = (
                pl.col("meta").struct.field(p.slice_field)
                if "meta" in preds.columns and p.slice_field not in preds.columns
                else pl.col(p.slice_field)
            )
            by = preds.group_by(key.cast(pl.Utf8).alias("slice")).agg(
                pl.col("correct").mean().alias("value"), pl.len().alias("n")
            )
            by = by.sort(pl.col("slice").cast(pl.Int64, strict=False), "slice")
            rows += [("accuracy", r["slice"], r["value"], r["n"]) for r in by.iter_rows(named=True)]
        if examples is not None:
            total = train["id"].n_unique() if train is not None else None
            task = get(p.task)
            for source in ("generation", "rationalization"):
                part = examples.filter(pl.col("source") == source)
                solved = part["id"].n_unique()
                if total:
                    rows.append(("train_used", source, solved / total, total))
                if task.check_steps and part.height:
                    faithful = sum(
                        task.check_steps(q, c) for q, c in zip(part["question"], part["completion"])
                    )
                    rows.append(("faithful", source, faithful / part.height, part.height))
        metrics = pl.DataFrame(
            {
                "kind": [r[0] for r in rows],
                "slice": [r[1] for r in rows],
                "value": [float(r[2]) for r in rows],
                "n": [int(r[3]) for r in rows],
            }
        )
        ctx.log(
            "held-out accuracy "
            + ", ".join(f"{r[1]}: {r[2]:.3f}" for r in rows if r[0] == "accuracy")
        )
        return {"metrics": metrics, "predictions": preds}
