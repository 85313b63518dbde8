"""The `stardag` command as a user runs it."""

import json

import pytest
from click.testing import CliRunner
from support import Calls, cli, write

from stardag.cli import main

SPEC = """
name: clidemo
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 12}
  scaled:
    op: engine_ops:Scale
    inputs: {table: numbers}
  model:
    op: engine_ops:Weights
    inputs: {table: scaled}
  broken:
    op: engine_ops:Fail
    inputs: {table: scaled}
loop:
  iterations: 2
  stages:
    step:
      op: engine_ops:Step
      inputs:
        table: {previous: step, initial: scaled}
"""


@pytest.fixture
def spec(tmp_path):
    return write(tmp_path / "cli.yaml", SPEC)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def calls(tmp_path):
    return Calls(tmp_path / "calls.txt")


def test_a_failing_operator_stops_the_run_with_its_stage_and_error(spec, calls):
    out = invoke("run", spec, "--executor", "local")
    assert out.exit_code == 1
    assert (
        "stage 'broken' (op engine_ops:Fail) failed: ValueError: this operator was told to fail"
        in out.output
    )
    first = calls.take()
    assert first[:2] == ["numbers", "scaled"] and "broken" in first
    # the finished stages stay cached; the fixed stage and those not yet started run
    out = invoke("run", spec, "--executor", "local", "--set", "stages.broken.params.fail=false")
    assert out.exit_code == 0, out.output
    second = calls.take()
    assert "broken" in second
    assert not set(second) & (set(first) - {"broken"})


def test_plan_json_lists_stage_iteration_status_and_cause(spec):
    out = invoke("plan", spec, "--json")
    assert out.exit_code == 0
    rows = json.loads(out.output)
    assert {r["stage"] for r in rows} == {"numbers", "scaled", "model", "broken", "step"}
    assert [(r["stage"], r["iteration"]) for r in rows if r["stage"] == "step"] == [
        ("step", 1),
        ("step", 2),
    ]
    assert {(r["status"], r["cause"]) for r in rows} == {("run", "new")}
    invoke("run", spec, "--executor", "local", "--until", "step")
    rows = json.loads(
        invoke("plan", spec, "--json", "--set", "stages.scaled.params.factor=4").output
    )
    by = {(r["stage"], r["iteration"]): r for r in rows}
    assert by[("numbers", None)]["status"] == "cached" and by[("numbers", None)]["cause"] is None
    assert by[("scaled", None)]["cause"] == "params"
    assert by[("step", 2)]["cause"] == "inputs"


def test_show_prints_rows_and_writes_files(spec, tmp_path):
    invoke("run", spec, "--executor", "local", "--until", "model", "--until", "step")
    out = invoke("show", spec, "scaled", "--head", "3")
    assert out.exit_code == 0 and "shape: (3, 1)" in out.output
    out = invoke("show", spec, "step", "--iteration", "1", "--to", tmp_path / "step.jsonl")
    assert out.exit_code == 0
    assert len((tmp_path / "step.jsonl").read_text().splitlines()) == 12
    out = invoke("show", spec, "model")
    assert "weights.txt" in out.output and "config.json" in out.output
    out = invoke("show", spec, "broken")
    assert out.exit_code == 2 and "has not been computed" in out.output
    out = invoke("show", spec, "scald")
    assert out.exit_code == 2 and "did you mean 'scaled'" in out.output


def test_dag_prints_a_tree_and_mermaid(spec):
    out = invoke("dag", spec)
    assert "step@2  [engine_ops:Step]\n  <- table: step@1.table" in out.output
    out = invoke("dag", spec, "--mermaid")
    assert out.output.startswith("flowchart TD") and "-->|table->table|" in out.output


def test_ls_and_gc_keep_only_what_specs_reach(spec, tmp_path):
    invoke("run", spec, "--executor", "local", "--until", "step")
    invoke(
        "run", spec, "--executor", "local", "--until", "step", "--set", "stages.numbers.params.n=3"
    )
    out = invoke("ls", spec)
    assert out.exit_code == 0 and out.output.count("clidemo") == 8
    out = invoke("gc", "--keep", spec)
    assert out.exit_code == 0
    assert "4 artifacts deleted, 4 kept" in out.output
    assert invoke("ls", spec).output.count("clidemo") == 4
    assert (
        json.loads(invoke("plan", spec, "--json", "--until", "step").output)[0]["status"]
        == "cached"
    )
    assert invoke("gc").exit_code == 1


def test_gc_keeps_the_shards_of_stages_still_to_run_and_drops_the_others(spec, tmp_path):
    import pyarrow as pa

    from stardag.store import Store

    plan = json.loads(invoke("plan", spec, "--json").output)
    pending = next(e["key"] for e in plan if e["status"] == "run" and e.get("key"))
    store = Store(tmp_path / ".stardag")  # the default store, beside the spec
    for key in (pending, "ab" * 32):
        store.shards(key, "samples").put(0, pa.table({"x": [1]}))
    assert invoke("gc", "--keep", spec).exit_code == 0
    assert store.partial_keys() == [pending]


@pytest.mark.parametrize("command", ["run", "plan", "show", "dag", "gc", "ls", "compare"])
def test_every_command_has_help_with_an_example(command):
    out = invoke(command, "--help")
    assert out.exit_code == 0 and "Example:" in out.output


def test_a_fully_cached_run_imports_neither_ray_nor_torch(spec, tmp_path):
    code = (
        "import sys, stardag; r = stardag.run(sys.argv[1], overrides=['stages.broken.params.fail=false'],"
        " progress=False); print(len(r.computed()), sorted(m for m in ('ray', 'torch', "
        "'transformers') if m in sys.modules))"
    )
    import subprocess
    import sys

    from support import TESTS

    env = {"PYTHONPATH": str(TESTS)}
    import os

    env = {**os.environ, **env}
    first = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace("progress=False", "progress=False, executor='local'"),
            str(spec),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert first.returncode == 0, first.stderr
    again = subprocess.run(
        [sys.executable, "-c", code, str(spec)], capture_output=True, text=True, env=env
    )
    assert again.stdout.split() == ["0", "[]"], again.stderr


def test_the_real_command_exits_2_on_a_bad_spec(tmp_path):
    bad = write(tmp_path / "bad.yaml", "name: x\nstages:\n  a:\n    op: engine_ops:Nope\n")
    out = cli("run", bad)
    assert out.returncode == 2
    assert f"{bad}:4: stage 'a':" in out.stderr and "Nope" in out.stderr
