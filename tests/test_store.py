"""The store: atomic publish, crash safety, corruption detected and recomputed."""

import json
import os
import signal
import subprocess
import sys

import pytest
from support import TESTS, Calls, run, until, write

import stardag
from stardag.store import Store

SPEC = """
name: store
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 50}
  slow:
    op: engine_ops:Sleep
    inputs: {table: numbers}
  total:
    op: engine_ops:Sum
    inputs: {table: slow.table}
"""


@pytest.fixture
def spec(tmp_path):
    return write(tmp_path / "store.yaml", SPEC)


@pytest.fixture
def calls(tmp_path):
    return Calls(tmp_path / "calls.txt")


def _objects(tmp_path):
    return Store(tmp_path / ".stardag")


def test_killing_a_run_mid_stage_leaves_no_complete_artifact_and_the_next_run_resumes(
    tmp_path, spec, calls
):
    block = tmp_path / "block"
    block.touch()
    env = {**os.environ, "STARDAG_TEST_BLOCK": str(block), "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stardag.cli", "run", str(spec), "--executor", "local"],
        env=env,
        stderr=subprocess.PIPE,
    )
    until(
        lambda: (
            list((tmp_path / ".stardag" / "tmp").glob("*/blob/half.bin")) or proc.poll() is not None
        ),
        what="the operator's first file",
    )
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert calls.take() == ["numbers", "slow"]
    store = _objects(tmp_path)
    stages = sorted(m["stage"] for m in store.artifacts())
    assert stages == ["numbers"]  # nothing of `slow` reads as complete
    assert list((tmp_path / ".stardag" / "tmp").iterdir())  # its staging is there, unpublished
    plan = {e.node: e for e in stardag.plan(spec)}
    assert plan["numbers"].status == "cached" and plan["slow"].status == "run"
    block.unlink()
    result = run(spec)
    assert calls.take() == ["slow", "total"]
    assert result.nodes["numbers"].status == "cached"
    assert list((tmp_path / ".stardag" / "tmp").iterdir()) == []  # the dead run's staging is gone
    blob = stardag.read(spec, "slow", output="blob")
    assert sorted(p.name for p in blob.iterdir()) == ["half.bin", "other.bin"]


def _corrupt_and_rerun(tmp_path, spec, calls, damage):
    os.environ.pop("STARDAG_TEST_BLOCK", None)
    result = run(spec)
    calls.take()
    key = result.nodes["slow"].key
    damage(tmp_path / ".stardag" / "objects" / key[:2] / key)
    again = run(spec, force=["total"])  # `total` reads slow's table: the damage is found
    assert calls.take() == ["slow", "total"]
    assert (
        again.nodes["total"].manifest["outputs"]["total"]["content_hash"]
        == result.nodes["total"].manifest["outputs"]["total"]["content_hash"]
    )
    assert run(spec).computed() == []


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: _flip(d / "table" / "part-0.parquet"), id="flipped-bytes"),
        pytest.param(
            lambda d: (d / "table" / "part-0.parquet").write_bytes(
                (d / "table" / "part-0.parquet").read_bytes()[:40]
            ),
            id="truncated",
        ),
        pytest.param(lambda d: (d / "manifest.json").unlink(), id="missing-manifest"),
        pytest.param(
            lambda d: (d / "table" / "part-0.parquet").unlink(), id="manifest-without-data"
        ),
        pytest.param(
            lambda d: (d / "manifest.json").write_text("{not json"), id="garbled-manifest"
        ),
    ],
)
def test_a_corrupt_artifact_is_detected_reported_and_recomputed(
    tmp_path, spec, calls, damage, capsys
):
    _corrupt_and_rerun(tmp_path, spec, calls, damage)


def test_a_corrupt_model_file_is_found_when_read_and_recomputed(tmp_path, spec, calls):
    result = run(spec)
    calls.take()
    key = result.nodes["slow"].key
    _flip(tmp_path / ".stardag" / "objects" / key[:2] / key / "blob" / "other.bin")
    with pytest.raises(stardag.errors.CorruptArtifact, match="other.bin"):
        stardag.read(spec, "slow", output="blob")
    run(spec)
    assert calls.take() == ["slow"]
    assert (stardag.read(spec, "slow", output="blob") / "other.bin").read_bytes() == b"y" * 1000


def test_an_edited_manifest_does_not_pass_for_another_key(tmp_path, spec, calls):
    def edit(d):
        m = json.loads((d / "manifest.json").read_text())
        m["key"] = "0" * 32
        (d / "manifest.json").write_text(json.dumps(m))

    _corrupt_and_rerun(tmp_path, spec, calls, edit)


def test_corrupt_artifacts_are_quarantined_not_served(tmp_path, spec, calls):
    result = run(spec)
    key = result.nodes["numbers"].key
    _flip(tmp_path / ".stardag" / "objects" / key[:2] / key / "table" / "part-0.parquet")
    store = _objects(tmp_path)
    with pytest.raises(stardag.errors.CorruptArtifact):
        store.read_table(key, "table")
    assert store.manifest(key) is None
    assert list((tmp_path / ".stardag" / "quarantine").iterdir())


def test_the_store_holds_no_pickle(tmp_path, spec):
    run(spec)
    for p in (tmp_path / ".stardag").rglob("*"):
        if p.is_file():
            assert p.suffix in {".json", ".parquet", ".bin", ".lock"}, p  # .lock: empty
            assert not p.read_bytes().startswith(b"\x80"), f"{p} looks like a pickle"


def test_polars_and_arrow_outputs_of_the_same_values_hash_alike():
    import polars as pl
    import pyarrow as pa

    from stardag.content_hash import table_hash

    df = pl.DataFrame(
        {
            "s": ["a", None, "c"],
            "x": [1, 2, None],
            "l": [[1], None, [2, 3]],
            "st": [{"a": 1}, None, {"a": None}],
            "b": [True, None, False],
        }
    )
    table = pa.table(
        {
            "s": ["a", None, "c"],
            "x": [1, 2, None],
            "l": [[1], None, [2, 3]],
            "st": [{"a": 1}, None, {"a": None}],
            "b": [True, None, False],
        }
    )
    assert table_hash(df.to_arrow()) == table_hash(table)
    assert table_hash(pa.concat_tables([table.slice(0, 1), table.slice(1)])) == table_hash(table)
    assert table_hash(table.slice(1)) != table_hash(table)
    assert table_hash(table.rename_columns(["t", "x", "l", "st", "b"])) != table_hash(table)


def test_a_staging_directory_is_gone_after_its_block_whatever_happens(tmp_path):
    import shutil

    import pyarrow as pa

    from stardag.errors import InputError, StoreError

    store = Store(tmp_path / "store")
    key = "ab" * 32
    with store.staging(key) as staging:
        store.write_table(staging, "table", pa.table({"x": [1]}))
        published = store.publish(staging, {"outputs": {}})
    assert not staging.path.exists()
    assert published["key"] == key and "table/part-0.parquet" in published["files"]

    for error in (ValueError("the operator's bug"), InputError("row 3: bad"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with store.staging("cd" * 32) as staging:
                staging.output_dir("model")
                raise error
        assert not staging.path.exists()

    # an operator failing because its staging directory vanished under it is the store's
    # failure, and says so; its own error is kept as the cause
    with pytest.raises(StoreError, match="vanished while it ran") as e:
        with store.staging("ef" * 32) as staging:
            shutil.rmtree(staging.path)
            raise FileNotFoundError("model/weights.safetensors")
    assert isinstance(e.value.__cause__, FileNotFoundError)
    assert store.manifest("cd" * 32) is None and store.manifest("ef" * 32) is None
