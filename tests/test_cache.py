"""Cache semantics: what re-runs and what does not. Each kind of change that must or must
not invalidate a stage (params, code, helpers, input files, model weights, comments,
formatting, spec layout, resources) has its own test in test_invalidation.py."""

import pytest
from support import Calls, run, write

CHAIN = """
name: chain
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 5}
  scaled:
    op: engine_ops:Scale
    inputs: {table: numbers}
    params: {factor: 2}
  clipped:
    op: engine_ops:Clip
    inputs: {table: scaled}
    params: {max: 100}
  total:
    op: engine_ops:Sum
    inputs: {table: clipped}
  side:
    op: engine_ops:Scale
    inputs: {table: numbers}
    params: {factor: 5}
"""


@pytest.fixture
def chain(tmp_path):
    return write(tmp_path / "chain.yaml", CHAIN)


@pytest.fixture
def calls(tmp_path):
    return Calls(tmp_path / "calls.txt")


def test_first_run_computes_everything_and_second_run_nothing(chain, calls):
    first = run(chain)
    assert sorted(calls.take()) == ["clipped", "numbers", "scaled", "side", "total"]
    assert sorted(first.computed()) == ["clipped", "numbers", "scaled", "side", "total"]
    second = run(chain)
    assert calls.take() == []
    assert second.computed() == []
    assert {r.status for r in second.nodes.values()} == {"cached"}


def test_changing_a_param_reruns_only_that_stage_and_its_descendants(chain, calls):
    run(chain)
    calls.take()
    result = run(chain, "stages.scaled.params.factor=3")
    assert sorted(calls.take()) == ["clipped", "scaled", "total"]
    assert sorted(result.cached()) == ["numbers", "side"]


def test_early_cutoff_keeps_descendants_cached_when_output_is_unchanged(chain, calls):
    run(chain)
    calls.take()
    # every value is below 100 and below 1000: clipping at 1000 changes no value
    result = run(chain, "stages.clipped.params.max=1000")
    assert calls.take() == ["clipped"]
    assert result.nodes["clipped"].status == "computed"
    assert result.nodes["total"].status == "cached"


def test_plan_names_the_cause_of_each_rerun(chain, calls):
    import stardag

    run(chain)
    entries = {e.node: e for e in stardag.plan(chain, overrides=["stages.scaled.params.factor=3"])}
    assert entries["numbers"].status == "cached"
    assert entries["scaled"].status == "run" and entries["scaled"].causes == ["params"]
    assert any("factor: 2 -> 3" in d for d in entries["scaled"].details)
    assert entries["total"].causes == ["inputs"]
    forced = {e.node: e for e in stardag.plan(chain, force=["side"])}
    assert forced["side"].causes == ["forced"] and forced["numbers"].status == "cached"


def test_identical_work_under_two_stage_names_is_computed_once(tmp_path, calls):
    spec = write(
        tmp_path / "twins.yaml", CHAIN.replace("params: {factor: 5}", "params: {factor: 2}")
    )
    result = run(spec)
    assert sorted(calls.take()) == ["clipped", "numbers", "scaled", "total"]
    assert result.nodes["side"].key == result.nodes["scaled"].key


def test_plan_of_a_new_spec_says_new(chain):
    import stardag

    assert {e.cause for e in stardag.plan(chain)} == {"new"}


def test_force_reruns_a_cached_stage(chain, calls):
    run(chain)
    calls.take()
    run(chain, force=["side"])
    assert calls.take() == ["side"]


def test_until_runs_only_the_stage_and_its_ancestors(chain, calls):
    run(chain, until="scaled")
    assert sorted(calls.take()) == ["numbers", "scaled"]


def test_deleted_artifact_is_recomputed_with_cause_missing(chain, calls, tmp_path):
    import shutil

    import stardag

    result = run(chain)
    calls.take()
    key = result.nodes["side"].key
    shutil.rmtree(tmp_path / ".stardag" / "objects" / key[:2] / key)
    (entry,) = [e for e in stardag.plan(chain) if e.node == "side"]
    assert entry.causes == ["missing"]
    run(chain)
    assert calls.take() == ["side"]
