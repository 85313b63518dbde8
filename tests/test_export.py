"""`stardag export`: a stage's artifact out of the store, as a Hugging Face model directory,
JSONL, Parquet or a `datasets` directory, with a card saying where it came from."""

import json

import polars as pl
import pytest
from click.testing import CliRunner
from support import cli, write

from stardag.cli import main

SPEC = """
name: exporting
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 12}
  model:
    op: engine_ops:Weights
    inputs: {table: numbers}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def spec(tmp_path):
    spec = write(tmp_path / "exporting.yaml", SPEC)
    assert invoke("run", spec, "--executor", "local", "-q").exit_code == 0
    return spec


def card_of(d):
    return json.loads((d / "card.json").read_text())


def test_a_model_exports_as_a_plain_directory_with_a_card(spec, tmp_path):
    d = tmp_path / "out" / "m"  # its parents are made
    out = invoke("export", spec, "model", "--to", d)
    assert out.exit_code == 0, out.output
    assert (d / "config.json").read_text() == '{"kind": "test"}'
    assert (d / "weights.txt").read_text() == ",".join(str(i) for i in range(12))
    card = card_of(d)
    assert card["spec"] == "exporting" and card["stage"] == "model" and card["kind"] == "model"
    assert card["format"] == "hf" and len(card["key"]) == 32
    assert card["spec_file"] == str(spec.resolve())
    assert set(card["inputs"]) == {"table"}
    assert card["key"] in (d / "README.md").read_text()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_dataset_exports_as_jsonl_or_parquet(spec, tmp_path, fmt):
    out = invoke("export", spec, "numbers", "--to", tmp_path / "d", "--format", fmt)
    assert out.exit_code == 0, out.output
    data = tmp_path / "d" / f"data.{fmt}"
    df = pl.read_ndjson(data) if fmt == "jsonl" else pl.read_parquet(data)
    assert df["x"].to_list() == list(range(12))
    card = card_of(tmp_path / "d")
    assert card["rows"] == 12 and card["format"] == fmt and card["params"]["n"] == 12
    assert card["files"] == [f"data.{fmt}"]


def test_a_dataset_exports_as_a_datasets_directory(spec, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = invoke("export", spec, "numbers", "--to", tmp_path / "hf", "--format", "hf")
    assert out.exit_code == 0, out.output
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert ds["x"] == list(range(12))
    assert card_of(tmp_path / "hf")["format"] == "hf"


def test_export_refuses_a_non_empty_directory_unless_forced(spec, tmp_path):
    d = tmp_path / "busy"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    out = cli("export", spec, "numbers", "--to", d)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "not empty" in out.stderr and "--force" in out.stderr
    assert (d / "keep.txt").read_text() == "mine"
    out = invoke("export", spec, "numbers", "--to", d, "--force")
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "card.json", "data.jsonl"]
    (tmp_path / "empty").mkdir()  # an empty directory is fine
    assert invoke("export", spec, "numbers", "--to", tmp_path / "empty").exit_code == 0


def test_a_model_has_no_table_format(spec, tmp_path):
    out = invoke("export", spec, "model", "--to", tmp_path / "m", "--format", "jsonl")
    assert out.exit_code == 2 and "is a model" in out.output
    assert not (tmp_path / "m").exists()


def test_show_to_on_a_model_is_an_error_pointing_to_export(spec, tmp_path):
    out = cli("show", spec, "model", "--to", tmp_path / "m.parquet")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "is a model" in out.stderr and "stardag export" in out.stderr
    assert not (tmp_path / "m.parquet").exists()
