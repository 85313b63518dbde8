"""What a run would do: for each node, `cached` or `run`, and why (new, code, params,
inputs, forced, missing), found from the manifests and the refs of the last run. Reads the
store only; imports neither Ray nor any operator's heavy libraries."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field

from .code_identity import CodeIdentity, changes
from .fingerprint import FORMAT_VERSION, StageKey
from .graph import Graph, Node
from .store import Store

CAUSE_ORDER = ("forced", "new", "code", "libraries", "params", "inputs", "missing")


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
    notes: list[str] = field(default_factory=list)  # worth knowing, not a reason to run

    @property
    def cause(self) -> str | None:
        return self.causes[0] if self.causes else None

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("manifest")
        d["cause"] = self.cause
        return d


def _code(node: Node) -> CodeIdentity:
    assert node.code is not None, "compile_spec gives every node its code identity"
    return node.code


def node_key(node: Node, input_hashes: dict[str, str | None]) -> StageKey:
    """The node's key record; its inputs' hashes may still be unknown (None) while planning."""
    code = _code(node)
    return StageKey(
        node.target,
        node.op.version,
        code.digest,
        node.key_params,
        input_hashes,
        code.libraries if node.libraries_in_key else None,
    )


def provenance(node: Node) -> dict:
    """What the manifest and the ref keep beside the key record, to say what changed."""
    return {"definitions": _code(node).definitions, "libraries": _code(node).libraries}


def input_hashes(node: Node, manifests: dict[str, dict | None]) -> dict[str, str | None]:
    """Content hash of each input, None where the producer has not been computed."""
    out = {}
    for inp, (producer, output) in node.inputs.items():
        m = manifests.get(producer)
        out[inp] = m["outputs"][output]["content_hash"] if m else None
    return out


def recorded(ref: dict | None) -> StageKey | None:
    """The key record a ref or manifest holds, None if it holds none (or not in this format)."""
    try:
        return StageKey.from_json(ref.get("record")) if isinstance(ref, dict) else None
    except ValueError:
        return None


def stale_causes(
    node: Node, ref: dict | None, hashes: dict[str, str | None], forced: bool
) -> tuple[list[str], list[str]]:
    """Why `node` must run: the differences between its key record now and the one it
    resolved to last time (`ref`)."""
    causes: list[str] = []
    details: list[str] = []
    if forced:
        causes.append("forced")
    if ref is None:
        causes.append("new")
        return causes, details
    old, new = recorded(ref), node_key(node, hashes)
    if old is None or old.format != FORMAT_VERSION:
        causes.append("code")
        details.append(
            f"the store's key format changed (to {FORMAT_VERSION}): every stage runs once"
        )
        return causes, details
    if old.target != new.target:
        causes.append("code")
        details.append(f"operator {old.target} -> {new.target}")
    elif old.version != new.version:
        causes.append("code")
        details.append(f"version {old.version} -> {new.version}")
    elif old.code != new.code:
        causes.append("code")
        lines = changes(
            ref.get("code_identity", {}).get("definitions", {}), _code(node).definitions
        )
        details.extend(lines or ["operator source changed"])
    if old.libraries != new.libraries:
        causes.append("libraries")
        if old.libraries is None or new.libraries is None:
            details.append(
                "library versions "
                + ("are now" if old.libraries is None else "are no longer")
                + " part of the key "
                "(libraries_in_key)"
            )
        else:
            details.extend(library_changes(old.libraries, new.libraries))
    if old.params != new.params:
        causes.append("params")
        for k in sorted(set(old.params) | set(new.params)):
            if old.params.get(k) != new.params.get(k):
                details.append(
                    _param_change(k, old.params.get(k, "(unset)"), new.params.get(k, "(unset)"))
                )
    changed = [k for k, h in hashes.items() if h is None or old.inputs.get(k) != h]
    if changed or set(old.inputs) != set(hashes):
        causes.append("inputs")
        details.extend(
            f"input {k}: {node.inputs[k][0]} re-runs"
            if hashes[k] is None
            else f"input {k}: {node.inputs[k][0]} produced other data"
            for k in changed
        )
    return causes, details


def library_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return [
        f"library {lib}: {old.get(lib, '(not imported)')} -> {new.get(lib, '(not imported)')}"
        for lib in sorted(set(old) | set(new))
        if old.get(lib) != new.get(lib)
    ]


def library_notes(node: Node, recorded_with: dict | None) -> list[str]:
    """Libraries the node's code imports whose version differs from the one its artifact
    was computed with (a note unless the spec puts library versions in the key)."""
    if node.libraries_in_key or not isinstance(recorded_with, dict):
        return []
    old = recorded_with.get("libraries")
    if not isinstance(old, dict):
        return []
    return [
        f"{line} (not in the key; `libraries_in_key: true` would re-run it)"
        for line in library_changes(old, _code(node).libraries)
    ]


def _param_change(name: str, old, new) -> str:
    """One line for a changed param; a file param (keyed by content) names the files."""
    old_files, new_files = _files_of(old), _files_of(new)
    if old_files is not None and new_files is not None:
        names = [f["file"] for f in new_files]
        if [f["file"] for f in old_files] == names:
            changed = [f["file"] for f, g in zip(old_files, new_files) if f != g]
            return f"{name}: content of {', '.join(changed)} changed"
        return f"{name}: files {', '.join(f['file'] for f in old_files)} -> {', '.join(names)}"
    return f"{name}: {old!r:.40} -> {new!r:.40}"


def _files_of(value) -> list[dict] | None:
    """The files of a FilePath param's key value ({file, xxh3} or a list of them)."""
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(i, dict) and set(i) == {"file", "xxh3"} for i in items):
        return items
    return None


def make_plan(
    graph: Graph,
    store: Store,
    force: AbstractSet[str] = frozenset(),
    selected: set[str] | None = None,
) -> list[PlanEntry]:
    manifests: dict[str, dict | None] = {}
    entries = []
    for node in graph.nodes.values():
        if selected is not None and node.id not in selected:
            continue
        hashes = input_hashes(node, manifests)
        known = all(h is not None for h in hashes.values())
        key = node_key(node, hashes).digest if known else None
        manifest = store.manifest(key) if key else None
        forced = node.id in force
        if manifest is not None and not forced:
            manifests[node.id] = manifest
            entries.append(
                PlanEntry(
                    node.id,
                    node.stage,
                    node.iteration,
                    "cached",
                    [],
                    key,
                    manifest=manifest,
                    notes=library_notes(node, manifest.get("code_identity")),
                )
            )
            continue
        manifests[node.id] = None
        causes, details = stale_causes(node, store.read_ref(graph.name, node.id), hashes, forced)
        if not causes:
            causes = ["missing"]
            details = ["the artifact of the last run is gone (deleted, collected or corrupt)"]
        causes.sort(key=CAUSE_ORDER.index)
        entries.append(PlanEntry(node.id, node.stage, node.iteration, "run", causes, key, details))
    return entries
