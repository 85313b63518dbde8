"""Sweeps: `stardag run --sweep K=v1,v2` (or a spec's `sweep:` block) runs the grid, each
point a variant that shares every stage the points have in common."""

import pytest
from support import Calls, cli, write

from stardag import sweep
from stardag.errors import SpecError

SPEC = """
name: sums
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 5}
  scale:
    op: engine_ops:Scale
    inputs: {table: numbers}
    params: {factor: 2}
  total:
    op: engine_ops:Sum
    inputs: {table: scale}
"""


@pytest.fixture
def calls(tmp_path):
    return Calls(tmp_path / "calls.txt")


def test_a_sweep_of_two_values_computes_the_shared_upstream_stage_once(tmp_path, calls):
    spec = write(tmp_path / "sums.yaml", SPEC)
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
        "stages.scale.params.factor=2,3",
    )
    assert r.returncode == 0, r.stderr
    assert sorted(calls.take()) == ["numbers", "scale", "scale", "total", "total"]
    assert "sums [factor=2]: 3 stages, 3 computed, 0 cached" in r.stderr
    assert "sums [factor=3]: 3 stages, 2 computed, 1 cached" in r.stderr
    assert "sweep: 2 points, 5 stages computed in all" in r.stderr

    again = cli(
        "run",
        spec,
        "--store",
        store,
        "--executor",
        "local",
        "-q",
        "--sweep",
        "stages.scale.params.factor=2,3",
    )
    assert again.returncode == 0 and calls.take() == []
    out = cli(
        "compare", spec, "--store", store, "--sweep", "stages.scale.params.factor=2,3", "--json"
    )
    assert out.returncode == 2 and "metrics table" in out.stderr  # no metrics to compare


def test_a_spec_s_sweep_block_runs_the_grid_and_sweep_flags_replace_its_keys(tmp_path, calls):
    spec = write(
        tmp_path / "sums.yaml",
        SPEC + "sweep:\n  stages.scale.params.factor: [2, 3]\n  stages.numbers.params.n: [4, 5]\n",
    )
    store = tmp_path / "store"
    r = cli("run", spec, "--store", store, "--executor", "local", "-q")
    assert r.returncode == 0, r.stderr
    got = calls.take()
    assert got.count("numbers") == 2 and got.count("scale") == 4 and got.count("total") == 4
    r = cli(
        "run",
        spec,
        "--store",
        store,
        "--executor",
        "local",
        "-q",
        "--sweep",
        "stages.scale.params.factor=2,7",
    )
    assert r.returncode == 0, r.stderr
    assert sorted(calls.take()) == ["scale", "scale", "total", "total"]  # factor 7, n 4 and 5


def test_sweep_values_split_on_commas_outside_brackets_and_quotes():
    assert sweep.split_values("1e-3,2e-3") == ["1e-3", "2e-3"]
    assert sweep.split_values("{1: 0.5, 2: 0.5},{1: 1.0}") == ["{1: 0.5, 2: 0.5}", "{1: 1.0}"]
    assert sweep.split_values("[1, 2],'a,b'") == ["[1, 2]", "'a,b'"]
    assert sweep.grid(["a.b=1,2", "c=x,y"]) == [
        ("a.b=1", "c=x"),
        ("a.b=1", "c=y"),
        ("a.b=2", "c=x"),
        ("a.b=2", "c=y"),
    ]
    assert sweep.grid([]) == [()]
    assert sweep.label(("loop.stages.train.params.lr=0.002", "loop.iterations=2")) == (
        "lr=0.002 iterations=2"
    )
    with pytest.raises(SpecError, match="YAML"):
        sweep.parse("a=[1,")


@pytest.mark.ray
def test_a_sweep_on_ray_shares_the_upstream_stage_between_its_points(tmp_path, calls):
    spec = write(tmp_path / "sums.yaml", SPEC)
    r = cli(
        "run",
        spec,
        "--store",
        tmp_path / "store",
        "-q",
        "--sweep",
        "stages.scale.params.factor=2,3",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(calls.take()) == ["numbers", "scale", "scale", "total", "total"]
    assert "sweep: 2 points, 5 stages computed in all" in r.stderr


@pytest.mark.ray
def test_a_sweep_s_independent_points_run_side_by_side_on_ray(tmp_path, calls):
    """Each point's `meet` stage waits for the other point's: a sweep that ran its points
    one after another would time out. The upstream stage both need is computed once."""
    meet = tmp_path / "meet"
    meet.mkdir()
    spec = write(
        tmp_path / "meet.yaml",
        f"""
name: meet
stages:
  numbers:
    op: engine_ops:Numbers
    params: {{n: 5}}
  meet:
    op: engine_ops:Meet
    inputs: {{table: numbers}}
    params: {{dir: "{meet}", timeout_s: 90}}
""",
    )
    r = cli(
        "run",
        spec,
        "--store",
        tmp_path / "store",
        "--sweep",
        "stages.meet.params.me=a,b",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(calls.take()) == ["meet", "meet", "numbers"]
    assert sorted(p.name for p in meet.iterdir()) == ["a", "b"]
    assert "meet [me=a]: 2 stages, 2 computed, 0 cached" in r.stderr
    assert "meet [me=b]: 2 stages, 1 computed, 1 cached" in r.stderr


def test_a_failing_point_names_itself_and_the_other_points_still_end(tmp_path, calls):
    spec = write(
        tmp_path / "fails.yaml",
        """
name: fails
stages:
  numbers:
    op: engine_ops:Numbers
  broken:
    op: engine_ops:Fail
    inputs: {table: numbers}
  total:
    op: engine_ops:Sum
    inputs: {table: broken}
""",
    )
    r = cli(
        "run",
        spec,
        "--store",
        tmp_path / "store",
        "--executor",
        "local",
        "-q",
        "--sweep",
        "stages.broken.params.fail=true,false",
    )
    assert r.returncode == 1
    assert "stage 'broken [fail=true]' (op engine_ops:Fail) failed" in r.stderr
    assert "fails [fail=false]: 3 stages, 2 computed, 1 cached" in r.stderr
    assert sorted(calls.take()) == ["broken", "broken", "numbers", "total"]
