"""Tracking: `run --track NAME` (or `tracking:` in the spec) logs each run's params, metrics
per iteration and per training step, and the artifacts' keys, from the store: a fully cached
run yields a complete tracked run too."""

import json

from report_ops import SCORES_SPEC as SPEC
from support import cli, write


def test_a_tracker_gets_params_metrics_training_steps_and_keys_of_each_sweep_point(tmp_path):
    spec = write(
        tmp_path / "scores.yaml", SPEC + "tracking:\n  tracking_ops:Recorder: {file: out.jsonl}\n"
    )
    store = tmp_path / "store"
    r = cli(
        "run",
        spec,
        "--store",
        store,
        "--executor",
        "local",
        "-q",
        "--sweep",
        "loop.stages.train.params.losses=[2.0],[4.0]",
    )
    assert r.returncode == 0, r.stderr
    assert "recorded scores [losses=[2.0]]" in r.stderr
    first, second = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert first["params"]["after.correct"] == "[0, 5, 10]"
    assert (first["params"]["train.losses"], second["params"]["train.losses"]) == ("[2.0]", "[4.0]")
    metrics = {(k, step): v for k, v, step in first["metrics"]}
    assert metrics[("accuracy/all", 0)] == 0.0 and metrics[("accuracy/all", 2)] == 1.0
    assert metrics[("accuracy/short", 1)] == 0.5 and metrics[("truncated/all", 1)] == 0.1
    assert metrics[("train_loss/iteration_2", 1)] == 1.0  # 2.0 / iteration 2
    assert ("seconds/stages", 0) in metrics
    assert set(first["keys"]) == {"before", "train@1", "after@1", "train@2", "after@2"}
    assert first["keys"]["before"] == second["keys"]["before"]  # shared by the points
    assert first["keys"]["train@1"] != second["keys"]["train@1"]
    assert (first["computed"], second["computed"]) == (5, 2)  # only train@1-2 differ


def test_an_unknown_tracker_is_one_error_before_anything_runs(tmp_path):
    spec = write(tmp_path / "scores.yaml", SPEC)
    r = cli("run", spec, "--store", tmp_path / "store", "--track", "nosuch", "-q")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "unknown tracker 'nosuch'" in r.stderr
    assert not (tmp_path / "store").exists()


def test_mlflow_holds_the_metrics_of_a_run_and_of_its_fully_cached_rerun(tmp_path):
    from mlflow.tracking import MlflowClient

    spec = write(tmp_path / "scores.yaml", SPEC)
    store = tmp_path / "store"
    first = cli(
        "run", spec, "--store", store, "--executor", "local", "-q", "--track", "mlflow", timeout=300
    )
    assert first.returncode == 0, first.stderr
    write(tmp_path / "scores.yaml", SPEC + "tracking: {mlflow: {experiment: mine}}\n")
    again = cli("run", spec, "--store", store, "--executor", "local", "-q", timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 computed, 5 cached" in again.stderr

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    computed = client.search_runs([client.get_experiment_by_name("scores").experiment_id])
    cached = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    for (run,) in (computed, cached):
        assert run.data.params["after.correct"] == "[0, 5, 10]"
        assert run.data.params["loop.iterations"] == "2"
        history = client.get_metric_history(run.info.run_id, "accuracy/all")
        assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 0.5), (2, 1.0)]
        loss = client.get_metric_history(run.info.run_id, "train_loss/iteration_1")
        assert sorted((m.step, m.value) for m in loss) == [(1, 2.0), (2, 1.5), (3, 1.0)]
        assert run.data.tags["stardag.store"] == str(store)
        assert len(run.data.tags["stardag.key.after.2"]) == 32
    assert computed[0].data.tags["stardag.computed"] == "5"
    assert cached[0].data.tags["stardag.computed"] == "0"
    assert (
        computed[0].data.tags["stardag.key.after.2"] == cached[0].data.tags["stardag.key.after.2"]
    )
