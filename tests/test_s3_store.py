"""The store on an S3-compatible object store: a real S3 server (moto's server mode) on
loopback, reached through pyarrow's S3 filesystem as users reach theirs. Artifacts appear
only when whole, two publishers of one key leave one valid artifact, corruption is found
when read, and two runs sharing the bucket compute each stage once."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from support import Calls, run, until, write
from test_leases import SPEC as SLOW_SPEC
from test_leases import calls_of, start

from stardag.store import Store

moto_server = pytest.importorskip("moto.server", reason="pip install 'moto[server]' (test extra)")

SPEC = """
name: s3
stages:
  nums:
    op: engine_ops:Numbers
    params: {n: 50}
  scaled:
    op: engine_ops:Scale
    inputs: {table: nums}
  weights:
    op: engine_ops:Weights
    inputs: {table: nums}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path, request):
    """A fresh bucket; returns the store URI."""
    import pyarrow.fs as pafs

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STARDAG_CACHE": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(k, v)
    bucket = f"b-{request.node.name[5:40].replace('_', '-').lower()}".rstrip("-")
    fs = pafs.S3FileSystem(
        endpoint_override=s3_endpoint,
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir(bucket)
    return f"s3://{bucket}/team/cache?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"


def _keys(store_uri: str) -> set[str]:
    import pyarrow.fs as pafs

    s = Store(store_uri)
    sel = pafs.FileSelector(f"{s.root}", recursive=True, allow_not_found=True)
    return {
        i.path.removeprefix(s.root + "/")
        for i in s.fs.get_file_info(sel)
        if i.type == pafs.FileType.File
    }


def test_a_spec_runs_against_s3_and_matches_a_local_run(s3, tmp_path):
    import stardag

    spec = write(tmp_path / "s3.yaml", SPEC)
    calls = Calls(tmp_path / "calls.txt")
    first = run(spec, store=s3)
    assert sorted(calls.take()) == ["nums", "scaled", "weights"]
    again = run(spec, store=s3)
    assert calls.take() == [] and sorted(again.cached()) == ["nums", "scaled", "weights"]
    local = run(spec, store=tmp_path / "local")
    for node in ("nums", "scaled", "weights"):
        assert first.nodes[node].key == local.nodes[node].key
        assert first.nodes[node].manifest["outputs"] == local.nodes[node].manifest["outputs"]
    a = stardag.read(spec, "scaled", store=s3)
    b = stardag.read(spec, "scaled", store=tmp_path / "local")
    assert a.equals(b)
    model = stardag.read(spec, "weights", store=s3)  # a local copy, checksums verified
    assert Path(model).is_dir() and str(tmp_path / "cache") in str(model)
    # data sits under the publish's own directory; nothing staged is left in the bucket
    keys = _keys(s3)
    assert all(
        "/data-" in k for k in keys if k.startswith("objects/") and not k.endswith("manifest.json")
    )
    assert not any(k.startswith(("tmp/", "leases/", "partial/")) for k in keys)


def test_an_artifact_is_invisible_until_its_manifest_lands(s3):
    import pyarrow as pa

    store = Store(s3)
    key = "cd" * 32
    staging = store.begin(key)
    store.write_table(staging, "table", pa.table({"x": [1, 2, 3]}))
    real = store.fs.open_output_stream

    def fail_on_manifest(path, *a, **kw):
        if path.endswith("manifest.json"):
            raise OSError("connection reset")
        return real(path, *a, **kw)

    store.backend.fs = _Wrapped(store.fs, fail_on_manifest)
    from stardag.errors import StoreError

    with pytest.raises(StoreError, match="publish"):
        store.publish(staging, {"outputs": {}})
    assert any(k.startswith("objects/") for k in _keys(s3))  # data was written...
    assert Store(s3).manifest(key) is None  # ...but there is no artifact
    assert not staging.path.exists()


class _Wrapped:
    """A pyarrow filesystem whose open_output_stream is replaced."""

    def __init__(self, fs, open_output_stream):
        self._fs, self.open_output_stream = fs, open_output_stream

    def __getattr__(self, name):
        return getattr(self._fs, name)


def test_two_publishers_of_one_key_leave_one_valid_artifact(s3):
    import pyarrow as pa

    from stardag.fingerprint import StageKey

    record = StageKey("t:T", "1", "c", {}, {})
    parts = {"record": record.to_json(), "inputs": {}}
    key = record.digest
    barrier = threading.Barrier(2)
    errors = []

    def publish(value: int):
        try:
            store = Store(s3)
            staging = store.begin(key)
            # different bytes on purpose: a non-deterministic stage run twice
            out = store.write_table(staging, "table", pa.table({"x": [value] * 1000}))
            barrier.wait()
            store.publish(staging, {**parts, "outputs": {"table": out}})
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=publish, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = Store(s3)
    m = store.manifest(key)
    assert m is not None
    store.verify(key, m)  # every file the manifest names matches its checksum
    values = set(store.read_table(key, "table").column("x").to_pylist())
    assert len(values) == 1


def test_a_corrupt_object_is_found_when_read_and_recomputed(s3, tmp_path, capfd):
    spec = write(tmp_path / "s3.yaml", SPEC)
    calls = Calls(tmp_path / "calls.txt")
    res = run(spec, store=s3)
    calls.take()
    store = Store(s3)
    key = res.nodes["nums"].key
    m = store.manifest(key)
    path = f"{store._files(key, m)}/table/part-0.parquet"
    with store.fs.open_input_stream(path) as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with store.fs.open_output_stream(path) as f:
        f.write(bytes(data))
    res = run(spec, store=s3, force=["scaled"])  # reads nums: corrupt, recomputed
    assert "nums" in calls.take()
    assert "is corrupt" in capfd.readouterr().err
    assert store.manifest(key) is not None and res.nodes["scaled"].status == "computed"


def test_leases_on_s3(s3):
    a, b = Store(s3), Store(s3)
    key = "12" * 32
    assert a.acquire_lease(key, "a", ttl=30) is None
    assert b.acquire_lease(key, "b", ttl=30)["owner"] == "a"
    assert not b.renew_lease(key, "b", ttl=30)
    assert a.renew_lease(key, "a", ttl=-1)  # expired now
    assert b.acquire_lease(key, "b", ttl=30) is None
    a.release_lease(key, "a")  # no longer a's: stays
    assert a.acquire_lease(key, "a", ttl=30)["owner"] == "b"
    b.release_lease(key, "b")
    assert a.acquire_lease(key, "a", ttl=30) is None


def test_of_two_runs_taking_over_an_expired_lease_on_s3_only_one_gets_it(s3, monkeypatch):
    b, c = Store(s3), Store(s3)
    key = "34" * 32
    assert c.acquire_lease(key, "dead", ttl=-1) is None  # expired at once
    judge = b.leases.dead

    def judged_slowly(lease):  # while B decides the lease is free, C takes it
        assert c.acquire_lease(key, "c", ttl=30) is None
        return judge(lease)

    monkeypatch.setattr(b.leases, "dead", judged_slowly)
    holder = b.acquire_lease(key, "b", ttl=30)
    assert holder is not None and holder["owner"] == "c"


def test_two_runs_sharing_an_s3_store_compute_each_stage_once(s3, tmp_path):
    spec = write(tmp_path / "shared.yaml", SLOW_SPEC)
    calls, block = tmp_path / "calls.txt", tmp_path / "block"
    block.touch()
    p1 = start(spec, s3, calls, block, tmp_path / "a.log")
    until(lambda: "slow" in calls_of(calls), what="run A inside `slow`")
    p2 = start(spec, s3, calls, block, tmp_path / "b.log")
    until(lambda: "waiting" in (tmp_path / "b.log").read_text(), what="run B waiting")
    block.unlink()
    assert p1.wait(60) == 0, (tmp_path / "a.log").read_text()
    assert p2.wait(60) == 0, (tmp_path / "b.log").read_text()
    assert sorted(calls_of(calls)) == ["after", "nums", "slow"]


def test_a_store_that_ignores_conditional_writes_still_leases_with_a_warning(
    s3, monkeypatch, capfd
):
    from stardag.leases import S3Objects

    monkeypatch.setattr(S3Objects, "honours_conditions", lambda self, probe: False)
    a, b = Store(s3), Store(s3)
    key = "56" * 32
    assert a.acquire_lease(key, "a", ttl=30) is None
    assert b.acquire_lease(key, "b", ttl=30)["owner"] == "a"
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 2  # once per store
    assert "cannot write a file only if it is absent" in warnings[0]
