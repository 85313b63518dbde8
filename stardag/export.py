"""Export a stage's artifact out of the store: a model as a plain Hugging Face directory, a
dataset as JSONL, Parquet or a `datasets` directory, each with a card saying where it came
from (spec, stage, key, params, inputs)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import SpecError, StardagError

FORMATS = ("jsonl", "parquet", "hf")


def export(
    spec: str | os.PathLike,
    stage: str,
    to: str | os.PathLike,
    iteration: int | None = None,
    output: str | None = None,
    fmt: str | None = None,
    force: bool = False,
    overrides: Sequence[str] = (),
    store: str | None = None,
) -> dict:
    """Write the artifact into directory `to`; returns the card written beside it."""
    from .api import artifact

    if fmt is not None and fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})", "--format")
    dest = Path(os.path.abspath(to))
    _check_destination(dest, force)
    ld, manifest = artifact(spec, stage, iteration, overrides, store)
    outputs = manifest["outputs"]
    if output is None:
        if len(outputs) != 1:
            raise SpecError(
                f"stage {stage!r} has outputs {', '.join(outputs)}: name one (--output)"
            )
        output = next(iter(outputs))
    if output not in outputs:
        raise SpecError(f"stage {stage!r} has no output {output!r} (it has {', '.join(outputs)})")
    kind = outputs[output]["kind"]
    if kind != "dataset" and fmt not in (None, "hf"):
        raise SpecError(
            f"stage {stage!r} output {output!r} is a model: it exports as a Hugging Face "
            "directory only (no --format, or --format hf)",
            "--format",
        )
    fmt = fmt or ("jsonl" if kind == "dataset" else "hf")
    key = manifest["key"]
    staging = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dataset":
            table = ld.store.read_table(key, output)
            files = _write_dataset(table, staging, fmt)
        else:
            shutil.copytree(ld.store.model_dir(key, output), staging)
            files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        card = _card(ld, manifest, output, kind, fmt, files)
        (staging / "card.json").write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
        if not (staging / "README.md").exists():
            (staging / "README.md").write_text(_readme(card))
        if dest.exists():  # empty, or --force
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        os.replace(staging, dest)
    except OSError as e:
        raise StardagError(f"--to {dest}: cannot write: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return card


def _check_destination(dest: Path, force: bool):
    if dest.exists() and not force:
        if not dest.is_dir():
            raise SpecError("exists and is not a directory (--force replaces it)", f"--to {dest}")
        if any(dest.iterdir()):
            raise SpecError("directory is not empty (--force replaces it)", f"--to {dest}")


def _write_dataset(table, staging: Path, fmt: str) -> list[str]:
    if fmt == "hf":
        try:
            import datasets
        except ImportError:
            raise StardagError(
                "--format hf needs the `datasets` library: pip install 'stardag[hf]'"
            ) from None
        datasets.disable_progress_bars()
        datasets.Dataset(table).save_to_disk(str(staging))
        return sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    import polars as pl

    staging.mkdir()
    df = pl.DataFrame(table)
    name = f"data.{fmt}"
    if fmt == "jsonl":
        df.write_ndjson(staging / name)
    else:
        df.write_parquet(staging / name)
    return [name]


def _card(ld, manifest: dict, output: str, kind: str, fmt: str, files: list[str]) -> dict:
    loaded = ld.graph.loaded
    out = manifest["outputs"][output]
    return {
        "exported_by": "stardag export",
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spec": manifest.get("spec"),
        "spec_file": str(loaded.path),
        "overrides": list(loaded.overrides),
        "stage": manifest.get("stage"),
        "iteration": manifest.get("iteration"),
        "output": output,
        "kind": kind,
        "format": fmt,
        "files": files,
        "key": manifest["key"],
        "content_hash": out.get("content_hash"),
        "rows": out.get("rows"),
        "schema": out.get("schema"),
        "op": manifest.get("op"),
        "params": manifest.get("record", {}).get("params"),
        "inputs": {k: v.get("key") for k, v in manifest.get("inputs", {}).items()},
        "created": manifest.get("created"),
        "libraries": manifest.get("libraries"),
        "store": ld.store.uri,
    }


def _readme(card: dict) -> str:
    node = card["stage"] + (f"@{card['iteration']}" if card["iteration"] else "")
    what = f"{card['rows']} rows" if card["kind"] == "dataset" else "a model"
    return (
        f"# {card['spec']} / {node} ({card['output']})\n\n"
        f"Exported by `stardag export` from the stardag store `{card['store']}`: {what}, "
        f"stage key `{card['key']}`, made by operator `{card['op']}`.\n\n"
        "Provenance (also in `card.json`):\n\n"
        f"```json\n{json.dumps(card, indent=1, sort_keys=True)}\n```\n"
    )
