"""Compiling a spec into a DAG of nodes: operators resolved, params validated, the loop
unrolled (node `train@2` is stage `train` of iteration 2), inputs wired and their schemas
checked, cycles refused. Nothing here runs or reads the store."""

from __future__ import annotations

import graphlib
import importlib
import json
import pkgutil
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .code_identity import CodeIdentity, code_identity
from .errors import SpecError, did_you_mean
from .fingerprint import UnhashableParam, canonical_json, non_finite
from .operator import (
    Dataset,
    DefaultResources,
    Operator,
    Params,
    directory_params,
    file_params,
    logical_type,
    unkeyed_params,
)
from .registry import UnknownOperator, resolve, target_of
from .spec import LoadedSpec, PreviousRef, StageSpec, not_regular_file

REF = re.compile(
    r"^(?P<stage>[A-Za-z_][A-Za-z0-9_-]*)(?:\.(?P<output>[A-Za-z_][A-Za-z0-9_]*))?"
    r"(?:@(?P<iter>last|[0-9]+))?$"
)


@dataclass
class Node:
    id: str
    stage: str
    iteration: int | None
    op_ref: str
    target: str
    op: type[Operator]
    params: Params
    params_json: dict[str, Any]
    inputs: dict[str, tuple[str, str]]  # input name -> (producer node id, output name)
    resources: DefaultResources
    where: tuple[str | None, int | None]
    deps: set[str] = field(default_factory=set)
    key_params: dict[str, Any] = field(default_factory=dict)  # files as their content hashes
    input_where: dict[str, tuple] = field(default_factory=dict)  # spec key path of each input
    code: CodeIdentity | None = None  # the code its operator reaches
    libraries_in_key: bool = False


@dataclass
class Graph:
    name: str
    nodes: dict[str, Node]  # in topological order
    loaded: LoadedSpec

    def ancestors(self, node_id: str) -> set[str]:
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for dep in self.nodes[stack.pop()].deps:
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return seen

    def select(self, name: str) -> list[str]:
        """Node ids named by `stage` (every iteration) or `stage@N`."""
        if name in self.nodes:
            return [name]
        hits = [n.id for n in self.nodes.values() if n.stage == name]
        if not hits:
            hint = did_you_mean(name.split("@")[0], {n.stage for n in self.nodes.values()})
            raise SpecError(f"no stage {name!r} in this spec{hint}", str(self.loaded.path))
        return hits


def compile_spec(loaded: LoadedSpec) -> Graph:
    spec = loaded.spec
    top, loop = dict(spec.stages), loaded.loop_stages
    iterations = spec.loop.iterations if spec.loop else 0
    ops = {name: _resolve(loaded, name, stage) for name, stage in {**top, **loop}.items()}

    nodes: dict[str, Node] = {}
    for name, stage in top.items():
        nodes[name] = _node(loaded, name, None, stage, ops[name], top, loop, iterations)
    for i in range(1, iterations + 1):
        for name, stage in loop.items():
            node = _node(loaded, name, i, stage, ops[name], top, loop, iterations)
            nodes[node.id] = node

    codes: dict[type, CodeIdentity] = {}
    for node in nodes.values():
        if node.op not in codes:
            codes[node.op] = code_identity(node.op)
        node.code, node.libraries_in_key = codes[node.op], spec.libraries_in_key
    sorter = graphlib.TopologicalSorter({n.id: n.deps for n in nodes.values()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as e:
        cycle = e.args[1]
        first = nodes[cycle[0]]
        raise loaded.error(
            "inputs form a cycle: " + " -> ".join(cycle[::-1]),
            loaded.stage_path(first.stage) + ("inputs",),
            first.stage,
        ) from None
    graph = Graph(spec.name, {nid: nodes[nid] for nid in order}, loaded)
    _check_schemas(graph)
    return graph


def _resolve(loaded: LoadedSpec, name: str, stage: StageSpec) -> type[Operator]:
    try:
        return resolve(stage.op)
    except UnknownOperator as e:
        message = str(e) + _operator_hint(stage.op)
    except Exception as e:  # the operator's module itself fails to import
        message = f"operator {stage.op!r}: importing it failed: {type(e).__name__}: {e}"
    raise loaded.error(message, loaded.stage_path(name) + ("op",), name)


def _operator_hint(ref: str) -> str:
    """Close names for a `module:Name` reference that did not resolve: the module's
    operators when the module imports, else the modules beside the missing one."""
    module_name, colon, attr = ref.partition(":")
    if not colon:
        return ""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or module_name
        if missing not in (module_name, module_name.rpartition(".")[0]):
            return ""  # the module exists but imports something that does not
        parent, _, leaf = missing.rpartition(".")
        try:
            where = importlib.import_module(parent).__path__ if parent else None
        except (ImportError, AttributeError):
            return ""
        return did_you_mean(leaf, (m.name for m in pkgutil.iter_modules(where)))
    except (Exception, SystemExit):
        return ""
    ops = [
        k
        for k, v in vars(module).items()
        if isinstance(v, type) and issubclass(v, Operator) and v is not Operator
    ]
    return did_you_mean(attr, ops)


def _node(loaded, name, iteration, stage: StageSpec, op, top, loop, iterations) -> Node:
    path = loaded.stage_path(name)
    params = _params(loaded, name, iteration, stage, op, path)
    inputs: dict[str, tuple[str, str]] = {}
    wheres: dict[str, tuple] = {}
    for inp in stage.inputs:
        if inp not in op.inputs:
            raise loaded.error(
                f"operator {stage.op!r} has no input {inp!r}{did_you_mean(inp, op.inputs)} "
                f"(its inputs: {', '.join(op.inputs) or 'none'})",
                path + ("inputs", inp),
                name,
            )
    for inp, port in op.inputs.items():
        ref = stage.inputs.get(inp)
        if ref is None:
            if port.optional:
                continue
            raise loaded.error(
                f"missing input {inp!r} ({port.describe()})", path + ("inputs",), name
            )
        where = path + ("inputs", inp)
        if isinstance(ref, PreviousRef):
            if iteration is None:
                raise loaded.error(
                    "`previous` inputs are only for stages inside the loop", where, name
                )
            if iteration == 1:
                src = _wire(
                    loaded, name, ref.initial, None, top, loop, iterations, where + ("initial",)
                )
            else:
                src = _wire(
                    loaded,
                    name,
                    ref.previous,
                    iteration - 1,
                    top,
                    loop,
                    iterations,
                    where + ("previous",),
                    previous=True,
                )
        else:
            src = _wire(loaded, name, ref, iteration, top, loop, iterations, where)
        inputs[inp] = (src[0], src[1])
        wheres[inp] = where
    resources = _resources(op.resources, stage)
    node_id = name if iteration is None else f"{name}@{iteration}"
    params_json, key_params = _resolve_files(loaded, name, op, params.model_dump(mode="json"), path)
    key_params = {k: v for k, v in key_params.items() if k not in unkeyed_params(op.Params)}
    return Node(
        node_id,
        name,
        iteration,
        stage.op,
        target_of(stage.op),
        op,
        params,
        params_json,
        inputs,
        resources,
        loaded.where(path),
        deps={src for src, _ in inputs.values()},
        key_params=key_params,
        input_where=wheres,
    )


def file_entries(value: Path | list[Path]) -> dict | list[dict]:
    """The key's view of a file param: each file or directory by its name and content (a
    directory's hash as a model artifact's, so that which bytes lie in which file counts)."""
    from .content_hash import directory_hash, file_hash, hash_directory

    def entry(path: Path) -> dict:
        xxh3 = file_hash(path) if path.is_file() else directory_hash(hash_directory(path))
        return {"file": path.name, "xxh3": xxh3}

    return [entry(p) for p in value] if isinstance(value, list) else entry(value)


def _resolve_files(loaded, name, op, params_json: dict, path) -> tuple[dict, dict]:
    """Resolve FilePath params (single paths or lists of them) beside the spec; the key sees
    their content, not their path."""
    names = file_params(op.Params)
    if not names:
        return params_json, params_json
    resolved, keyed = dict(params_json), dict(params_json)
    directories = directory_params(op.Params)

    def find(field_name: str, value, where) -> Path:
        file = Path(value) if Path(value).is_absolute() else loaded.path.parent / value
        try:
            kind = not_regular_file(file)
        except FileNotFoundError:
            raise loaded.error(
                f"param {field_name!r}: file not found: {value} (looked at {file})", where, name
            ) from None
        except OSError as e:
            raise loaded.error(
                f"param {field_name!r}: cannot read {value}: {e.strerror}", where, name
            ) from None
        # checked before hashing: a directory such as /usr would be read whole first
        if kind and not (kind == "a directory" and field_name in directories):
            raise loaded.error(f"param {field_name!r}: {value} is {kind}, not a file", where, name)
        return file

    for field_name in names:
        value = params_json.get(field_name)
        where = path + ("params", field_name)
        if value is None:
            continue
        if isinstance(value, list):
            files = [find(field_name, v, where + (i,)) for i, v in enumerate(value)]
            resolved[field_name] = [str(f) for f in files]
            keyed[field_name] = file_entries(files)
        else:
            file = find(field_name, value, where)
            resolved[field_name] = str(file)
            keyed[field_name] = file_entries(file)
    return resolved, keyed


def keyed_files(op: type[Operator], params_json: dict, key_params: dict) -> dict:
    """`key_params` with each file param's content hashed again now: the files an operator
    is about to read (or has just read) must still be the ones its key was made from."""
    keyed = dict(key_params)
    for field_name in file_params(op.Params):
        value = params_json.get(field_name)
        if value is None:
            continue
        try:
            paths = [Path(v) for v in value] if isinstance(value, list) else Path(value)
            keyed[field_name] = file_entries(paths)
        except OSError as e:
            from .errors import InputError

            raise InputError(
                f"param {field_name!r}: cannot read {value} any more: {e.strerror or e}"
            ) from None
    return keyed


def _params(loaded, name, iteration, stage, op, path) -> Params:
    raw = dict(stage.params)
    if iteration is not None and "iteration" in op.Params.model_fields:
        if "iteration" in raw:
            raise loaded.error(
                "param 'iteration' is the loop's iteration number, which the "
                "engine sets: remove it",
                path + ("params", "iteration"),
                name,
            )
        raw["iteration"] = iteration
    odd = _not_json(raw)
    if odd is not None:
        at, value = odd
        raise loaded.error(
            f"param {'.'.join(at)!r}: {str(value)[:40]} is a YAML "
            f"{type(value).__name__}, not a number, string, boolean, list or "
            "mapping (quote it to give a string)",
            path + ("params",) + at,
            name,
        )
    try:
        # as JSON, strictly: types as the YAML gave them (`true` is no integer), integers
        # accepted for floats, and a mapping's keys (always strings in a spec) read as declared
        params = op.Params.model_validate_json(json.dumps(raw))
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(str(x) for x in err["loc"] if x != "[key]")
        field_name = ".".join(loc)
        if err["type"] == "extra_forbidden":
            if len(loc) == 1:
                known = [k for k in op.Params.model_fields if k != "iteration" or iteration is None]
                hint = did_you_mean(loc[0], known) or f" (its params: {', '.join(known) or 'none'})"
                msg = f"unknown param {loc[0]!r} for operator {stage.op!r}{hint}"
            else:
                msg = f"param {'.'.join(loc[:-1])!r} has no key {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = f"missing param {field_name!r} for operator {stage.op!r}"
        else:
            what = (
                "params"
                if not loc
                else (
                    f"key {loc[-1]!r} of param {'.'.join(loc[:-1])!r}"
                    if "[key]" in err["loc"]
                    else f"param {field_name!r}"
                )
            )
            msg = f"{what}: {err['msg'].removeprefix('Value error, ')}" + (
                "" if err["type"] == "value_error" else f" (got {err.get('input')!r:.60})"
            )
        raise loaded.error(msg, path + ("params",) + loc, name) from None
    dumped = params.model_dump(mode="json")
    bad = non_finite(dumped)
    if bad is not None:
        at, value = bad
        raise loaded.error(
            f"param {'.'.join(str(k) for k in at)!r} is {value}, which has no "
            "canonical form to hash (use a finite number or null)",
            path + ("params",) + at,
            name,
        )
    try:
        canonical_json(dumped)
    except (UnhashableParam, ValueError, TypeError) as e:
        raise loaded.error(f"params cannot be hashed: {e}", path + ("params",), name) from None
    return params


def _not_json(obj: Any, at: tuple = ()) -> tuple[tuple, Any] | None:
    """The key path and value of the first value JSON has no type for (a YAML date,
    timestamp or binary), or None."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    elif obj is None or isinstance(obj, (str, int, float)):
        return None
    else:
        return at, obj
    for k, v in items:
        found = _not_json(v, at + (str(k),))
        if found:
            return found
    return None


def _wire(loaded, name, ref: str, iteration, top, loop, iterations, where, previous=False):
    """(producer node id, output name, producer port) for a reference string."""
    m = REF.match(ref.strip()) if isinstance(ref, str) else None
    if not m:
        raise loaded.error(
            f"input reference {ref!r} is not of the form stage[.output][@N|@last]", where, name
        )
    stage, output, it = m["stage"], m["output"], m["iter"]
    if stage not in top and stage not in loop:
        hint = did_you_mean(stage, list(top) + list(loop))
        raise loaded.error(f"input names a stage that does not exist: {stage!r}{hint}", where, name)
    if previous and stage not in loop:
        raise loaded.error(
            f"`previous` must name a stage inside the loop, not {stage!r}", where, name
        )
    if stage in loop:
        if it is not None:
            n = iterations if it == "last" else int(it)
            if not 1 <= n <= iterations:
                raise loaded.error(
                    f"iteration {it} of {stage!r} does not exist (1..{iterations})", where, name
                )
            producer_id = f"{stage}@{n}"
        elif iteration is None:
            raise loaded.error(
                f"stage {stage!r} is inside the loop: pick an iteration "
                f"({stage}@last or {stage}@N)",
                where,
                name,
            )
        else:
            producer_id = f"{stage}@{iteration}"
        if producer_id == f"{name}@{iteration}" and not previous:
            raise loaded.error(
                "a stage cannot take its own output (use `previous:` for the last iteration's)",
                where,
                name,
            )
    else:
        if it is not None:
            raise loaded.error(
                f"stage {stage!r} is not in the loop and has no iterations", where, name
            )
        if stage == name:
            raise loaded.error("a stage cannot take its own output", where, name)
        producer_id = stage
    op = resolve((top.get(stage) or loop[stage]).op)
    if output is None:
        if len(op.outputs) != 1:
            raise loaded.error(
                f"stage {stage!r} has outputs {', '.join(op.outputs)}: name one ({stage}.<output>)",
                where,
                name,
            )
        output = next(iter(op.outputs))
    if output not in op.outputs:
        raise loaded.error(
            f"stage {stage!r} has no output {output!r} (its outputs: {', '.join(op.outputs)})",
            where,
            name,
        )
    return producer_id, output, op.outputs[output]


def _check_schemas(graph: Graph):
    """Every connected input gets the kind and columns it needs, following passthrough
    outputs, before anything runs."""
    produced: dict[tuple[str, str], dict[str, str]] = {}
    for node in graph.nodes.values():
        received: dict[str, dict[str, str]] = {}
        for inp, (src, output) in node.inputs.items():
            port, have = node.op.inputs[inp], graph.nodes[src].op.outputs[output]
            where = node.input_where[inp]
            if port.kind != have.kind:
                raise graph.loaded.error(
                    f"input {inp!r} expects a {port.describe()}, but {src}.{output} is a "
                    f"{have.describe()}",
                    where,
                    node.stage,
                )
            if isinstance(port, Dataset):
                columns = received[inp] = produced[(src, output)]
                for col, typ in port.columns.items():
                    if col not in columns:
                        raise graph.loaded.error(
                            f"input {inp!r} needs column {col!r} ({typ}), which {src}.{output} "
                            f"does not produce (it produces {', '.join(columns) or 'no declared columns'})",
                            where,
                            node.stage,
                        )
                    if "any" not in (typ, columns[col]) and logical_type(typ) != logical_type(
                        columns[col]
                    ):
                        raise graph.loaded.error(
                            f"input {inp!r} needs column {col!r} of type {typ}, but {src}.{output} "
                            f"produces {columns[col]}",
                            where,
                            node.stage,
                        )
        for output, port in node.op.outputs.items():
            if isinstance(port, Dataset):
                carried = received.get(port.passthrough, {}) if port.passthrough else {}
                produced[(node.id, output)] = {**carried, **port.columns}


def _resources(default: DefaultResources, stage: StageSpec) -> DefaultResources:
    r = stage.resources
    return DefaultResources(
        cpus=default.cpus if r.cpus is None else r.cpus,
        gpus=default.gpus if r.gpus is None else r.gpus,
        memory=default.memory if r.memory is None else r.memory,
        custom={**default.custom, **r.custom},
    )
