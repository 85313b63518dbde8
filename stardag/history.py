"""Run history: the run records under the store's `runs/<spec>/`, as `stardag runs` lists
them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .humanize import seconds
from .store import Store


def status(record: dict) -> str:
    failed = record.get("failed")
    if not failed:
        return "ok"
    return "stopped" if failed.startswith(("stopped", "interrupted")) else "failed"


def summary(record: dict) -> dict:
    """One run, as `stardag runs --json` gives it."""
    nodes = record.get("nodes", {})
    computed = sorted(n for n, r in nodes.items() if r.get("status") == "computed")
    finished = record.get("finished", 0.0)
    return {
        "spec": record.get("spec"),
        "started": record.get("started", finished - record.get("wall_s", 0.0)),
        "finished": finished,
        "wall_s": record.get("wall_s"),
        "status": status(record),
        "overrides": record.get("overrides", []),
        "computed": computed,
        "cached": sorted(n for n, r in nodes.items() if r.get("status") == "cached"),
        "failed": record.get("failed"),
        "spec_file": record.get("spec_file"),
    }


def runs(store: Store, spec: str | None) -> list[dict]:
    """Summaries of the runs of `spec` (every spec when None), oldest first."""
    if spec is not None:
        names = [spec]
    elif store.local is not None and (store.local / "runs").is_dir():
        names = sorted(p.name for p in (store.local / "runs").iterdir() if p.is_dir())
    else:
        names = []
    out = [summary(r) for name in names for r in _records(store, name)]
    return sorted(out, key=lambda r: r["started"])


def _records(store: Store, spec: str) -> list[dict]:
    """The spec's run records, oldest first; one being written or damaged is skipped."""
    d = store.local / "runs" / spec if store.local is not None else None
    out = []
    for p in sorted(d.glob("*.json")) if d is not None and d.is_dir() else []:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
    return out


def table(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"]))
        line = (
            f"{when}  {r['spec'] or '?':<20} {r['status']:<7} "
            f"{len(r['computed']):>3} computed {len(r['cached']):>3} cached  "
            f"{seconds(r['wall_s'] or 0):>7}"
        )
        if r["overrides"]:
            line += "  --set " + " --set ".join(r["overrides"])
        if r["failed"]:
            line += f"\n    {r['failed']}"
        lines.append(line)
    return "\n".join(lines)


def store_of(spec: str | None, store: str | None) -> tuple[Store, str | None]:
    """The store and spec name to list: the spec's (read, so that its `store:` counts; not
    compiled, so that no operator module is imported)."""
    if spec is None:
        from .errors import StardagError

        if store is None:
            raise StardagError("give a spec or --store")
        return Store(store), None
    from .api import store_uri
    from .spec import load_spec

    loaded = load_spec(Path(spec))
    return Store(store_uri(loaded.path, loaded.spec.store, store)), loaded.spec.name
