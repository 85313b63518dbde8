"""What a run prints: stardag's own lines (progress, stage messages) go to the terminal;
Ray's, Ray Train's and libraries' chatter goes to a log file under the store's `runs/`
unless `-v`. A line meant for the user carries MARK from wherever it is written (the
driver, a stage's Ray worker, a Ray Train worker), so that the driver's sieve, which
replaces sys.stdout and sys.stderr during a run, can tell it from the rest whatever the
process that wrote it; ANSI colour codes never reach a file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

MARK = "\x1f"  # ASCII unit separator: survives Ray's log forwarding, never in real output
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# "warning: ...", as stardag writes them, perhaps forwarded by Ray: "(stardag:x pid=1) warning: "
_WARNING = re.compile(r"^(?:\([^()]*pid=[^()]*\) )?(warning: .*)$")

marking = False  # in this process, lines for the user carry MARK (a sieve reads them)


EVENT = "\x1e"  # after MARK: a JSON event for the live display, then the line's text


def say(text: str, **event: Any):
    """A line for the user, on stderr: marked while a sieve is reading, with `event` (a
    stage's progress, a stage finished) for the live display on a terminal."""
    if marking and event:
        text = EVENT + json.dumps(event) + EVENT + text
    sys.stderr.write((MARK if marking else "") + text + "\n")
    sys.stderr.flush()


# A stage run in another process ends with an empty marked line carrying `said`: a token
# the driver knows. Ray forwards a worker's lines in order but late, so the driver waits for
# each token of a stage that returned before Ray goes down; else the stage's last lines for
# the user (its result, its accuracy) could be lost at the end of a run.
_said = threading.Condition()
_expected: set[str] = set()
_seen: set[str] = set()


def expect(token: str) -> None:
    """A stage that ends with `token` returned: its lines will reach the driver."""
    with _said:
        _expected.add(token)


def _saw(token: str) -> None:
    with _said:
        _seen.add(token)
        _said.notify_all()


def drain(timeout: float) -> bool:
    """Wait until every expected stage's lines have been shown (at most `timeout` s, for a
    Ray that forwards nothing); whether they were."""
    with _said:
        done = _said.wait_for(lambda: _expected <= _seen, timeout)
        _expected.clear()
        _seen.clear()
    return done


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class _Log:
    """The log file, made on the first line written to it."""

    def __init__(self, path: Path | None):
        self.path: Path | None = path
        self.file: IO[str] | None = None

    def write(self, line: str):
        if self.path is None:
            return  # closed: late writers (Ray's handlers at exit) go nowhere
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.file.write(strip_ansi(line) + "\n")

    def flush(self):
        if self.file is not None:
            self.file.flush()

    def close(self) -> bool:
        """Close it; whether anything was written."""
        written = self.file is not None
        if self.file is not None:
            self.file.close()
        self.path, self.file = None, None
        return written


class _Sieve(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr: marked lines to `real` (without Ray's
    prefix), the others to the log, or to `real` too when verbose."""

    def __init__(self, real, log: _Log, verbose: bool, lock: threading.Lock, live=False):
        self.real, self.log, self.verbose, self.lock = real, log, verbose, lock
        self.tty = _isatty(real)
        self.live = Live() if self.tty and not verbose and live else None
        self._pending = ""

    def write(self, s: str) -> int:
        with self.lock:
            self._pending += s
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._line(line)
        return len(s)

    def _line(self, line: str):
        if MARK in line:
            text = line.split(MARK, 1)[1]
            if text.startswith(EVENT):
                _, raw, text = text.split(EVENT, 2)
                if '"said"' in raw:
                    _saw(json.loads(raw)["said"])
                    return
                if self.live is not None:
                    event = json.loads(raw)
                    self.live.event(event)
                    if "done" in event:
                        self._draw()
                        return  # a progress line: the live display shows it
            self._show(text)
        elif self.verbose:
            self._show(line)
        else:
            self.log.write(line)
            warning = _WARNING.match(strip_ansi(line))
            if warning:  # stardag's own warnings (the store's), in the driver or a worker
                self._show(warning.group(1))

    def _show(self, line: str):
        clear = "\r\x1b[K" if self.live is not None else ""
        self.real.write(clear + (line if self.tty else strip_ansi(line)) + "\n")
        self._draw()

    def _draw(self):
        if self.live is not None:
            self.real.write("\r\x1b[K" + self.live.render(_width(self.real)))
        self.real.flush()

    def flush(self):
        with self.lock:
            self.real.flush()
            self.log.flush()

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")

    def end(self):
        with self.lock:
            if self._pending:
                self._line(self._pending)
                self._pending = ""
            if self.live is not None:
                self.real.write("\r\x1b[K")
                self.live = None


class Live:
    """The last line of a terminal during a run: stages finished, and each running stage's
    progress with its rate and ETA (from what it reported since it started)."""

    def __init__(self):
        self.finished, self.total = 0, 0
        self.running: dict[str, dict] = {}  # stage -> its last progress event

    def event(self, e: dict):
        now = time.monotonic()
        if "finished" in e:
            self.finished, self.total = e["n"], e["total"]
            self.running.pop(e["finished"], None)
        elif "started" in e:
            self.total = e["total"]
            self.running[e["started"]] = {"since": now}
        elif "done" in e:
            last = self.running.get(e["stage"], {})
            first = last.get("first", (now, e["done"]))
            self.running[e["stage"]] = {
                **e,
                "since": last.get("since", now),
                "first": first,
                "at": now,
            }

    def render(self, width: int) -> str:
        from .humanize import number, seconds

        parts = [f"[{self.finished}/{self.total}]" if self.total else "[...]"]
        for stage, e in self.running.items():
            if "done" not in e:
                parts.append(f"{stage} running")  # redrawn on events only: no clock
                continue
            text = f"{stage} {number(e['done'])}"
            if e.get("total"):
                text += f"/{number(e['total'])}"
            unit = e.get("unit") or "items"
            text += f" {e.get('unit', '')}".rstrip()
            t0, done0 = e["first"]
            elapsed = e["at"] - t0
            if elapsed > 0 and e["done"] > done0:
                per_s = (e["done"] - done0) / elapsed
                text += f", {number(per_s)} {unit}/s" + e.get("info", "")
                if e.get("total"):
                    text += f", ETA {seconds(max(0.0, (e['total'] - e['done']) / per_s))}"
            parts.append(text)
        line = "  ".join(parts)
        return line if len(line) < width else line[: max(0, width - 2)] + "…"


def _width(stream) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns if columns >= 20 else 80  # a pseudo-terminal may say 0


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


current: Path | None = None  # the log of the run under way (its record names it)


@contextlib.contextmanager
def capture(path: Path | None, verbose: bool):
    """During a run: mark the user's lines, and send everything else to the log at `path`
    (made on the first line) unless verbose; at the end, say where it is."""
    global marking, current
    log = _Log(None if verbose else path)
    lock = threading.Lock()
    saved = sys.stdout, sys.stderr, marking, os.environ.get("RAY_COLOR_PREFIX")
    out = _Sieve(sys.stdout, log, verbose, lock)
    err = _Sieve(sys.stderr, log, verbose, lock, live=True)
    if not err.tty:  # Ray colours the prefix of forwarded lines, whatever the output
        os.environ["RAY_COLOR_PREFIX"] = "0"
    sys.stdout, sys.stderr, marking, current = out, err, True, log.path
    try:
        yield
    finally:
        out.end()
        err.end()
        sys.stdout, sys.stderr, marking, current = saved[0], saved[1], saved[2], None
        if saved[3] is None:
            os.environ.pop("RAY_COLOR_PREFIX", None)
        else:
            os.environ["RAY_COLOR_PREFIX"] = saved[3]
        if log.close():
            say(f"Ray's and the libraries' output: {path} (-v prints it)")


class Marked(io.TextIOBase):
    """Wraps a Ray Train worker's stderr so that the lines the training loop writes itself
    carry MARK; what Ray Train, logging handlers and warnings write there does not."""

    def __init__(self, real):
        self.real = real
        self._at_start = True

    def write(self, s: str) -> int:
        writer = sys._getframe(1).f_globals.get("__name__", "")
        ours = not (writer in ("logging", "warnings") or writer.startswith(("ray.", "logging.")))
        out = []
        for piece in s.splitlines(keepends=True):
            out.append((MARK if ours and self._at_start else "") + piece)
            self._at_start = piece.endswith("\n")
        self.real.write("".join(out))
        return len(s)

    def flush(self):
        self.real.flush()

    def fileno(self) -> int:
        return self.real.fileno()
