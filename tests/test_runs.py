"""Run history: each run's record keeps its overrides and resolved spec, and `stardag runs`
lists the runs."""

import json

from click.testing import CliRunner
from support import write

from stardag.cli import main

SPEC = """
name: history
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 12}
  scaled:
    op: engine_ops:Scale
    inputs: {table: numbers}
  broken:
    op: engine_ops:Fail
    inputs: {table: scaled}
    params: {fail: false}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_runs_lists_each_run_with_its_overrides_stages_status_and_failure(tmp_path):
    spec = write(tmp_path / "history.yaml", SPEC)
    assert invoke("run", spec, "--executor", "local", "-q").exit_code == 0
    assert invoke("run", spec, "--executor", "local", "-q").exit_code == 0  # all cached
    failed = invoke(
        "run", spec, "--executor", "local", "-q", "--set", "stages.broken.params.fail=true"
    )
    assert failed.exit_code == 1

    out = invoke("runs", spec, "--json")
    assert out.exit_code == 0, out.output
    first, cached, broken = json.loads(out.stdout)
    assert first["status"] == "ok" and first["overrides"] == []
    assert first["computed"] == ["broken", "numbers", "scaled"] and first["cached"] == []
    assert cached["computed"] == [] and len(cached["cached"]) == 3
    assert broken["status"] == "failed" and "this operator was told to fail" in broken["failed"]
    assert broken["overrides"] == ["stages.broken.params.fail=true"]
    assert first["started"] <= cached["started"] <= broken["started"]

    lines = invoke("runs", spec).stdout.splitlines()
    assert "history" in lines[0] and " ok " in lines[0] and "3 computed   0 cached" in lines[0]
    assert "0 computed   3 cached" in lines[1]
    assert " failed " in lines[2] and lines[2].endswith("--set stages.broken.params.fail=true")
    assert "told to fail" in lines[3]
    assert len(invoke("runs", spec, "--last", "1").stdout.splitlines()) == 2  # run + failure
    # without a spec, --store lists every spec's runs
    everything = invoke("runs", "--store", tmp_path / ".stardag", "--json")
    assert len(json.loads(everything.stdout)) == 3


def test_the_run_record_keeps_the_overrides_and_the_resolved_spec(tmp_path):
    spec = write(tmp_path / "history.yaml", SPEC)
    out = invoke("run", spec, "--executor", "local", "-q", "--set", "stages.numbers.params.n=5")
    assert out.exit_code == 0, out.output
    [path] = (tmp_path / ".stardag" / "runs" / "history").glob("*.json")
    record = json.loads(path.read_text())
    assert record["overrides"] == ["stages.numbers.params.n=5"]
    assert record["resolved"]["stages"]["numbers"]["params"] == {"n": 5}
    assert record["resolved"]["stages"]["broken"]["op"] == "engine_ops:Fail"
    assert record["spec_file"] == str(spec.resolve())


def test_runs_without_a_spec_or_store_is_an_error(tmp_path):
    out = CliRunner().invoke(main, ["runs"])
    assert out.exit_code == 1 and "give a spec or --store" in out.output
