"""Faults of the store's filesystem, as the OS gives them: a quota or a full disk while
publishing, permission denied, the store deleted under a running run. Each is one clear
error naming the stage; nothing that reads as complete is left half-written; the next run,
once the fault is gone, recovers."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from support import cli_command, cli_env, until, write

from stardag.store import Store

SPEC = """
name: faults
stages:
  small:
    op: engine_ops:Numbers
    params: {n: 10}
  big:
    op: engine_ops:Numbers
    params: {n: 400000}
  after:
    op: engine_ops:Scale
    inputs: {table: big}
"""


def run(spec: Path, store: Path, preexec=None, prefix=()) -> subprocess.CompletedProcess:
    e = cli_env()
    e.pop("STARDAG_TEST_CALLS", None)
    return subprocess.run(
        [*prefix, *cli_command("run", spec, "--store", store, "--executor", "local")],
        env=e,
        capture_output=True,
        text=True,
        preexec_fn=preexec,
        timeout=120,
    )


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def assert_whole(store: Path):
    """Every artifact that reads as complete is complete: checksums and Parquet."""
    s = Store(store)
    for m in s.artifacts():
        s.verify(m["key"], m)
        for name, out in m["outputs"].items():
            if out["kind"] == "dataset":
                s.read_table(m["key"], name)


def _quota(nbytes: int):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the quota fails, EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def test_a_file_size_quota_while_publishing_is_one_error_and_the_next_run_recovers(tmp_path):
    spec = write(tmp_path / "faults.yaml", SPEC)
    store = tmp_path / "store"
    out = run(spec, store, preexec=_quota(200_000))
    assert out.returncode == 1, out.stderr
    [line] = errors(out.stderr)
    assert (
        "stage 'big'" in line and "store: cannot write a dataset: file size limit exceeded" in line
    )
    assert "Traceback" not in out.stderr
    assert_whole(store)
    assert not list((store / "tmp").iterdir())  # staging removed
    again = run(spec, store)
    assert again.returncode == 0, again.stderr
    assert_whole(store)


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_a_full_filesystem_while_publishing_is_one_error_and_nothing_half_written(tmp_path):
    store = tmp_path / "small-fs"
    if not _mount_tmpfs(store, "1m"):
        pytest.skip("mounting a small tmpfs needs root; the quota test covers the same path")
    try:
        spec = write(tmp_path / "faults.yaml", SPEC)
        out = run(spec, store)
        assert out.returncode == 1, out.stderr
        [line] = errors(out.stderr)
        assert "no space left on the device" in line
        assert_whole(store)
        assert not list((store / "tmp").iterdir())
        again = run(spec, tmp_path / "roomy")  # the user frees space / moves the store
        assert again.returncode == 0, again.stderr
    finally:
        subprocess.run(["umount", str(store)], capture_output=True)


def _without_root_powers() -> list[str]:
    """A command prefix under which file modes hold: root ignores them unless it gives up
    CAP_DAC_OVERRIDE (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file modes cannot be enforced")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_permission_denied_on_the_store_is_one_error_and_the_next_run_recovers(tmp_path):
    spec = write(tmp_path / "faults.yaml", SPEC)
    store = tmp_path / "store"
    ok = run(spec, store)  # the store filled once...
    assert ok.returncode == 0, ok.stderr
    big = next(
        m["key"] for m in Store(store).artifacts() if m["outputs"]["table"]["rows"] == 400000
    )
    Store(store).delete(big)  # ...one artifact gone, so a stage must run
    dirs = [d for d in [store, *store.rglob("*")] if d.is_dir()]
    try:
        for d in dirs:
            os.chmod(d, 0o555)  # ...and then read-only for us
        out = run(spec, store, prefix=_without_root_powers())
        assert out.returncode == 1, out.stderr
        [line] = errors(out.stderr)
        assert "permission denied" in line, line
        assert "Traceback" not in out.stderr
    finally:
        for d in dirs:
            os.chmod(d, 0o755)
    assert_whole(store)
    again = run(spec, store)
    assert again.returncode == 0, again.stderr
    assert_whole(store)


def test_the_store_deleted_under_a_running_run_is_one_error_and_the_next_run_recovers(tmp_path):
    spec = write(
        tmp_path / "slow.yaml",
        """
        name: deleted
        stages:
          nums:
            op: engine_ops:Numbers
          slow:
            op: engine_ops:Sleep
            inputs: {table: nums}
            params: {seconds: 60}
        """,
    )
    store, block = tmp_path / "store", tmp_path / "block"
    block.touch()
    proc = subprocess.Popen(
        cli_command("run", spec, "--store", store, "--executor", "local"),
        env=cli_env(STARDAG_TEST_BLOCK=str(block)),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    until(
        lambda: list((store / "tmp").glob("*/blob/half.bin")) or proc.poll() is not None,
        what="the stage's first file",
    )
    assert proc.poll() is None, proc.communicate()[1]
    shutil.rmtree(store)  # under the running stage
    block.unlink()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    [line] = errors(err)
    assert "stage 'slow'" in line and "store:" in line, line
    assert "Traceback" not in err
    if store.exists():
        assert_whole(store)
    again = run(spec, store)
    assert again.returncode == 0, again.stderr
    assert_whole(store)
