"""Reading problem files: JSON Lines with one clear error (file and line) per bad row, and a
seeded split of one file into train and held-out problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import Field, model_validator

from stardag.operator import InputError, Params, RegularFile


class SourceParams(Params):
    """Params of a problem source read from a file or a Hugging Face dataset."""

    path: RegularFile | None = None
    hf_dataset: str | None = None   # e.g. "openai/gsm8k" (needs `datasets` and a network)
    seed: int = 0
    train_size: int | None = Field(None, ge=1)
    heldout_size: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.hf_dataset is None):
            raise ValueError("give exactly one of `path` (a JSON Lines file) and `hf_dataset`")
        return self


class DataError(InputError, ValueError):
    """A data file the user must fix: the message names the file and the line."""


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a JSON Lines file")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():  # a FIFO would block the reader
        raise DataError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not UTF-8 text (byte {raw[e.start]:#04x})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not a JSON object ({e.msg})") from None
            except ValueError:  # Python reads integers of up to 4300 digits
                raise DataError(f"{path}:{n}: a number in the row is too long (more than "
                                "4300 digits)") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: not a JSON object")
            yield n, row


def field(row: dict, dotted: str, where: str, kind: type = str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"{where}: missing field {dotted!r}")
        value = value[part]
    if not isinstance(value, kind):
        raise DataError(f"{where}: field {dotted!r} should be {kind.__name__}, "
                        f"not {type(value).__name__}")
    return value


def load_problems(path: str, parse_row: Callable[[dict, str], dict], limit: int | None = None) -> list[dict]:
    rows = []
    first_line: dict[str, int] = {}  # the operators downstream group samples by id
    for n, raw in read_jsonl(path):
        row = parse_row(raw, f"{path}:{n}")
        if row["id"] in first_line:
            raise DataError(f"{path}:{n}: duplicate id {row['id']!r} (also on line "
                            f"{first_line[row['id']]})")
        first_line[row["id"]] = n
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise DataError(f"{path}: no problems in the file")
    return rows


def split(rows: list[dict], seed: int, train_size: int | None, heldout_size: int):
    """A seeded shuffle, then the first `heldout_size` rows held out, the next `train_size`
    (all if None) for training."""
    import random

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    if heldout_size >= len(rows):
        raise DataError(f"heldout_size {heldout_size} leaves nothing to train on ({len(rows)} rows)")
    held = [rows[i] for i in order[:heldout_size]]
    train = [rows[i] for i in order[heldout_size:]]
    return (train[:train_size] if train_size else train), held


def frames(train: list[dict], held: list[dict]):
    import polars as pl

    return {"train": pl.DataFrame(train), "heldout": pl.DataFrame(held)}
