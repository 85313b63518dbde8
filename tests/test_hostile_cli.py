"""The `stardag` command given what a hostile or careless user gives it, where the bad-input
catalog (tests/bad_inputs/) cannot hold the case (a FIFO, a symlink loop, an argument that is
not a spec): one error line, exit status 1 or 2, no traceback, nothing half-written, and no
hang (every store and cluster connection gives up after --timeout)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from support import cli, cli_command, cli_env, until, write

SPEC = """
name: hostile
stages:
  nums:
    op: engine_ops:Numbers
    params: {n: 3}
"""


@pytest.fixture
def spec(tmp_path):
    return write(tmp_path / "hostile.yaml", SPEC)


def one_error(r, *fragments, code=(1, 2)) -> str:
    """The single `error: ...` line of a failed command (click's usage errors aside)."""
    assert r.returncode in code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith(("error: ", "Error: "))]
    assert len(errors) == 1, r.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@pytest.mark.parametrize(
    ("store", "says"),
    [
        ("", "names no place"),
        ("file://", "names no place"),
        ("s3://", "names no bucket"),
        ("gs:///", "names no bucket"),
    ],
)
def test_a_store_uri_that_names_nothing_is_refused(spec, tmp_path, store, says):
    for command in (["plan", spec], ["run", spec, "--executor", "local"], ["ls"]):
        r = cli(*command, "--store", store, cwd=tmp_path)
        one_error(r, says)
    assert not (tmp_path / ".stardag").exists()


def test_an_offline_object_store_gives_up_after_the_timeout(spec):
    t0 = time.monotonic()
    r = cli("plan", spec, "--store", "gs://stardag-no-such-bucket/x", "--timeout", "2", timeout=90)
    one_error(r, "store")
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("bogus", "expected HOST:PORT, ray://HOST:PORT or auto"),
        ("", "expected HOST:PORT, ray://HOST:PORT or auto"),
        ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
        ("ray://127.0.0.1:1", "cannot reach the Ray cluster at ray://127.0.0.1:1"),
    ],
)
def test_a_cluster_address_that_answers_nothing_is_one_error(spec, tmp_path, address, says):
    r = cli(
        "run",
        spec,
        "--store",
        tmp_path / "store",
        "--address",
        address,
        "--timeout",
        "5",
        timeout=90,
    )
    one_error(r, says)
    assert not list((tmp_path / "store").rglob("manifest.json"))


def test_a_listening_port_that_never_answers_gives_up_after_the_timeout(spec, tmp_path):
    import socket

    with socket.socket() as server:  # accepts connections (the backlog) and says nothing
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        t0 = time.monotonic()
        r = cli(
            "run",
            spec,
            "--store",
            tmp_path / "store",
            "--address",
            f"127.0.0.1:{port}",
            "--timeout",
            "3",
            timeout=120,
        )
    one_error(r, f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 90


def test_show_to_a_missing_directory_and_a_negative_head_are_one_error(spec, tmp_path):
    assert cli("run", spec, "--executor", "local", "-q").returncode == 0
    r = cli("show", spec, "nums", "--to", tmp_path / "missing" / "x.csv")
    one_error(r, "directory", "does not exist")
    assert not (tmp_path / "missing").exists()
    r = cli("show", spec, "nums", "--head", "-1")
    one_error(r, "-1 is not in the range x>=0", code=(2,))
    assert cli("show", spec, "nums", "--head", "0").returncode == 0


def test_a_spec_path_that_is_a_symlink_loop_or_a_fifo_is_one_error(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    one_error(cli("plan", tmp_path / "a.yaml"), "a loop of symbolic links", code=(2,))
    os.mkfifo(tmp_path / "fifo.yaml")  # reading it would wait for a writer forever
    one_error(cli("plan", tmp_path / "fifo.yaml", timeout=60), "a named pipe", code=(2,))
    write(tmp_path / "child.yaml", "extends: a.yaml\nname: child\n")
    one_error(
        cli("plan", tmp_path / "child.yaml"), "`extends` names a loop of symbolic links", code=(2,)
    )


def test_a_data_file_that_is_a_fifo_is_named_as_such(tmp_path):
    os.mkfifo(tmp_path / "problems.jsonl")
    spec = write(
        tmp_path / "gsm.yaml",
        """
        name: gsm
        stages:
          problems:
            op: gsm8k
            params: {path: problems.jsonl, heldout_size: 1}
        """,
    )
    one_error(
        cli("run", spec, "--executor", "local", timeout=60),
        "problems.jsonl is a named pipe (FIFO), not a file",
        code=(2,),
    )


def test_an_integer_of_5000_digits_given_with_set_is_one_error(spec):
    r = cli("plan", spec, "--set", "stages.nums.params.n=" + "9" * 5000)
    one_error(r, "a number of 5000 digits is too long", code=(2,))


def test_yaml_1_1_booleans_as_stage_names_stay_names(tmp_path):
    spec = write(
        tmp_path / "bools.yaml",
        """
        name: bools
        stages:
          yes:
            op: engine_ops:Numbers
          no:
            op: engine_ops:Scale
            inputs: {table: "yes"}
        """,
    )
    r = cli("dag", spec)
    assert r.returncode == 0, r.stderr
    assert "yes  [engine_ops:Numbers]" in r.stdout and "no  [engine_ops:Scale]" in r.stdout
    assert "True" not in r.stdout and "False" not in r.stdout


OPS = """
import polars as pl

from stardag.operator import Dataset, Operator, Params


class Raise(Operator):
    outputs = {"table": Dataset({"x": "int64"})}

    class Params(Params):
        what: str

    def run(self, ctx):
        if ctx.params.what == "interrupt":
            raise KeyboardInterrupt
        raise SystemExit(4)
"""


@pytest.mark.parametrize(
    ("what", "says"),
    [
        ("interrupt", "the operator raised KeyboardInterrupt"),
        ("exit", "the operator called sys.exit(4)"),
    ],
)
def test_an_operator_raising_keyboardinterrupt_or_systemexit_is_a_failed_stage(
    tmp_path, what, says
):
    (tmp_path / "raising_ops.py").write_text(OPS)
    spec = write(
        tmp_path / "raise.yaml",
        f"""
        name: raising
        stages:
          boom:
            op: raising_ops:Raise
            params: {{what: {what}}}
        """,
    )
    r = cli("run", spec, "--executor", "local", "-q")
    line = one_error(r, "stage 'boom'", "failed: " + says, code=(1,))
    assert "interrupted" not in r.stderr, line


SLOW = """
name: slow
stages:
  nums:
    op: engine_ops:Numbers
  slow:
    op: engine_ops:Sleep
    inputs: {table: nums}
    params: {seconds: 120}
"""


@pytest.mark.ray
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_ray_run_cleanly(tmp_path, signum, code):
    import json

    import psutil

    spec = write(tmp_path / "slow.yaml", SLOW)
    store, block, calls = tmp_path / "store", tmp_path / "block", tmp_path / "calls.txt"
    block.touch()
    proc = subprocess.Popen(
        cli_command("run", spec, "--store", store),
        env=cli_env(STARDAG_TEST_BLOCK=str(block), STARDAG_TEST_CALLS=str(calls)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    until(
        lambda: "slow" in (calls.read_text() if calls.exists() else "") or proc.poll() is not None,
        timeout=180,
        what="the run inside `slow`",
    )
    assert proc.poll() is None, proc.communicate()[1]
    started = psutil.Process(proc.pid).children(recursive=True)  # Ray's processes
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    name = signal.Signals(signum).name
    assert err.splitlines()[-1] == f"stopped by {name}; finished stages stay cached", err
    assert "Traceback" not in err and "*** " not in err  # no Python or C++ stack dump
    assert not list((store / "leases").glob("*.json"))  # released
    _, alive = psutil.wait_procs(started, timeout=30)
    assert alive == [], alive  # Ray stopped
    [record] = [json.loads(p.read_text()) for p in (store / "runs" / "slow").glob("*.json")]
    assert record["failed"] == f"stopped by {name}"
    assert not list((store / "tmp").iterdir())  # no staging left


METRICS_OPS = """
import polars as pl

from stardag.operator import Dataset, Operator


class Metrics(Operator):
    outputs = {"metrics": Dataset({"kind": "string", "slice": "string", "value": "float64",
                                   "n": "int64"})}

    def run(self, ctx):
        return pl.DataFrame({"kind": ["accuracy"], "slice": ["all"], "value": [0.5], "n": [4]})
"""


def test_report_plot_into_a_missing_directory_is_one_error(tmp_path):
    (tmp_path / "metrics_ops.py").write_text(METRICS_OPS)
    spec = write(
        tmp_path / "metrics.yaml",
        """
        name: metrics
        stages:
          evaluate:
            op: metrics_ops:Metrics
        """,
    )
    assert cli("run", spec, "--executor", "local", "-q").returncode == 0
    r = cli("report", spec, "--plot", tmp_path / "missing" / "x.png")
    one_error(r, "directory", "does not exist")
    assert not (tmp_path / "missing").exists()
