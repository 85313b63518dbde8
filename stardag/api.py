"""The Python API, which the CLI is a thin shell over.

    import stardag
    stardag.plan("pipelines/star.yaml")                      # [PlanEntry(...), ...]
    result = stardag.run("pipelines/star.yaml", overrides=["loop.iterations=2"])
    df = stardag.read("pipelines/star.yaml", "evaluate", iteration=2)   # polars DataFrame
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import SpecError
from .graph import Graph, compile_spec
from .planner import PlanEntry, make_plan
from .spec import load_spec
from .store import Store


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


def load(spec_path: str | os.PathLike, overrides: Sequence[str] = (), store: str | None = None) -> Loaded:
    loaded = load_spec(spec_path, overrides)
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


def plan(spec_path: str | os.PathLike, overrides: Sequence[str] = (), store: str | None = None,
         force: Sequence[str] = (), until: Sequence[str] | str | None = None) -> list[PlanEntry]:
    ld = load(spec_path, overrides, store)
    selected = _selection(ld.graph, until)
    return make_plan(ld.graph, ld.store, _forced(ld.graph, force), set(selected))


def run(spec_path: str | os.PathLike, overrides: Sequence[str] = (), store: str | None = None,
        force: Sequence[str] = (), until: Sequence[str] | str | None = None,
        address: str | None = None, executor: str = "ray", progress: bool = True):
    """Run a spec; returns an executor.RunResult. Ray starts only if a stage must run."""
    from .executor import LocalRunner, RayRunner, execute

    ld = load(spec_path, overrides, store)
    sys_path = [str(ld.spec_dir)]
    if executor == "local":
        factory = LocalRunner
    elif executor == "ray":
        def factory():
            return RayRunner(address, sys_path + [os.getcwd()])
    else:
        raise SpecError(f"unknown executor {executor!r} (ray or local)")
    return execute(ld.graph, ld.store, _selection(ld.graph, until), _forced(ld.graph, force),
                   factory, sys_path, progress)


def artifact(spec_path: str | os.PathLike, stage: str, iteration: int | None = None,
             overrides: Sequence[str] = (), store: str | None = None) -> tuple[Loaded, dict]:
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
        raise SpecError(f"stage {node_id!r} has not been computed for this spec "
                        f"({entry.cause}); run it first", str(ld.graph.loaded.path))
    return ld, entry.manifest


def read(spec_path: str | os.PathLike, stage: str, iteration: int | None = None,
         output: str | None = None, overrides: Sequence[str] = (), store: str | None = None):
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
        return pl.from_arrow(ld.store.read_table(manifest["key"], output))
    return ld.store.model_dir(manifest["key"], output)
