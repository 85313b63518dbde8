"""Reading problem files: JSON Lines with one clear error (file and line) per bad row, and a
seeded split of one file into train and held-out problems."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from stardag.operator import InputError, Params, RegularFile


class SourceParams(Params):
    """Params of a problem source read from files or a Hugging Face dataset.

    Held-out problems come from a separate file (`heldout_path`) or hub split
    (`heldout_split`), used whole unless `heldout_size` is a number (then a seeded sample of
    that many); otherwise they are a seeded split of the training problems (`heldout_size`,
    200 if left out), and `heldout_size: all` holds out the whole source (a source used only
    to evaluate)."""

    path: RegularFile | None = None
    hf_dataset: str | None = None  # e.g. "openai/gsm8k" (needs `datasets` and a network)
    hf_config: str | None = None  # the dataset's config; left out, the operator's own
    split: str = "train"  # the hub split of the training problems
    heldout_path: RegularFile | None = None
    heldout_split: str | None = None  # e.g. "test" (GSM8K), "validation" (CommonsenseQA)
    seed: int = 0
    train_size: int | None = Field(None, ge=1)
    heldout_size: int | str | None = None  # a number of problems, or "all"

    @field_validator("heldout_size")
    @classmethod
    def _count_or_all(cls, v):
        if isinstance(v, str) and v != "all" or isinstance(v, int) and v < 1:
            raise ValueError(f"should be a number greater than or equal to 1, or `all`; got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.hf_dataset is None):
            raise ValueError("give exactly one of `path` (a JSON Lines file) and `hf_dataset`")
        if self.heldout_path is not None and self.heldout_split is not None:
            raise ValueError("give at most one of `heldout_path` and `heldout_split`")
        if self.heldout_split is not None and self.hf_dataset is None:
            raise ValueError("`heldout_split` needs `hf_dataset`; for files give `heldout_path`")
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
                raise DataError(
                    f"{path}:{n}: a number in the row is too long (more than 4300 digits)"
                ) from None
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
        raise DataError(
            f"{where}: field {dotted!r} should be {kind.__name__}, not {type(value).__name__}"
        )
    return value


def load_problems(
    path: str, parse_row: Callable[[dict, str], dict], limit: int | None = None
) -> list[dict]:
    rows = []
    first_line: dict[str, int] = {}  # the operators downstream group samples by id
    for n, raw in read_jsonl(path):
        row = parse_row(raw, f"{path}:{n}")
        if row["id"] in first_line:
            raise DataError(
                f"{path}:{n}: duplicate id {row['id']!r} (also on line {first_line[row['id']]})"
            )
        first_line[row["id"]] = n
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise DataError(f"{path}: no problems in the file")
    return rows


def split(rows: list[dict], seed: int, train_size: int | None, heldout_size: int | str):
    """A seeded shuffle, then the first `heldout_size` rows held out (all of them with
    "all"), the next `train_size` (all if None) for training."""
    import random

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    if heldout_size == "all":
        return [], [rows[i] for i in order]
    if heldout_size >= len(rows):
        raise DataError(
            f"heldout_size {heldout_size} leaves nothing to train on ({len(rows)} rows)"
        )
    held = [rows[i] for i in order[:heldout_size]]
    train = [rows[i] for i in order[heldout_size:]]
    return (train[:train_size] if train_size else train), held


def sample_of(rows: list[dict], seed: int, size: int | None, where: str) -> list[dict]:
    """All `rows`, or a seeded sample of `size` of them, in their order."""
    import random

    if size is None:
        return rows
    if size > len(rows):
        raise DataError(f"heldout_size {size} is more than the {len(rows)} problems in {where}")
    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), size))]


def from_hub(name: str, config: str | None, split_name: str, parse_row) -> list[dict]:
    try:
        import datasets
    except ImportError:
        raise ValueError(
            "`hf_dataset` needs the `datasets` package (pip install datasets)"
        ) from None
    ds = datasets.load_dataset(name, config, split=split_name)
    rows = [parse_row(dict(r), f"{name}[{split_name}][{i}]") for i, r in enumerate(ds)]
    if not rows:
        raise DataError(f"{name}: no problems in split {split_name!r}")
    return rows


def problems(p: SourceParams, parse_row, hub_config: str | None = None, hub_row=None):
    """{"train", "heldout"} frames for a source's params. Every held-out row's `split` says
    where the held-out problems came from, for the report."""
    config = p.hf_config or hub_config
    hub_parse = (lambda raw, where: parse_row(hub_row(raw), where)) if hub_row else parse_row

    def read(path, hub_split):
        return (
            load_problems(path, parse_row)
            if path
            else from_hub(p.hf_dataset, config, hub_split, hub_parse)
        )

    rows = read(p.path, p.split)
    source = Path(p.path).name if p.path else f"{p.hf_dataset}[{p.split}]"
    if p.heldout_path or p.heldout_split:
        held_from = (
            Path(p.heldout_path).name if p.heldout_path else f"{p.hf_dataset}[{p.heldout_split}]"
        )
        size = None if p.heldout_size == "all" else p.heldout_size
        held = sample_of(read(p.heldout_path, p.heldout_split), p.seed, size, held_from)
        shuffled = split(rows, p.seed, None, "all")[1]
        train = shuffled[: p.train_size] if p.train_size else shuffled
        where = (
            f"{held_from}, whole"
            if size is None
            else (f"{held_from}, {len(held)} sampled (seed {p.seed})")
        )
    else:
        size = 200 if p.heldout_size is None else p.heldout_size
        train, held = split(rows, p.seed, p.train_size, size)
        where = (
            f"{source}, whole"
            if size == "all"
            else f"{source}, seeded split (seed {p.seed}, {len(held)} held out)"
        )
    return frames(train, [{**r, "split": where} for r in held])


def frames(train: list[dict], held: list[dict]):
    import polars as pl

    held_df = pl.DataFrame(held)
    train_df = (
        pl.DataFrame(train)
        if train
        else pl.DataFrame(schema={k: v for k, v in held_df.schema.items() if k != "split"})
    )
    return {"train": train_df, "heldout": held_df}
