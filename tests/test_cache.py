"""Cache semantics: what re-runs and what does not."""

import pytest

from support import Calls, cli, run, write

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
    spec = write(tmp_path / "twins.yaml", CHAIN.replace("params: {factor: 5}", "params: {factor: 2}"))
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


def test_param_order_and_yaml_formatting_do_not_change_keys(tmp_path, chain, calls):
    run(chain)
    calls.take()
    reordered = CHAIN.replace("params: {n: 5}", "params:\n      n: 5   # five numbers")
    spec = write(tmp_path / "chain.yaml", reordered)
    run(spec)
    assert calls.take() == []


def test_resources_do_not_change_keys(chain, calls):
    run(chain)
    calls.take()
    run(chain, "stages.scaled.resources.cpus=0.5")
    assert calls.take() == []


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


OPS_V1 = '''
import polars as pl
from stardag.operator import Dataset, Operator, Params


def helper(x):
    return x + 1


class Inc(Operator):
    outputs = {"table": Dataset({"x": "int64"})}

    def run(self, ctx):
        open("calls.txt", "a").write("inc\\n")
        return pl.DataFrame({"x": [helper(1)]})
'''


def _code_spec(tmp_path):
    return write(tmp_path / "spec.yaml", "name: code\nstages:\n  inc:\n    op: myops:Inc\n")


def _runs_of_inc(tmp_path, spec):
    out = cli("run", spec, "--executor", "local", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "calls.txt")
    n = calls.read_text().count("inc") if calls.exists() else 0
    calls.unlink(missing_ok=True)
    return n


def test_changing_operator_code_reruns_it_but_reformatting_does_not(tmp_path):
    spec = _code_spec(tmp_path)
    ops = tmp_path / "myops.py"
    ops.write_text(OPS_V1)
    assert _runs_of_inc(tmp_path, spec) == 1
    # comments, blank lines, docstrings and line breaks do not count
    ops.write_text('"""Ops."""\n' + OPS_V1.replace("def helper(x):", "# a comment\n\ndef helper(x):\n"
                                                  "    \"\"\"Add one.\"\"\"")
                   .replace('pl.DataFrame({"x": [helper(1)]})', 'pl.DataFrame(\n  {"x": [helper(1)]}\n)'))
    assert _runs_of_inc(tmp_path, spec) == 0
    ops.write_text(OPS_V1.replace("return pl.DataFrame", "x = 0\n        return pl.DataFrame"))
    assert _runs_of_inc(tmp_path, spec) == 1
    out = cli("plan", spec, "--json", cwd=tmp_path)
    assert '"status": "cached"' in out.stdout


def test_changing_a_helper_the_operator_calls_reruns_it(tmp_path):
    spec = _code_spec(tmp_path)
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("def helper(x):\n    return x + 1\n")
    (tmp_path / "myops.py").write_text(OPS_V1.replace("def helper(x):\n    return x + 1\n",
                                                      "from mypkg.util import helper\n"))
    spec.write_text(spec.read_text())
    assert _runs_of_inc(tmp_path, spec) == 1
    (pkg / "util.py").write_text("def helper(x):\n    return x + 2\n")
    # a helper in another top-level package is outside the fingerprint: only same-package
    # helpers count; so put the operator in the package too
    (pkg / "ops.py").write_text(OPS_V1.replace("def helper(x):\n    return x + 1\n",
                                               "from .util import helper\n"))
    spec2 = write(tmp_path / "spec2.yaml", "name: code2\nstages:\n  inc:\n    op: mypkg.ops:Inc\n")
    assert _runs_of_inc(tmp_path, spec2) == 1
    assert _runs_of_inc(tmp_path, spec2) == 0
    (pkg / "util.py").write_text("def helper(x):\n    return x + 3\n")
    assert _runs_of_inc(tmp_path, spec2) == 1
