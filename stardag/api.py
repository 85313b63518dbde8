"""The Python API, which the CLI is a thin shell over.

import stardag
stardag.plan("pipelines/star.yaml")                      # [PlanEntry(...), ...]
result = stardag.run("pipelines/star.yaml", overrides=["loop.iterations=2"])
df = stardag.read("pipelines/star.yaml", "evaluate", iteration=2)   # polars DataFrame
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .errors import SpecError, StageFailed, StardagError
from .graph import Graph, compile_spec
from .planner import PlanEntry, make_plan
from .spec import load_spec
from .store import Store

if TYPE_CHECKING:
    import polars as pl

    from .executor import LocalRunner, RayRunner, RunResult
    from .spec import LoadedSpec

    Runner = LocalRunner | RayRunner


@dataclass
class Loaded:
    graph: Graph
    store: Store

    @property
    def spec_dir(self) -> Path:
        return self.graph.loaded.path.parent


def store_uri(spec_path: Path, spec_store: str | None, store: str | None) -> str:
    """--store, then $STARDAG_STORE, then the spec's `store:`, then .stardag/ beside the spec."""
    if store is not None:
        return store  # an empty one is refused by the store
    if os.environ.get("STARDAG_STORE"):
        return os.environ["STARDAG_STORE"]
    if spec_store:
        return spec_store if "://" in spec_store else str(spec_path.parent / spec_store)
    return str(spec_path.parent / ".stardag")


def load(
    spec_path: str | os.PathLike,
    overrides: Sequence[str] = (),
    store: str | None = None,
    loaded: LoadedSpec | None = None,
) -> Loaded:
    """The spec compiled, and its store; `loaded` is the spec already read (load_spec of
    the same path and overrides), not read again."""
    loaded = loaded or load_spec(Path(spec_path), tuple(overrides))
    sys_path = str(loaded.path.parent)
    if sys_path not in sys.path:
        sys.path.insert(0, sys_path)  # `module:Name` operator references beside the spec
    graph = compile_spec(loaded)
    return Loaded(graph, Store(store_uri(loaded.path, loaded.spec.store, store)))


def _selection(graph: Graph, until: Sequence[str] | str | None) -> list[str]:
    if not until:
        return list(graph.nodes)
    targets = set()
    for name in [until] if isinstance(until, str) else until:
        for node_id in graph.select(name):
            targets |= {node_id} | graph.ancestors(node_id)
    return [n for n in graph.nodes if n in targets]


def _forced(graph: Graph, force: Sequence[str]) -> set[str]:
    return {node_id for name in force for node_id in graph.select(name)}


def plan(
    spec_path: str | os.PathLike,
    overrides: Sequence[str] = (),
    store: str | None = None,
    force: Sequence[str] = (),
    until: Sequence[str] | str | None = None,
) -> list[PlanEntry]:
    ld = load(spec_path, overrides, store)
    selected = _selection(ld.graph, until)
    return make_plan(ld.graph, ld.store, _forced(ld.graph, force), set(selected))


def run(
    spec_path: str | os.PathLike,
    overrides: Sequence[str] = (),
    store: str | None = None,
    force: Sequence[str] = (),
    until: Sequence[str] | str | None = None,
    address: str | None = None,
    executor: str = "ray",
    progress: bool = True,
    verbose: bool | None = None,
    loaded: LoadedSpec | None = None,
) -> RunResult:
    """Run a spec; returns an executor.RunResult. Ray starts only if a stage must run.
    With `verbose` False, Ray's and the libraries' output goes to a log file under the
    store's runs/ (True: to the terminal, as with None, but no ANSI codes in a file);
    `loaded`: the spec already read (see `load`)."""
    ld = load(spec_path, overrides, store, loaded)
    (outcome,) = run_together([ld], [None], force, until, address, executor, progress, verbose)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def run_together(
    variants: Sequence[Loaded],
    labels: Sequence[str | None],
    force: Sequence[str] = (),
    until: Sequence[str] | str | None = None,
    address: str | None = None,
    executor: str = "ray",
    progress: bool = True,
    verbose: bool | None = None,
) -> list[RunResult | StageFailed]:
    """Run loaded variants of specs at once on one runner (a sweep's points): their
    independent stages side by side, a stage they share computed once. Each variant's
    result, or the failure that stopped it (see executor.execute_together)."""
    from .executor import Job, LocalRunner, RayRunner, execute_together

    sys_path = list(dict.fromkeys(str(ld.spec_dir) for ld in variants))
    factory: Callable[[], Runner]
    if executor == "local":
        factory = LocalRunner
    elif executor == "ray":

        def factory() -> Runner:
            return RayRunner(address, sys_path + [os.getcwd()])
    else:
        raise SpecError(f"unknown executor {executor!r} (ray or local)")
    import contextlib

    from . import logs

    jobs = [
        Job(ld.graph, ld.store, _selection(ld.graph, until), _forced(ld.graph, force), label)
        for ld, label in zip(variants, labels)
    ]
    first = variants[0]
    output = contextlib.nullcontext() if verbose is None else logs.capture(run_log(first), verbose)
    with output:
        return execute_together(jobs, factory, sys_path, progress)


def run_log(ld: Loaded) -> Path:
    """Where a run's log goes: beside its record under runs/, or (a remote store) here."""
    import tempfile
    import time

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{os.getpid()}.log"
    if ld.store.local is not None:
        return ld.store.local / "runs" / ld.graph.name / stamp
    return Path(tempfile.gettempdir()) / f"stardag-{ld.graph.name}-{stamp}"


def artifact(
    spec_path: str | os.PathLike,
    stage: str,
    iteration: int | None = None,
    overrides: Sequence[str] = (),
    store: str | None = None,
) -> tuple[Loaded, dict]:
    """The manifest of a stage's cached artifact (errors if it has not been computed)."""
    ld = load(spec_path, overrides, store)
    node_id = stage
    if iteration is not None:
        node_id = f"{stage}@{iteration}"
    elif stage not in ld.graph.nodes:
        ids = ld.graph.select(stage)
        node_id = ids[-1]  # a loop stage without --iteration: the last iteration
    if node_id not in ld.graph.nodes:
        ld.graph.select(node_id)  # raises with a suggestion
        raise SpecError(f"{stage!r} has no iteration {iteration}", str(ld.graph.loaded.path))
    entries = make_plan(ld.graph, ld.store, selected={node_id} | ld.graph.ancestors(node_id))
    entry = next(e for e in entries if e.node == node_id)
    if entry.status != "cached":
        raise SpecError(
            f"stage {node_id!r} has not been computed for this spec ({entry.cause}); run it first",
            str(ld.graph.loaded.path),
        )
    assert entry.manifest is not None  # a cached entry has its manifest
    return ld, entry.manifest


def read(
    spec_path: str | os.PathLike,
    stage: str,
    iteration: int | None = None,
    output: str | None = None,
    overrides: Sequence[str] = (),
    store: str | None = None,
) -> pl.DataFrame | Path:
    """A stage's output: a polars DataFrame for datasets, a local Path for models."""
    import polars as pl

    ld, manifest = artifact(spec_path, stage, iteration, overrides, store)
    outputs = manifest["outputs"]
    if output is None:
        if len(outputs) != 1:
            raise SpecError(f"stage {stage!r} has outputs {', '.join(outputs)}: name one")
        output = next(iter(outputs))
    if output not in outputs:
        raise SpecError(f"stage {stage!r} has no output {output!r}")
    if outputs[output]["kind"] == "dataset":
        return cast("pl.DataFrame", pl.from_arrow(ld.store.read_table(manifest["key"], output)))
    return ld.store.model_dir(manifest["key"], output)


@dataclass
class Collected:
    """What `gc` deletes (or, dry, would): artifacts with their stage and size."""

    store: str
    deleted: list[dict]  # {key, spec, stage, iteration, size}
    kept: int
    dry_run: bool

    @property
    def freed(self) -> int:
        return sum(d["size"] for d in self.deleted)


def reachable(graph: Graph, store: Store) -> set[str]:
    """Every key a run of `graph` would reach: those of its cached stages, those of stages
    that would run because an artifact is missing, and those below them. The output of a
    missing stage is predicted from what it produced before (its ref, or the inputs that
    artifacts computed from it record): re-running it reproduces those bytes, and the work
    below stays reachable."""
    from .planner import node_key

    used_as: dict[tuple, set] = {}  # (key, consumer stage, input) -> hashes
    for m in store.artifacts():
        if not isinstance(m, dict):
            continue
        inputs = m.get("inputs")
        for inp, src in inputs.items() if isinstance(inputs, dict) else ():
            if isinstance(src, dict) and isinstance(src.get("key"), str):
                used_as.setdefault((src["key"], m.get("stage"), inp), set()).add(
                    src.get("content_hash")
                )
    keys: set[str] = set()
    outputs: dict[str, dict[str, set[str]]] = {}  # node -> output -> possible content hashes
    for node in graph.nodes.values():
        choices = [
            [(inp, h) for h in outputs.get(src, {}).get(out, ())]
            for inp, (src, out) in node.inputs.items()
        ]
        if any(not c for c in choices):
            continue  # an input nothing can tell: neither are the stages below
        produced: dict[str, set[str]] = {}
        for combo in itertools.islice(itertools.product(*choices), 64):
            key = node_key(node, dict(combo)).digest
            keys.add(key)
            found = store.manifest(key)
            if found is not None:
                for out, meta in found["outputs"].items():
                    produced.setdefault(out, set()).add(meta["content_hash"])
                continue
            ref = store.read_ref(graph.name, node.id)
            if (
                isinstance(ref, dict)
                and ref.get("key") == key
                and isinstance(ref.get("outputs"), dict)
            ):
                for out, h in ref["outputs"].items():
                    produced.setdefault(out, set()).add(h)
            for consumer in graph.nodes.values():
                for inp, (src, out) in consumer.inputs.items():
                    if src == node.id:
                        produced.setdefault(out, set()).update(
                            used_as.get((key, consumer.stage, inp), ())
                        )
        outputs[node.id] = produced
    return keys


def gc(
    keep: Sequence[str | os.PathLike], store: str | None = None, dry_run: bool = False
) -> Collected:
    """Delete every artifact that none of the `keep` specs reaches (see `reachable`), the
    shards of stages they would not run, and the quarantine. The store is `store`, else the
    one the specs name; a `$STARDAG_STORE` that disagrees with a spec's `store:` is refused
    rather than guessed."""
    if not keep:
        raise StardagError("name the specs whose artifacts to keep: stardag gc --keep SPEC ...")
    loaded = [load(spec, store=store) for spec in keep]
    uris = {ld.store.uri for ld in loaded}
    if len(uris) != 1:
        raise StardagError(
            f"the specs use different stores ({', '.join(sorted(uris))}); "
            "collect one store at a time with --store"
        )
    env = os.environ.get("STARDAG_STORE")
    if not store and env:
        for spec, ld in zip(keep, loaded):
            own = ld.graph.loaded.spec.store
            spec_path = ld.graph.loaded.path
            if own and not _same_place(own if "://" in own else str(spec_path.parent / own), env):
                raise StardagError(
                    f"$STARDAG_STORE is {env}, but {spec} says store: {own}; "
                    "name the store to clean with --store"
                )
    target_store = loaded[0].store
    keys: set[str] = set()
    for ld in loaded:
        keys |= reachable(ld.graph, target_store)
    deleted, kept = [], 0
    for m in list(target_store.artifacts()):
        if not isinstance(m, dict) or not isinstance(m.get("key"), str):
            continue
        if m["key"] in keys:
            kept += 1
            continue
        files = m.get("files")
        if not isinstance(files, dict):
            files = {}
        deleted.append(
            {
                "key": m.get("key"),
                "spec": m.get("spec"),
                "stage": m.get("stage"),
                "iteration": m.get("iteration"),
                "size": sum(f.get("size", 0) for f in files.values() if isinstance(f, dict)),
            }
        )
        if not dry_run:
            target_store.delete(m["key"])
    if not dry_run:
        target_store.clean_tmp()
        target_store.fs.delete_dir_contents(f"{target_store.root}/quarantine", missing_dir_ok=True)
        for key in target_store.partial_keys():  # shards of stages a kept spec would still run stay
            if key not in keys:
                target_store.drop_partial(key)
    return Collected(target_store.uri, deleted, kept, dry_run)


def _same_place(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)
