"""The resolved spec: one rule for mappings under `extends` and `--set`, and `stardag config`
printing the spec as it runs with where each value came from."""

import json

import pytest
import yaml
from click.testing import CliRunner
from support import cli, write

from stardag.cli import main
from stardag.errors import SpecError
from stardag.graph import compile_spec
from stardag.spec import load_spec

BASE = """
name: base
stages:
  base:
    op: char_model
    params: {steps: 10, lr: 2.0e-3,
             mix: {1: 0.1, 2: 0.26, 3: 0.31, 4: 0.315, 5: 0.015}}
    resources: {cpus: 2}
"""

CHILD = """
extends: base.yaml
name: child
stages:
  base:
    params:
      mix: {1: 0.5, 2: 0.5}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def child(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    return write(tmp_path / "child.yaml", CHILD)


def test_a_mapping_param_in_a_child_spec_replaces_the_bases_whole(child):
    params = compile_spec(load_spec(child)).nodes["base"].params
    assert params.mix == {1: 0.5, 2: 0.5}
    # the rest of the stage's params still merge key by key
    assert params.steps == 10 and params.lr == 2e-3


def test_a_mapping_param_set_on_the_command_line_replaces_whole(child):
    params = compile_spec(load_spec(child, ["stages.base.params.mix={3: 1.0}"])).nodes["base"]
    assert params.params.mix == {3: 1.0}


def test_set_merges_the_specs_structure_key_by_key_as_extends_does(child):
    loaded = load_spec(child, ["stages.base.params={steps: 20}", "stages.base.resources={gpus: 0}"])
    raw = loaded.raw["stages"]["base"]
    assert raw["params"]["steps"] == 20 and raw["params"]["lr"] == 2e-3
    assert raw["params"]["mix"] == {"1": 0.5, "2": 0.5}
    assert raw["resources"] == {"cpus": 2, "gpus": 0}
    # and a null deletes a key, as under extends
    loaded = load_spec(child, ["stages.base.params={lr: null}"])
    assert "lr" not in loaded.raw["stages"]["base"]["params"]


def test_config_prints_the_resolved_spec_with_the_file_and_line_of_each_value(child):
    out = invoke("config", child, "--set", "stages.base.params.steps=30")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "name: child  # " in out.output
    (mix,) = [x for x in lines if x.strip().startswith("mix:")]
    assert mix.split("#")[0].strip() == "mix: {'1': 0.5, '2': 0.5}"
    assert mix.endswith("child.yaml:6")
    (lr,) = [x for x in lines if x.strip().startswith("lr:")]
    assert lr.endswith("base.yaml:5")
    (steps,) = [x for x in lines if x.strip().startswith("steps:")]
    assert steps.endswith("# --set stages.base.params.steps=30")
    # the output reads back as the resolved spec
    assert yaml.safe_load(out.output)["stages"]["base"]["params"]["steps"] == 30


def test_config_json_gives_the_spec_and_the_origins(child):
    out = invoke("config", child, "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["spec"]["stages"]["base"]["params"]["mix"] == {"1": 0.5, "2": 0.5}
    assert data["origins"]["stages.base.params.mix"].endswith("child.yaml:6")
    assert data["origins"]["stages.base.resources.cpus"].endswith("base.yaml:7")


def test_config_of_a_bad_spec_is_one_located_line_with_exit_status_2(tmp_path, child):
    write(tmp_path / "bad.yaml", "extends: base.yaml\nname: bad\nstages:\n  base:\n    opp: x\n")
    out = cli("config", tmp_path / "bad.yaml")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "bad.yaml:5" in out.stderr and "'opp'" in out.stderr
    out = cli("config", child, "--set", "stages.base.params.nope=1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "nope" in out.stderr
    with pytest.raises(SpecError):
        load_spec(child, ["stages.nobody.params.x=1"])
