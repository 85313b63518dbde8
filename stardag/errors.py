"""The errors stardag reports: each is one message, with where it comes from."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# line breaks and other control characters, shown escaped so that an error stays one line
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """`; did you mean 'a', 'b'?` naming the known names closest to a mistyped one, or ''."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=cutoff)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class StardagError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 1


class SpecError(StardagError):
    """An invalid spec, override or operator reference: found before anything runs."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        stage: str | None = None,
    ):
        super().__init__(message)
        self.message, self.file, self.line, self.stage = message, file, line, stage

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        if self.stage:
            where += f"stage '{self.stage}': "
        return one_line(where + self.message)


class InputError(StardagError):
    """Bad user input that shows only once a stage runs: a data file with a malformed row, a
    model path that holds no model, an exemplar file of the wrong shape. Operators raise it
    (through `stardag.operator.InputError`) with the file and line in the message; the run
    stops with the stage's name and exit status 2, as for an invalid spec."""

    exit_code = 2


class StageFailed(StardagError):
    """An operator raised while running a stage; earlier stages stay cached. Exit status 1,
    or 2 when the operator found its input invalid (an InputError)."""

    def __init__(self, node: str, op: str, error: str, bad_input: bool = False):
        what = ": invalid input" if bad_input else " failed"
        super().__init__(f"stage '{node}' (op {op}){what}: {error}")
        self.node, self.op, self.error, self.bad_input = node, op, error, bad_input
        self.exit_code = 2 if bad_input else 1


class StoreError(StardagError):
    """The store cannot be read or written (permissions, missing root, full disk)."""


class CorruptArtifact(StardagError):
    """An artifact whose files do not match its manifest."""

    def __init__(self, key: str, why: str):
        super().__init__(f"artifact {key[:12]} is corrupt: {why}")
        self.key, self.why = key, why
