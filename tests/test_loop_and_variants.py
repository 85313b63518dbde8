"""The loop block and experiment variants."""

import pytest
from support import Calls, run, write

import stardag
from stardag.graph import compile_spec
from stardag.spec import load_spec

LOOP = """
name: looped
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 3}
  model:
    op: engine_ops:Weights
    inputs: {table: numbers}
loop:
  iterations: 3
  stages:
    step:
      op: engine_ops:Step
      inputs:
        table: {previous: step, initial: numbers}
    total:
      op: engine_ops:Sum
      inputs: {table: step, extra: numbers}
  # a loop stage can also read a model made outside the loop
    weights:
      op: engine_ops:ReadWeights
      inputs: {model: model}
final:
  placeholder: true
"""


@pytest.fixture
def calls(tmp_path):
    return Calls(tmp_path / "calls.txt")


def _loop(tmp_path):
    return write(tmp_path / "loop.yaml", LOOP.replace("final:\n  placeholder: true\n", ""))


def test_a_loop_of_three_iterations_compiles_to_the_right_graph(tmp_path):
    graph = compile_spec(load_spec(_loop(tmp_path)))
    assert list(graph.nodes)[:2] == ["numbers", "model"]
    assert sorted(graph.nodes) == sorted(
        ["numbers", "model"] + [f"{s}@{i}" for i in (1, 2, 3) for s in ("step", "total", "weights")]
    )
    assert graph.nodes["step@1"].inputs == {"table": ("numbers", "table")}
    assert graph.nodes["step@2"].inputs == {"table": ("step@1", "table")}
    assert graph.nodes["step@3"].inputs == {"table": ("step@2", "table")}
    assert graph.nodes["total@2"].inputs == {
        "table": ("step@2", "table"),
        "extra": ("numbers", "table"),
    }
    assert graph.nodes["weights@3"].inputs == {"model": ("model", "model")}
    # the iteration index reaches the operator as a param
    assert [graph.nodes[f"step@{i}"].params.iteration for i in (1, 2, 3)] == [1, 2, 3]
    order = list(graph.nodes)
    assert order.index("step@1") < order.index("step@2") < order.index("total@2")


def test_a_loop_runs_and_each_iteration_sees_the_previous_output(tmp_path, calls):
    spec = _loop(tmp_path)
    run(spec)
    # numbers 0,1,2; step@i adds i to the previous: +1, +3, +6
    totals = [stardag.read(spec, "total", iteration=i)["total"][0] for i in (1, 2, 3)]
    assert totals == [(3 + 3) + 3, (3 + 9) + 3, (3 + 18) + 3]
    assert stardag.read(spec, "weights", iteration=2)["x"].to_list() == [0, 1, 2]
    calls.take()
    more = run(spec, "loop.iterations=4")
    assert sorted(calls.take()) == ["step@4", "total@4"]  # iteration 4 only
    # weights@4 does the same work as weights@1 (same input, same params): a cache hit
    assert sorted(more.computed()) == ["step@4", "total@4"]


def test_a_stage_after_the_loop_reads_the_last_iteration(tmp_path, calls):
    spec = write(
        tmp_path / "after.yaml",
        LOOP.replace("final:\n  placeholder: true\n", "").replace(
            "stages:\n  numbers:",
            """stages:
  summary:
    op: engine_ops:Sum
    inputs: {table: step@last}
  numbers:""",
            1,
        ),
    )
    graph = compile_spec(load_spec(spec))
    assert graph.nodes["summary"].inputs == {"table": ("step@3", "table")}
    run(spec)
    assert stardag.read(spec, "summary")["total"][0] == 3 + 18


def test_a_variant_reuses_the_bases_upstream_artifacts(tmp_path, calls):
    base = _loop(tmp_path)
    run(base)
    calls.take()
    variant = write(
        tmp_path / "variant.yaml",
        """
        extends: loop.yaml
        name: looped-variant
        loop:
          stages:
            total:
              inputs:
                extra: null      # drop an input: the variant differs from here down
        """,
    )
    result = run(variant)
    assert sorted(calls.take()) == ["total@1", "total@2", "total@3"]
    assert sorted(result.cached()) == sorted(
        ["numbers", "model"] + [f"{s}@{i}" for i in (1, 2, 3) for s in ("step", "weights")]
    )


def test_a_variant_can_swap_an_operator(tmp_path, calls):
    write(tmp_path / "loop.yaml", LOOP.replace("final:\n  placeholder: true\n", ""))
    variant = write(
        tmp_path / "swap.yaml",
        """
        extends: loop.yaml
        name: swapped
        stages:
          model:
            op: engine_ops:Weights
        loop:
          stages:
            weights:
              op: engine_ops:ReadWeights
              resources: {cpus: 0}
            step:
              op: engine_ops:Scale
              params: {factor: 3}
        """,
    )
    graph = compile_spec(load_spec(variant))
    assert graph.nodes["step@2"].op_ref == "engine_ops:Scale"
    assert graph.nodes["step@2"].params.factor == 3
    assert graph.nodes["weights@1"].resources.cpus == 0


def test_overrides_from_the_command_line_reach_loop_stages(tmp_path):
    graph = compile_spec(
        load_spec(
            _loop(tmp_path),
            [
                "loop.iterations=2",
                "loop.stages.step.op=engine_ops:Scale",
                "loop.stages.step.params.factor=7",
            ],
        )
    )
    assert graph.nodes["step@2"].params.factor == 7
    assert "step@3" not in graph.nodes
