"""Stages on Ray: the same artifacts as in-process, independent stages side by side."""

import pytest
from support import TESTS, Calls, run, write

import stardag

pytestmark = pytest.mark.ray

SPEC = """
name: onray
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 20}
  left:
    op: engine_ops:Scale
    inputs: {table: numbers}
    params: {factor: 3}
    resources: {cpus: 1}
  right:
    op: engine_ops:Weights
    inputs: {table: numbers}
    resources: {cpus: 1}
  back:
    op: engine_ops:ReadWeights
    inputs: {model: right}
  broken:
    op: engine_ops:Fail
    inputs: {table: left}
    params: {fail: false}
"""


def test_stages_run_as_ray_tasks_and_match_a_local_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    calls = Calls(tmp_path / "calls.txt")
    spec = write(tmp_path / "ray.yaml", SPEC)
    on_ray = run(spec, executor="ray", store=str(tmp_path / "ray-store"))
    assert sorted(calls.take()) == ["back", "broken", "left", "numbers", "right"]
    local = run(spec, executor="local", store=str(tmp_path / "local-store"))
    for node in on_ray.nodes:
        assert on_ray.nodes[node].key == local.nodes[node].key
        assert on_ray.nodes[node].manifest["outputs"] == local.nodes[node].manifest["outputs"]
    # a failure on Ray is the operator's error, with its stage
    with pytest.raises(stardag.errors.StageFailed, match="broken.*told to fail"):
        run(
            spec,
            "stages.broken.params.fail=true",
            executor="ray",
            store=str(tmp_path / "ray-store"),
        )
    # a stage asking for more than any node of the embedded Ray has fails at once, by name
    with pytest.raises(
        stardag.errors.StageFailed,
        match=r"stage 'left'.*needs CPU 1, GPU 1, and no node of this Ray",
    ):
        run(
            spec,
            "stages.left.resources.gpus=1",
            "stages.left.params.factor=4",
            executor="ray",
            store=str(tmp_path / "ray-store"),
        )
    # and so does one asking for a custom resource that no node has
    with pytest.raises(
        stardag.errors.StageFailed,
        match=r"stage 'left'.*needs CPU 1, tpu_pod 1, and no node of this Ray",
    ):
        run(
            spec,
            "stages.left.resources.custom={tpu_pod: 1}",
            "stages.left.params.factor=5",
            executor="ray",
            store=str(tmp_path / "ray-store"),
        )
