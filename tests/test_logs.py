"""What a run prints: stardag's lines on the terminal; Ray's, Ray Train's and libraries'
chatter in a log file under the store's runs/ unless -v; no ANSI codes outside a terminal."""

import io
import logging
import sys

import pytest
from support import cli, write

from stardag import logs

CHATTY = """
import sys

import polars as pl

from stardag.operator import Dataset, Operator


class Chatty(Operator):
    outputs = {"table": Dataset({"x": "int64"})}

    def run(self, ctx):
        print("\\x1b[36mlibrary chatter on stdout\\x1b[0m")
        print("a library warning on stderr", file=sys.stderr)
        ctx.log("a line for the user")
        return pl.DataFrame({"x": [1, 2, 3]})
"""


class Terminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_the_sieve_shows_marked_lines_and_logs_the_rest_without_ansi(tmp_path, monkeypatch):
    term, stdout = Terminal(False), Terminal(False)
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setattr(sys, "stdout", stdout)
    path = tmp_path / "runs" / "x" / "run.log"
    with logs.capture(path, verbose=False):
        assert not path.exists()  # made on the first line only
        logs.say("\x1b[32m[ 1/2] stage  done\x1b[0m", finished="stage", n=1, total=2)
        forwarded = "(stardag:base pid=1) " + logs.MARK + "  base: 50/400 steps"
        print(forwarded, file=sys.stderr)
        print("\x1b[36m(RayTrainWorker pid=2)\x1b[0m Checkpoint successfully created")
        sys.stderr.write("partial ")
        sys.stderr.write("line\n")
    assert term.getvalue().splitlines() == [
        "[ 1/2] stage  done",
        "  base: 50/400 steps",
        f"Ray's and the libraries' output: {path} (-v prints it)",
    ]
    assert path.read_text().splitlines() == [
        "(RayTrainWorker pid=2) Checkpoint successfully created",
        "partial line",
    ]
    assert stdout.getvalue() == ""
    assert sys.stderr is term and not logs.marking  # all restored


def test_on_a_terminal_the_last_line_shows_the_running_stages_progress_and_eta(
    tmp_path, monkeypatch
):
    term = Terminal(True)
    monkeypatch.setattr(sys, "stderr", term)
    now = [100.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    with logs.capture(tmp_path / "run.log", verbose=False):
        logs.say("[ 0/3] train  running (new)", started="train", total=3)
        logs.say("  train: 10/100 steps", stage="train", done=10, total=100, unit="steps")
        now[0] = 110.0
        logs.say("  train: 20/100 steps", stage="train", done=20, total=100, unit="steps")
        footer = term.getvalue().rsplit("\r\x1b[K", 1)[-1]
    # 10 steps in 10 s: 80 to go
    assert footer == "[0/3]  train 20/100 steps, 1 steps/s, ETA 1m20s"
    shown = [x.rsplit("\r\x1b[K", 1)[-1] for x in term.getvalue().split("\n")]
    assert "[ 0/3] train  running (new)" in shown
    assert not any(x.startswith("  train: ") for x in shown)  # progress only in the footer
    assert term.getvalue().endswith("\r\x1b[K")  # cleared at the end


def test_stardags_own_warnings_stay_on_the_terminal(tmp_path, monkeypatch):
    term = Terminal(False)
    monkeypatch.setattr(sys, "stderr", term)
    with logs.capture(tmp_path / "run.log", verbose=False):
        print("warning: artifact 0123 is corrupt (x); it will be recomputed", file=sys.stderr)
        print("(stardag:a pid=3) warning: the ref of s/a in the store is damaged", file=sys.stderr)
        print("lib.py:3: UserWarning: not ours", file=sys.stderr)
    assert term.getvalue().splitlines()[:2] == [
        "warning: artifact 0123 is corrupt (x); it will be recomputed",
        "warning: the ref of s/a in the store is damaged",
    ]
    assert "not ours" not in term.getvalue()


def test_verbose_shows_everything_and_strips_ansi_outside_a_terminal(tmp_path, monkeypatch):
    term = Terminal(False)
    monkeypatch.setattr(sys, "stderr", term)
    with logs.capture(tmp_path / "run.log", verbose=True):
        sys.stderr.write("\x1b[36m(pid=2)\x1b[0m chatter\n")
        logs.say("mine")
    assert term.getvalue() == "(pid=2) chatter\nmine\n"
    assert not (tmp_path / "run.log").exists()


def test_marked_wraps_each_line_a_training_loop_writes():
    out = io.StringIO()
    marked = logs.Marked(out)
    marked.write("  step 1/4: loss 2.1\n  step ")
    marked.write("2/4\n")
    assert out.getvalue() == f"{logs.MARK}  step 1/4: loss 2.1\n{logs.MARK}  step 2/4\n"
    # what logging handlers (Ray Train's messages among them) write is not the loop's
    handler = logging.StreamHandler(marked)
    logging.getLogger("test_logs.train").addHandler(handler)
    logging.getLogger("test_logs.train").warning("Checkpoint successfully created")
    assert out.getvalue().endswith("\nCheckpoint successfully created\n")


@pytest.mark.ray
def test_a_ray_run_prints_its_own_lines_and_logs_the_chatter(tmp_path):
    write(tmp_path / "chatty_ops.py", CHATTY)
    spec = write(
        tmp_path / "chatty.yaml", "name: chatty\nstages:\n  talk:\n    op: chatty_ops:Chatty\n"
    )
    out = cli("run", spec, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "\x1b[" not in out.stderr + out.stdout
    assert "  talk: a line for the user" in out.stderr.splitlines()
    assert "chatter" not in out.stderr + out.stdout and "warning" not in out.stderr
    [log] = (tmp_path / ".stardag" / "runs" / "chatty").glob("*.log")
    text = log.read_text()
    assert "library chatter on stdout" in text and "a library warning on stderr" in text
    assert "\x1b[" not in text
    assert f"output: {log}" in out.stderr
    verbose = cli("run", spec, "-v", "--force", "talk", cwd=tmp_path, timeout=300)
    assert "a library warning on stderr" in verbose.stderr and "\x1b[" not in verbose.stderr
