"""SIGINT and SIGTERM stop a `stardag` command cleanly: the signal becomes a `Stopped`
exception in the main thread, so that a run releases its leases, stops the Ray it started
and records why it ended. A KeyboardInterrupt that an operator raises itself is not the
user's Ctrl-C: `by_signal()` tells the two apart."""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Stopped(KeyboardInterrupt):
    """A signal asked the command to stop; exit status 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def _handler(signum, frame):
    _received.append(signum)
    for s in SIGNALS:  # a second signal ends the process at once, as it would by default
        signal.signal(s, signal.SIG_DFL)
    raise Stopped(signum)


def install():
    """Turn SIGINT and SIGTERM into Stopped (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)


def installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is _handler


def by_signal() -> bool:
    """Whether a signal has asked this process to stop."""
    return bool(_received)


def cause(e: BaseException) -> Stopped | None:
    """The signal behind an interrupt, if one was received (Ray's waits turn any exception
    a signal handler raises into a plain KeyboardInterrupt)."""
    if isinstance(e, Stopped):
        return e
    return Stopped(_received[-1]) if _received else None
