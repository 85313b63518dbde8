"""Two runs sharing one store: a stage running in one is not computed again by the other,
which waits for its result, or takes the stage over if the first run died. Leases expire;
a crash leaves nothing that blocks."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import cli_command, cli_env, until, write

from stardag.store import Store

SPEC = """
name: shared
stages:
  nums:
    op: engine_ops:Numbers
  slow:
    op: engine_ops:Sleep
    inputs: {table: nums}
    params: {seconds: 60}
  after:
    op: engine_ops:Clip
    inputs: {table: slow.table}
"""
KEY = "ab" * 32


def start(spec: Path, store: Path, calls: Path, block: Path, log: Path):
    env = cli_env(STARDAG_TEST_CALLS=str(calls), STARDAG_TEST_BLOCK=str(block))
    return subprocess.Popen(
        cli_command("run", spec, "--store", store, "--executor", "local"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )


def calls_of(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def setup(tmp_path):
    spec = write(tmp_path / "shared.yaml", SPEC)
    block = tmp_path / "block"
    block.touch()
    return spec, tmp_path / "store", tmp_path / "calls.txt", block


def test_a_second_run_waits_for_the_stage_the_first_is_computing(setup, tmp_path):
    spec, store, calls, block = setup
    a = start(spec, store, calls, block, tmp_path / "a.log")
    until(lambda: "slow" in calls_of(calls), what="run A inside `slow`")
    b = start(spec, store, calls, block, tmp_path / "b.log")
    until(
        lambda: "waiting: another run is computing it" in (tmp_path / "b.log").read_text(),
        what="run B waiting",
    )
    block.unlink()
    assert a.wait(60) == 0 and b.wait(60) == 0, (tmp_path / "b.log").read_text()
    assert sorted(calls_of(calls)) == ["after", "nums", "slow"]  # each stage once in all
    assert "cached (computed by another run)" in (tmp_path / "b.log").read_text()
    assert not list((store / "leases").glob("*.json"))  # released


def test_a_run_takes_over_the_stage_of_a_run_that_died(setup, tmp_path):
    spec, store, calls, block = setup
    a = start(spec, store, calls, block, tmp_path / "a.log")
    until(lambda: "slow" in calls_of(calls), what="run A inside `slow`")
    b = start(spec, store, calls, block, tmp_path / "b.log")
    until(lambda: "waiting" in (tmp_path / "b.log").read_text(), what="run B waiting")
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    # B finds A's process gone (same host: no need to wait for the lease to expire)
    until(lambda: calls_of(calls).count("slow") == 2, what="run B taking `slow` over")
    block.unlink()
    assert b.wait(60) == 0, (tmp_path / "b.log").read_text()
    assert sorted(calls_of(calls)) == ["after", "nums", "slow", "slow"]


def _lease(store: Path, key: str, **fields):
    (store / "leases").mkdir(parents=True, exist_ok=True)
    (store / "leases" / f"{key}.json").write_text(json.dumps(fields))


def test_a_live_lease_of_another_host_is_respected_and_an_expired_one_taken_over(tmp_path):
    s = Store(tmp_path)
    _lease(tmp_path, KEY, owner="other", host="elsewhere", pid=1, expires=time.time() + 30)
    holder = s.acquire_lease(KEY, "me", ttl=10)
    assert holder is not None and holder["host"] == "elsewhere"
    assert not s.renew_lease(KEY, "me", ttl=10)
    s.release_lease(KEY, "me")  # not ours: stays
    assert (tmp_path / "leases" / f"{KEY}.json").exists()
    _lease(tmp_path, KEY, owner="other", host="elsewhere", pid=1, expires=time.time() - 1)
    assert s.acquire_lease(KEY, "me", ttl=10) is None
    assert json.loads((tmp_path / "leases" / f"{KEY}.json").read_text())["owner"] == "me"
    assert s.renew_lease(KEY, "me", ttl=10)
    assert s.acquire_lease(KEY, "someone", ttl=10)["owner"] == "me"
    s.release_lease(KEY, "me")
    assert not (tmp_path / "leases" / f"{KEY}.json").exists()
    assert s.acquire_lease(KEY, "someone", ttl=10) is None


def test_of_two_runs_taking_over_an_expired_lease_only_one_gets_it(tmp_path, monkeypatch):
    b, c = Store(tmp_path), Store(tmp_path)
    _lease(tmp_path, KEY, owner="dead", host="elsewhere", pid=1, expires=time.time() - 1)
    judge = b.leases.dead

    def judged_slowly(lease):  # while B decides the lease is free, C takes it
        assert c.acquire_lease(KEY, "c", ttl=30) is None
        return judge(lease)

    monkeypatch.setattr(b.leases, "dead", judged_slowly)
    holder = b.acquire_lease(KEY, "b", ttl=30)
    assert holder is not None and holder["owner"] == "c"
    assert json.loads((tmp_path / "leases" / f"{KEY}.json").read_text())["owner"] == "c"


def _in_pid_namespace(cmd: list, first: bool) -> list:
    """cmd in a PID namespace of its own, as in a container: the first run gets a pid above
    200 there, the second pid 1, and that pid is free in the second's."""
    script = 'for i in $(seq 200); do /bin/true; done; "$@"; exit $?' if first else 'exec "$@"'
    return ["unshare", "--pid", "--fork", "bash", "-c", script, "bash", *map(str, cmd)]


def _can_unshare() -> bool:
    return (
        subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare --pid (root)")
def test_runs_in_two_pid_namespaces_respect_each_others_live_lease(setup, tmp_path):
    spec, store, calls, block = setup
    env = cli_env(STARDAG_TEST_CALLS=str(calls), STARDAG_TEST_BLOCK=str(block))
    cmd = cli_command("run", spec, "--store", store, "--executor", "local")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = subprocess.Popen(
        _in_pid_namespace(cmd, first=True),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(logs[0], "w"),
    )
    until(lambda: "slow" in calls_of(calls), what="run A inside `slow`")
    b = subprocess.Popen(
        _in_pid_namespace(cmd, first=False),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(logs[1], "w"),
    )
    until(
        lambda: (
            "waiting: another run is computing it" in logs[1].read_text()
            or b.poll() is not None
            or calls_of(calls).count("slow") > 1
        ),
        what="run B waiting",
    )
    block.unlink()
    assert a.wait(60) == 0, logs[0].read_text()
    assert b.wait(60) == 0, logs[1].read_text()
    assert sorted(calls_of(calls)) == ["after", "nums", "slow"]  # each stage once in all
    assert not list((store / "leases").glob("*.json"))


def test_lease_names_cannot_leave_the_store(tmp_path):
    from stardag.errors import StoreError

    with pytest.raises(StoreError):
        Store(tmp_path).acquire_lease("../../etc/passwd", "me", ttl=1)


def test_shards_commit_whole_and_a_damaged_shard_reads_as_absent(tmp_path):
    import pyarrow as pa

    s = Store(tmp_path)
    log = s.shards(KEY, "samples")
    assert log.get(0) is None
    t = pa.table({"x": list(range(1000))})
    log.put(0, t)
    log.put(1, t)
    assert log.get(0).equals(t)
    files = sorted((tmp_path / "partial").rglob("*.parquet"))
    assert len(files) == 2 and not list((tmp_path / "partial").rglob("*.tmp"))
    files[1].write_bytes(files[1].read_bytes()[:100])  # truncated
    assert log.get(1) is None
    s.drop_partial(KEY)
    assert not list((tmp_path / "partial").rglob("*.parquet"))
