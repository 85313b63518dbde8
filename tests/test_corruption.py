"""Damaged artifacts, as a user meets them with the `stardag` command: each kind of damage
to a stored artifact is detected when the artifact is read, reported with a message that
says what is wrong with which file, and the stage is recomputed by the next run into the
same content as before.

tests/test_store.py checks the recovery itself in-process (a forced reader finds the damage
and the same run recomputes it); here every step is a fresh `stardag` process, the message
on stderr is checked, and so are the damage kinds it lacks: an edited manifest's params, a
model directory with a truncated safetensors file, an artifact reached by `stardag show`.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from support import Calls, cli, write

import stardag

OPS = '''
import numpy as np
import polars as pl
from safetensors.numpy import load_file, save_file

from engine_ops import record
from stardag.operator import Dataset, Model, Operator


class Weights(Operator):
    """A model directory: a safetensors file made from the table, and a config."""

    inputs = {"table": Dataset({"x": "int64"})}
    outputs = {"model": Model()}

    def run(self, ctx, table):
        record(ctx)
        out = ctx.output_dir("model")
        x = table["x"].to_numpy().astype(np.float32)
        save_file({"w": x.reshape(-1, 1) * np.ones((1, 64), np.float32)},
                  str(out / "model.safetensors"))
        (out / "config.json").write_text('{"hidden_size": 64}')


class Load(Operator):
    inputs = {"model": Model()}
    outputs = {"table": Dataset({"x": "int64"})}

    def run(self, ctx, model):
        record(ctx)
        w = load_file(str(model / "model.safetensors"))["w"]
        return pl.DataFrame({"x": w[:, 0].astype(np.int64)})
'''

SPEC = """
name: corruption
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 2000}
  scaled:
    op: engine_ops:Scale
    inputs: {table: numbers}
    params: {factor: 3}
  total:
    op: engine_ops:Sum
    inputs: {table: scaled}
  weights:
    op: corrupt_ops:Weights
    inputs: {table: scaled}
  loaded:
    op: corrupt_ops:Load
    inputs: {model: weights}
"""

# the stage whose artifact is damaged -> the stage that reads it
READER = {"scaled": "total", "weights": "loaded"}


class Pipeline:
    def __init__(self, root: Path):
        self.root = root
        (root / "corrupt_ops.py").write_text(OPS.lstrip())
        self.spec = write(root / "corruption.yaml", SPEC)
        self.calls = Calls(root / "calls.txt")

    def stardag(self, *args, ok=True):
        out = cli(*args, cwd=self.root)
        if ok:
            assert out.returncode == 0, out.stderr
        return out

    def run(self, *args):
        """`stardag run`; (the stages whose operator ran, stderr)."""
        out = self.stardag("run", self.spec, "--executor", "local", *args)
        return sorted(self.calls.take()), out.stderr

    def refs(self) -> dict[str, dict]:
        """What each stage last resolved to: its key and its outputs' content hashes."""
        d = self.root / ".stardag" / "refs" / "corruption"
        return {p.stem: json.loads(p.read_text()) for p in d.glob("*.json")}

    def artifact(self, stage: str) -> Path:
        key = self.refs()[stage]["key"]
        return self.root / ".stardag" / "objects" / key[:2] / key

    def values(self, stage: str):
        """A stage's output as read through the API: rows, or a model's files."""
        value = stardag.read(self.spec, stage)
        if isinstance(value, Path):
            return {p.name: p.read_bytes() for p in value.iterdir()}
        return value.to_dicts()

    def plan(self) -> dict[str, dict]:
        out = self.stardag("plan", self.spec, "--json")
        return {e["node"]: e for e in json.loads(out.stdout)}


@pytest.fixture
def pipeline(tmp_path):
    p = Pipeline(tmp_path)
    ran, _ = p.run()
    assert ran == ["loaded", "numbers", "scaled", "total", "weights"]
    return p


def _truncate(path: Path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(artifact: Path, edit):
    manifest = artifact / "manifest.json"
    m = json.loads(manifest.read_text())
    edit(m)
    manifest.write_text(json.dumps(m, indent=1, sort_keys=True))


def _edit_params(artifact: Path):
    # as if `scaled` had been computed with another factor
    _edit_manifest(artifact, lambda m: m["record"]["params"].update(factor=4))


# (what is damaged, how, what the message says about it); None: the artifact is simply
# absent (no manifest: it was never published), which `plan` reports as `missing`
DAMAGE = {
    "truncated-parquet": (
        "scaled",
        lambda a: _truncate(a / "table" / "part-0.parquet"),
        r"file table/part-0\.parquet has \d+ bytes, manifest says \d+",
    ),
    "flipped-bytes-in-parquet": (
        "scaled",
        lambda a: _flip(a / "table" / "part-0.parquet"),
        r"file table/part-0\.parquet does not match its checksum",
    ),
    "missing-manifest": ("scaled", lambda a: (a / "manifest.json").unlink(), None),
    "manifest-without-data": (
        "scaled",
        lambda a: shutil.rmtree(a / "table"),
        r"file table/part-0\.parquet is missing",
    ),
    "edited-params-in-manifest": ("scaled", _edit_params, r"manifest"),
    "manifest-a-json-list": (
        "scaled",
        lambda a: (a / "manifest.json").write_text("[]"),
        r"manifest unreadable",
    ),
    "manifest-without-outputs": (
        "scaled",
        lambda a: _edit_manifest(a, lambda m: m.pop("outputs")),
        r"manifest has no outputs",
    ),
    "dataset-file-removed-from-manifest": (
        "scaled",
        lambda a: _edit_manifest(a, lambda m: m["files"].pop("table/part-0.parquet")),
        r"manifest lists no file of output 'table'",
    ),
    "model-file-removed-from-manifest": (
        "weights",
        lambda a: _edit_manifest(a, lambda m: m["files"].pop("model/config.json")),
        r"file model/config\.json is not in the manifest",
    ),
    "file-entry-not-an-object": (
        "weights",
        lambda a: _edit_manifest(a, lambda m: m["files"].update({"model/config.json": 7})),
        r"manifest describes file model/config\.json badly",
    ),
    "truncated-safetensors": (
        "weights",
        lambda a: _truncate(a / "model" / "model.safetensors", 0.7),
        r"file model/model\.safetensors has \d+ bytes, manifest says \d+",
    ),
}


CASES = [
    pytest.param(
        stage,
        damage,
        message,
        id=name,
    )
    for name, (stage, damage, message) in DAMAGE.items()
]


def _warning(stderr: str, key: str, message: str) -> bool:
    """The store's report: `warning: artifact <key> is corrupt (<why>); it will be recomputed`."""
    pattern = rf"warning: artifact {key[:12]} is corrupt \(.*{message}.*\); it will be recomputed"
    return re.search(pattern, stderr) is not None


@pytest.mark.parametrize(("stage", "damage", "message"), CASES)
def test_damage_found_by_a_stage_reading_the_artifact_is_reported_and_recomputed(
    pipeline, stage, damage, message
):
    before = pipeline.refs()
    key = before[stage]["key"]
    damage(pipeline.artifact(stage))
    # the reader must run: it reads the damaged artifact, whatever a cheap check found
    ran, stderr = pipeline.run("--force", READER[stage])
    assert ran == sorted([stage, READER[stage]]), stderr
    if message is None:
        assert re.search(rf"{stage}\s+running \(missing\)", stderr), stderr
    else:
        assert _warning(stderr, key, message), stderr
    after = pipeline.refs()
    assert after == before  # same keys, same content hashes, for every stage
    ran, stderr = pipeline.run()
    assert ran == [] and "warning" not in stderr, stderr


@pytest.mark.parametrize(("stage", "damage", "message"), CASES)
def test_damage_found_by_show_is_reported_and_the_next_run_recomputes(
    pipeline, stage, damage, message
):
    before, values = pipeline.refs(), pipeline.values(stage)
    key = before[stage]["key"]
    damage(pipeline.artifact(stage))
    out = pipeline.stardag("show", pipeline.spec, stage, ok=False)
    assert out.returncode != 0, out.stdout  # no rows of a damaged artifact
    assert "Traceback" not in out.stderr
    if message is None:
        assert f"stage '{stage}' has not been computed for this spec (missing)" in out.stderr
    else:
        assert _warning(out.stderr, key, message), out.stderr
    plan = pipeline.plan()
    assert plan[stage]["status"] == "run" and plan[stage]["causes"] == ["missing"]
    ran, stderr = pipeline.run()
    assert ran == [stage], stderr  # the same bytes again: the stages below stay cached
    assert pipeline.refs() == before
    assert pipeline.values(stage) == values


# what `ls` and `plan` find without reading every byte: all but flipped bytes
SHALLOW = [c for c in CASES if c.id != "flipped-bytes-in-parquet"]


@pytest.mark.parametrize(("stage", "damage", "message"), SHALLOW)
def test_damage_found_by_ls_and_plan_is_reported_and_the_stage_reads_as_missing(
    pipeline, stage, damage, message
):
    key = pipeline.refs()[stage]["key"]
    damage(pipeline.artifact(stage))
    listed = pipeline.stardag("ls", pipeline.spec)
    assert key[:12] not in listed.stdout and "Traceback" not in listed.stderr
    if message is not None:
        assert _warning(listed.stderr, key, message), listed.stderr
        assert not pipeline.artifact(stage).exists()  # quarantined
    plan = pipeline.plan()
    assert plan[stage]["status"] == "run" and plan[stage]["causes"] == ["missing"]


STALE = ["--set", "stages.scaled.params.factor=5"]


@pytest.mark.parametrize("text", ["[]", "7", '"ref"', '{"params": [], "key": 1}', "{"])
def test_a_damaged_ref_is_reported_and_the_stage_reads_as_new(pipeline, text):
    (pipeline.root / ".stardag" / "refs" / "corruption" / "scaled.json").write_text(text)
    out = pipeline.stardag("plan", pipeline.spec, "--json", *STALE)
    assert "warning: the ref of corruption/scaled in the store is damaged" in out.stderr
    assert {e["node"]: e for e in json.loads(out.stdout)}["scaled"]["causes"] == ["new"]
    ran, stderr = pipeline.run(*STALE)
    assert ran == ["loaded", "scaled", "total", "weights"], stderr


@pytest.mark.parametrize("text", ["[]", "null", '"lease"', "{"])
def test_a_damaged_lease_is_taken_over(pipeline, text):
    out = pipeline.stardag("plan", pipeline.spec, "--json", *STALE)
    key = {e["node"]: e for e in json.loads(out.stdout)}["scaled"]["key"]
    lease = pipeline.root / ".stardag" / "leases" / f"{key}.json"
    lease.parent.mkdir(exist_ok=True)
    lease.write_text(text)
    ran, stderr = pipeline.run(*STALE)
    assert ran == ["loaded", "scaled", "total", "weights"], stderr
    assert not lease.exists()  # released
