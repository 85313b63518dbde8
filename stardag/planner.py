"""What a run would do: for each node, `cached` or `run`, and why (new, code, params,
inputs, forced, missing), found from the manifests and the refs of the last run. Reads the
store only; imports neither Ray nor any operator's heavy libraries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .fingerprint import code_fingerprint, stage_key
from .graph import Graph, Node
from .store import Store

CAUSE_ORDER = ("forced", "new", "code", "params", "inputs", "missing")


@dataclass
class PlanEntry:
    node: str
    stage: str
    iteration: int | None
    status: str  # "cached" or "run"
    causes: list[str] = field(default_factory=list)
    key: str | None = None  # None while an input is still to be computed
    details: list[str] = field(default_factory=list)
    manifest: dict | None = None

    @property
    def cause(self) -> str | None:
        return self.causes[0] if self.causes else None

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("manifest")
        d["cause"] = self.cause
        return d


def node_key(node: Node, input_hashes: dict[str, str]) -> str:
    return stage_key(node.target, node.op.version, code_fingerprint(node.op.__module__),
                     node.key_params, input_hashes)


def input_hashes(node: Node, manifests: dict[str, dict | None]) -> dict[str, str | None]:
    """Content hash of each input, None where the producer has not been computed."""
    out = {}
    for inp, (producer, output) in node.inputs.items():
        m = manifests.get(producer)
        out[inp] = m["outputs"][output]["content_hash"] if m else None
    return out


def stale_causes(node: Node, ref: dict | None, hashes: dict[str, str | None],
                 forced: bool) -> tuple[list[str], list[str]]:
    """Why `node` must run, compared with what it resolved to last time (`ref`)."""
    causes, details = [], []
    if forced:
        causes.append("forced")
    if ref is None:
        causes.append("new")
        return causes, details
    if ref.get("target") != node.target:
        causes.append("code")
        details.append(f"operator {ref.get('target')} -> {node.target}")
    elif (ref.get("version"), ref.get("code")) != (node.op.version, code_fingerprint(node.op.__module__)):
        causes.append("code")
        if ref.get("version") != node.op.version:
            details.append(f"version {ref.get('version')} -> {node.op.version}")
        else:
            details.append("operator source changed")
    old, new = ref.get("params", {}), node.key_params
    if old != new:
        causes.append("params")
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                details.append(_param_change(k, old.get(k, "(unset)"), new.get(k, "(unset)")))
    changed = [k for k, h in hashes.items() if h is None or ref.get("inputs", {}).get(k) != h]
    if changed or set(ref.get("inputs", {})) != set(hashes):
        causes.append("inputs")
        details.extend(f"input {k}: {node.inputs[k][0]} re-runs" if hashes[k] is None
                       else f"input {k}: {node.inputs[k][0]} produced other data" for k in changed)
    return causes, details


def _param_change(name: str, old, new) -> str:
    """One line for a changed param; a file param (keyed by content) names the files."""
    old_files, new_files = _files_of(old), _files_of(new)
    if old_files is not None and new_files is not None:
        names = [f.get("file") for f in new_files]
        if [f.get("file") for f in old_files] == names:
            changed = [f.get("file") for f, g in zip(old_files, new_files) if f != g]
            return f"{name}: content of {', '.join(changed)} changed"
        return f"{name}: files {', '.join(f.get('file') for f in old_files)} -> {', '.join(names)}"
    return f"{name}: {old!r:.40} -> {new!r:.40}"


def _files_of(value) -> list[dict] | None:
    """The files of a FilePath param's key value ({file, xxh3} or a list of them)."""
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(i, dict) and set(i) == {"file", "xxh3"} for i in items):
        return items
    return None


def make_plan(graph: Graph, store: Store, force: set[str] = frozenset(),
              selected: set[str] | None = None) -> list[PlanEntry]:
    manifests: dict[str, dict | None] = {}
    entries = []
    for node in graph.nodes.values():
        if selected is not None and node.id not in selected:
            continue
        hashes = input_hashes(node, manifests)
        known = all(h is not None for h in hashes.values())
        key = node_key(node, hashes) if known else None
        manifest = store.manifest(key) if key else None
        forced = node.id in force
        if manifest is not None and not forced:
            manifests[node.id] = manifest
            entries.append(PlanEntry(node.id, node.stage, node.iteration, "cached", [], key,
                                     manifest=manifest))
            continue
        manifests[node.id] = None
        causes, details = stale_causes(node, store.read_ref(graph.name, node.id), hashes, forced)
        if not causes:
            causes = ["missing"]
            details = ["the artifact of the last run is gone (deleted, collected or corrupt)"]
        causes.sort(key=CAUSE_ORDER.index)
        entries.append(PlanEntry(node.id, node.stage, node.iteration, "run", causes, key, details))
    return entries
