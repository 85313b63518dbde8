"""The MLflow tracker (`--track mlflow`, or `tracking: {mlflow: {uri, experiment}}` in a
spec; `pip install 'stardag[mlflow]'`). One MLflow run per stardag run (per sweep point):
params, metrics per iteration and per training step, the artifacts' keys as tags and as
`stardag/artifacts.json`.

Where: `uri` from the spec, else $MLFLOW_TRACKING_URI, else a SQLite database
`mlruns/mlflow.db` beside the spec (MLflow's own default backend since 3.7; its artifacts
in `mlruns/artifacts`). The experiment is `experiment`, else the spec's name."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .tracking import TrackedRun

_NAME = re.compile(r"[^\w\-./ ]")  # what MLflow accepts in param, metric and tag names
MAX_PARAM = 6000  # MLflow's limit on a param value's length


def _name(text: str) -> str:
    return _NAME.sub("_", text)


class MlflowTracker:
    def __init__(self, options: dict[str, Any], spec_dir: Path):
        from .errors import SpecError

        unknown = set(options) - {"uri", "experiment"}
        if unknown:
            raise SpecError(f"tracking.mlflow: unknown option(s) {', '.join(sorted(unknown))}")
        self.dir = spec_dir / "mlruns"
        self.uri = options.get("uri") or os.environ.get("MLFLOW_TRACKING_URI")
        if self.uri and "://" not in self.uri:  # a path: a SQLite database there
            self.dir = (spec_dir / self.uri).resolve()
            self.uri = None
        self.experiment = options.get("experiment")

    def log(self, run: TrackedRun) -> str:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        if self.uri is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{self.dir / 'mlflow.db'}"
        else:
            uri = self.uri
        client = MlflowClient(tracking_uri=uri)
        name = self.experiment or run.name.split(" [")[0]
        exp = client.get_experiment_by_name(name)
        if exp is None:
            where = (self.dir / "artifacts").as_uri() if self.uri is None else None
            exp_id = client.create_experiment(name, artifact_location=where)
        else:
            exp_id = exp.experiment_id
        tags = {
            "stardag.spec": run.spec,
            "stardag.store": run.store,
            "stardag.overrides": " ".join(run.overrides),
            "stardag.computed": str(run.computed),
            "stardag.cached": str(run.cached),
            **{f"stardag.key.{_name(n.replace('@', '.'))}": k for n, k in run.keys.items()},
            **run.tags,
        }
        mlrun = client.create_run(exp_id, run_name=run.name)
        run_id = mlrun.info.run_id
        params = [Param(_name(k), v[:MAX_PARAM]) for k, v in run.params.items()]
        metrics = [Metric(_name(k), v, 0, step) for k, v, step in run.metrics]
        tag_list = [RunTag(k, v[:MAX_PARAM]) for k, v in tags.items()]
        # MLflow takes at most 100 params or tags and 1000 metrics per batch
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(tag_list), 100):
            client.log_batch(run_id, tags=tag_list[i : i + 100])
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        client.log_dict(
            run_id,
            {"store": run.store, "spec": run.spec, "overrides": run.overrides, "keys": run.keys},
            "stardag/artifacts.json",
        )
        client.set_terminated(run_id)
        return f"mlflow: run {run_id} in experiment {name!r} at {uri}"
