"""Pipeline specs: YAML read with a safe loader, `extends` and `--set` overrides merged,
validated by frozen pydantic models; every error names the file, the line and the stage."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import SpecError, did_you_mean

Origins = dict  # a key path into the spec, e.g. ("stages", "train", "params", "lr") -> (file, line)

STAGE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
MAX_VALUES = 100_000  # values a spec file may expand to, aliases included
MAX_DEPTH = 64  # how deep mappings and lists may nest (the YAML reader recurses)
MAX_NAME = 128  # characters of a stage or spec name: names become file names in the store
MAX_MEMORY = 2**63 - 1  # bytes: Ray keeps resource amounts as 64-bit integers


class _Frozen(BaseModel):
    # strict: a value must have the type declared (`iterations: true` is no integer); an
    # integer is accepted where a float is
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Resources(_Frozen):
    """What a stage asks Ray for. None means the operator's default."""

    cpus: float | None = Field(None, ge=0, allow_inf_nan=False)
    gpus: float | None = Field(None, ge=0, allow_inf_nan=False)
    memory: int | None = Field(
        None, ge=0, le=MAX_MEMORY, description="bytes; '4GB'-style strings accepted"
    )
    custom: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = {}

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, v):
        if isinstance(v, str):
            m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*((?:[KMGT]i?)?B?)\s*", v, re.I)
            if not m:
                raise ValueError(f"cannot read memory size {v!r} (use e.g. 512MB or 4GB)")
            unit = m.group(2).upper().rstrip("B").rstrip("I")
            size = float(m.group(1)) * 1024 ** " KMGT".index(unit or " ")
            if size > MAX_MEMORY:  # also infinity, for a number of hundreds of digits
                raise ValueError(
                    f"memory size {v[:20]!r}... is larger than {MAX_MEMORY:,} bytes"
                    if len(v) > 20
                    else f"memory size {v!r} is larger than {MAX_MEMORY:,} bytes"
                )
            return int(size)
        return v


class PreviousRef(_Frozen):
    """A loop stage's input from the previous iteration, `initial` for the first."""

    previous: str
    initial: str


InputRef = Union[str, PreviousRef]


class StageSpec(_Frozen):
    op: str
    inputs: dict[str, InputRef] = {}
    params: dict[str, Any] = {}
    resources: Resources = Resources()


class LoopSpec(_Frozen):
    iterations: int = Field(ge=1, le=1000)
    stages: dict[str, StageSpec]


class Spec(_Frozen):
    name: str
    store: str | None = None
    description: str | None = None
    # the versions of the libraries each operator's code imports (torch, transformers, ...)
    # are recorded and `plan` notes when one changed; true makes such a change re-run it
    libraries_in_key: bool = False
    stages: dict[str, StageSpec] = {}
    loop: LoopSpec | None = None
    # `stardag run` runs the grid of these values (key path -> values), as --sweep does
    sweep: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    # experiment trackers every run logs to, e.g. {mlflow: {uri: mlruns}} (as --track)
    tracking: dict[str, dict[str, Any] | None] = {}


class LoadedSpec:
    """A validated spec plus where each of its values came from."""

    def __init__(
        self, spec: Spec, origins: Origins, path: Path, raw: dict, overrides: tuple[str, ...] = ()
    ):
        self.spec, self.origins, self.path, self.raw = spec, origins, path, raw
        self.overrides = overrides  # the --set texts, in order (the run record keeps them)

    def where(self, key_path: tuple) -> tuple[str | None, int | None]:
        """The (file, line) of the deepest known prefix of key_path."""
        for n in range(len(key_path), 0, -1):
            if key_path[:n] in self.origins:
                return self.origins[key_path[:n]]
        return str(self.path), None

    def error(self, message: str, key_path: tuple, stage: str | None = None) -> SpecError:
        file, line = self.where(key_path)
        return SpecError(message, file, line, stage)

    @property
    def loop_stages(self) -> dict[str, StageSpec]:
        return dict(self.spec.loop.stages) if self.spec.loop else {}

    def stage_path(self, name: str) -> tuple:
        return ("loop", "stages", name) if name in self.loop_stages else ("stages", name)


# --- YAML with line numbers -------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """The safe loader, reading exponent floats as YAML 1.2 does: `1e-3`, `2E5` and `1.5e3`
    are numbers (YAML 1.1 wants a dot and a signed exponent, and would read strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


_OPEN = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _too_deep(text: str) -> int | None:
    """The line where `text` nests mappings and lists deeper than MAX_DEPTH, or None.
    (The scanner does not recurse; the composer does, and would overflow the stack.)"""
    depth = 0
    for token in yaml.scan(text, Loader=_Loader):
        if isinstance(token, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                return token.start_mark.line + 1
        elif isinstance(token, _CLOSE):
            depth -= 1
    return None


def not_regular_file(path: Path) -> str | None:
    """What `path` is if it is not a regular file (a FIFO would block the reader forever)."""
    import stat

    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return None
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _load_yaml(path: Path) -> tuple[Any, Origins]:
    try:
        kind = not_regular_file(path)
        if kind:
            raise SpecError(f"the spec is {kind}, not a file", str(path))
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError("spec file not found", str(path)) from None
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", str(path)) from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise SpecError(
            f"spec is not UTF-8 text (byte {e.object[e.start]:#04x})", str(path), line
        ) from None
    try:
        deep = _too_deep(text)
        if deep is not None:
            raise SpecError(
                f"invalid YAML: mappings and lists nested more than {MAX_DEPTH} levels deep",
                str(path),
                deep,
            )
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and context_mark:
            problem += f" ({context} from line {context_mark.line + 1})"
            if mark is None or mark.index >= len(text.rstrip()):
                mark = context_mark  # "end of stream": the line that was left open
        raise SpecError(
            f"invalid YAML: {problem}", str(path), mark.line + 1 if mark else None
        ) from None
    if node is None:
        raise SpecError("spec is empty", str(path))
    origins: Origins = {}
    constructor = _Loader("")
    open_nodes: set[int] = set()  # collections being built: an alias to one is a loop
    top_line = [1]  # the line of the top-level key being built
    plain = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}

    def build(n, key_path, line):
        origins[key_path] = (str(path), line)  # a mapping value's line is its key's
        if len(key_path) == 1:
            top_line[0] = line
        if len(origins) > MAX_VALUES:  # aliases of aliases grow exponentially ("billion laughs")
            raise SpecError(
                f"the spec expands to more than {MAX_VALUES:,} values (YAML aliases "
                "that repeat aliases?)",
                str(path),
                top_line[0],
            )
        if type(n) in plain:
            if n.tag != plain[type(n)]:
                raise SpecError(
                    f"YAML tag {n.tag} is not supported", str(path), n.start_mark.line + 1
                )
            if id(n) in open_nodes:
                raise SpecError(
                    "a YAML alias refers to a mapping or list that contains it", str(path), line
                )
            open_nodes.add(id(n))
            try:
                return build_collection(n, key_path)
            finally:
                open_nodes.discard(id(n))
        return scalar(n)

    def scalar(n):
        try:
            return constructor.construct_object(n)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise SpecError(
                f"invalid YAML value: {problem}", str(path), n.start_mark.line + 1
            ) from None
        except ValueError:  # Python reads integers of up to 4300 digits
            raise SpecError(
                f"invalid YAML value: {_too_long(n.value)}", str(path), n.start_mark.line + 1
            ) from None

    def build_collection(n, key_path):
        if isinstance(n, yaml.MappingNode):
            out, merged = {}, {}
            for k, v in n.value:
                if k.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: keys given here win
                    sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
                    for src in sources:
                        value = build(src, key_path, k.start_mark.line + 1)
                        if not isinstance(value, dict):
                            raise SpecError(
                                "a merge key (<<) must name a mapping",
                                str(path),
                                k.start_mark.line + 1,
                            )
                        merged.update({mk: mv for mk, mv in value.items() if mk not in merged})
                    continue
                key = scalar(k)
                if not isinstance(key, (str, int, float, bool)):
                    raise SpecError(
                        "mapping keys must be plain scalars", str(path), k.start_mark.line + 1
                    )
                # `yes:`, `no:`, `on:`, `off:` are YAML 1.1 booleans: as keys, the text meant
                key = k.value if isinstance(key, bool) else str(key)
                if key in out:
                    raise SpecError(f"duplicate key {key!r}", str(path), k.start_mark.line + 1)
                out[key] = build(v, key_path + (key,), k.start_mark.line + 1)
            return {**{mk: mv for mk, mv in merged.items() if mk not in out}, **out}
        return [build(v, key_path + (i,), v.start_mark.line + 1) for i, v in enumerate(n.value)]

    return build(node, (), node.start_mark.line + 1), origins


def _too_long(text: str) -> str:
    digits = sum(c.isdigit() for c in text)
    return f"a number of {digits} digits is too long (at most 4300)"


# --- merging: extends and --set ---------------------------------------------------------


def structural(at: tuple) -> bool:
    """Whether the mapping at key path `at` is the spec's structure (merged key by key by
    `extends` and `--set`) rather than a value (replaced whole): the spec, `stages`, the
    loop and its `stages`, a stage, and a stage's `params`, `inputs`, `resources` and
    `resources.custom`. A param's value that is a mapping (`mix: {1: 0.5}`) and an input's
    `{previous, initial}` are values."""
    stage, inside = _split_stage(at)
    if stage is not None:
        return inside in ((), ("params",), ("inputs",), ("resources",), ("resources", "custom"))
    return at in ((), ("stages",), ("loop",), ("loop", "stages"))


def _merge(base: Any, over: Any, base_origins: Origins, over_origins: Origins, at: tuple):
    """Merge the spec's structure key by key (`structural`); a null in the override deletes
    the key; anything else, a mapping-valued param included, replaces whole."""
    if isinstance(base, dict) and isinstance(over, dict) and structural(at):
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
                _drop(base_origins, at + (k,))
            elif k in out:
                out[k] = _merge(out[k], v, base_origins, over_origins, at + (k,))
            else:
                out[k] = v
                _copy(over_origins, base_origins, at + (k,))
        if at in over_origins:
            base_origins.setdefault(at, over_origins[at])
        return out
    _drop(base_origins, at)
    _copy(over_origins, base_origins, at)
    return over


def _drop(origins: Origins, at: tuple):
    for k in [k for k in origins if k[: len(at)] == at]:
        del origins[k]


def _copy(src: Origins, dst: Origins, at: tuple):
    for k, v in src.items():
        if k[: len(at)] == at:
            dst[k] = v


def _resolve(path: Path) -> Path:
    try:
        return path.resolve(strict=True)
    except FileNotFoundError:
        return path.resolve()  # reported as not found by the reader
    except (RuntimeError, OSError) as e:  # RuntimeError: a loop, before Python 3.13
        if isinstance(e, RuntimeError) or e.errno == errno.ELOOP:
            raise SpecError("the spec path is a loop of symbolic links", str(path)) from None
        raise SpecError(f"cannot read spec: {e.strerror}", str(path)) from None


def _read_with_extends(path: Path, seen: tuple = ()) -> tuple[dict, Origins]:
    path = _resolve(path)
    data, origins = _load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping of keys (name, stages, loop, ...)", str(path), 1)
    parent = data.pop("extends", None)
    if parent is None:
        return data, origins
    if not isinstance(parent, str):
        raise SpecError("`extends` must be a path to a spec file", *origins[("extends",)])
    parent_path = path.parent / parent
    try:
        kind = not_regular_file(parent_path)
    except FileNotFoundError:
        raise SpecError(
            f"`extends` names a missing file: {parent}", *origins[("extends",)]
        ) from None
    except OSError as e:
        why = "a loop of symbolic links" if e.errno == errno.ELOOP else e.strerror
        raise SpecError(f"`extends` names {why}: {parent}", *origins[("extends",)]) from None
    if kind:
        raise SpecError(
            f"`extends` names {kind}, not a spec file: {parent}", *origins[("extends",)]
        )
    if parent_path.resolve() in seen + (path,):
        start = (seen[0] if seen else path).parent
        chain = " -> ".join(os.path.relpath(p, start) for p in seen + (path, parent_path.resolve()))
        raise SpecError(f"`extends` forms a cycle: {chain}", *origins[("extends",)])
    base, base_origins = _read_with_extends(parent_path, seen + (path,))
    _drop(origins, ("extends",))
    merged = _merge(base, data, base_origins, origins, ())
    return merged, base_origins


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """`stages.train.params.lr=1e-3` -> (("stages", "train", "params", "lr"), 0.001)."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise SpecError(f"override {text!r} is not of the form key.path=value", "--set")
    parts = tuple(key.split("."))
    if any(not p for p in parts):
        raise SpecError(f"override key {key!r} has an empty part", "--set")
    try:
        if any(
            isinstance(t, (yaml.AliasToken, yaml.AnchorToken))
            for t in yaml.scan(value, Loader=_Loader)
        ):
            raise SpecError(
                f"override {text!r}: a value given with --set cannot use YAML "
                "anchors or aliases (& or *)",
                "--set",
            )
        if _too_deep(value) is not None:
            raise SpecError(
                f"override {text!r}: value nests mappings and lists more than "
                f"{MAX_DEPTH} levels deep",
                "--set",
            )
        parsed = yaml.load(value, Loader=_Loader) if value.strip() else ""
    except ValueError:  # an integer of more than 4300 digits
        raise SpecError(f"override {key}=...: {_too_long(value)}", "--set") from None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(
            f"override {text!r}: value is not valid YAML ({problem})", "--set"
        ) from None
    return parts, parsed


def _split_stage(key_path: tuple) -> tuple[str | None, tuple]:
    """(stage name, key path inside the stage) for a path into a stage, else (None, path)."""
    if len(key_path) >= 2 and key_path[0] == "stages":
        return key_path[1], key_path[2:]
    if len(key_path) >= 3 and key_path[:2] == ("loop", "stages"):
        return key_path[2], key_path[3:]
    return None, key_path


def _model_at(at: tuple) -> type[BaseModel] | None:
    """The model that validates the mapping at key path `at`, if any."""
    stage, inside = _split_stage(at)
    if stage is not None:
        if len(inside) == 2 and inside[0] == "inputs":
            return PreviousRef
        in_stage: dict[tuple, type[BaseModel]] = {(): StageSpec, ("resources",): Resources}
        return in_stage.get(inside)
    top: dict[tuple, type[BaseModel]] = {(): Spec, ("loop",): LoopSpec}
    return top.get(at)


def _apply_override(data: dict, origins: Origins, text: str):
    parts, value = parse_override(text)
    node = data
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, dict) and part not in node:
            parent = parts[depth - 1] if depth else None
            if parent == "stages":
                raise SpecError(_unknown("stage", part, node), "--set " + text)
            model = _model_at(parts[:depth])
            if (model in (Spec, StageSpec) and part in model.model_fields) or parent in (
                "params",
                "resources",
            ):
                node[part] = {}
                origins[parts[: depth + 1]] = ("--set " + text, None)
            else:
                known = set(node) | set(model.model_fields if model else ())
                hint = did_you_mean(part, known)
                raise SpecError(
                    f"no key {'.'.join(parts[: depth + 1])!r} in the spec{hint}", "--set " + text
                )
        node = node[part] if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise SpecError(f"{'.'.join(parts[: depth + 1])!r} is not a mapping", "--set " + text)
    where = ("--set " + text, None)
    if value is None:
        node.pop(parts[-1], None)
        _drop(origins, parts)
        return
    if isinstance(node.get(parts[-1]), dict) and isinstance(value, dict) and structural(parts):
        # the same rule as `extends`: the spec's structure merges key by key
        given = {parts + k: where for k in _key_paths(value)}
        node[parts[-1]] = _merge(node[parts[-1]], value, origins, given, parts)
        return
    node[parts[-1]] = value
    _drop(origins, parts)
    origins[parts] = where


def _key_paths(value: Any, at: tuple = ()) -> list[tuple]:
    """Every key path inside a mapping given as one value, itself (()) included."""
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _key_paths(v, at + (k,))
    return out


def _unknown(kind: str, name: str, known) -> str:
    return f"unknown {kind} {name!r}{did_you_mean(name, known)}"


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedSpec:
    path = Path(path)
    data, origins = _read_with_extends(path)
    for text in overrides:
        _apply_override(data, origins, text)
    loaded = LoadedSpec(None, origins, path.resolve(), data, tuple(overrides))  # type: ignore[arg-type]
    try:
        spec = Spec.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        err = errors[0]
        if "str" in err["loc"] and isinstance(err.get("input"), dict):
            # an input given as a mapping: report why it is not a `previous` mapping
            err = next((x for x in errors if "PreviousRef" in x["loc"]), err)
        if err["type"] == "missing":  # a misspelt key shows as missing + unknown: name the typo
            err = next(
                (
                    x
                    for x in errors
                    if x["type"] == "extra_forbidden" and x["loc"][:-1] == err["loc"][:-1]
                ),
                err,
            )
        loc = tuple(str(x) for x in err["loc"])
        # pydantic adds union-member names (e.g. 'str', 'PreviousRef') to the location
        key_path = tuple(x for x in loc if x not in ("str", "PreviousRef"))
        stage = _split_stage(key_path)[0]
        raise loaded.error(_describe(err, key_path), key_path, stage) from None
    names = list(spec.stages) + (list(spec.loop.stages) if spec.loop else [])
    for name in names:
        where = (
            ("loop", "stages", name) if spec.loop and name in spec.loop.stages else ("stages", name)
        )
        if not STAGE_NAME.match(name):
            raise loaded.error(
                "stage names must be letters, digits, '_' or '-' and start with a letter or '_'",
                where,
                name,
            )
        if len(name) > MAX_NAME:
            raise loaded.error(
                f"stage names must be at most {MAX_NAME} characters (this one has {len(name)})",
                where,
                name[:40] + "...",
            )
        if spec.loop and name in spec.loop.stages and name in spec.stages:
            raise loaded.error("a stage name is used both inside and outside the loop", where, name)
    if not STAGE_NAME.match(spec.name):
        raise loaded.error("the spec name must be letters, digits, '_' or '-'", ("name",))
    if len(spec.name) > MAX_NAME:
        raise loaded.error(
            f"the spec name must be at most {MAX_NAME} characters (it has {len(spec.name)})",
            ("name",),
        )
    loaded.spec = spec
    return loaded


def _describe(err: Mapping[str, Any], key_path: tuple) -> str:
    # within a stage, name the field from the stage: the error already names the stage
    stage, rel = _split_stage(key_path)
    field = ".".join(rel) or ("stage" if stage else "spec")
    if err["type"] == "extra_forbidden":
        model = _model_at(key_path[:-1])
        known = model.model_fields if model else []
        return _unknown("key", key_path[-1], known)
    if err["type"] == "missing":
        return f"missing required key {field!r}"
    if "str" in err["loc"]:
        return (
            f"{field}: expected an input reference (stage[.output][@N|@last]) or a mapping "
            f"{{previous: stage, initial: stage}} (got {err.get('input')!r:.60})"
        )
    if err["type"] in ("model_type", "dict_type"):
        what = "the stage" if field == "stage" else repr(field)
        got = "is empty" if err.get("input") is None else f"is {err.get('input')!r:.60}"
        return f"{what} {got}: expected a mapping" + (
            " with at least `op:`" if field == "stage" else ""
        )
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] != "value_error" and not isinstance(err.get("input"), (dict, list)):
        msg += f" (got {err.get('input')!r:.60})"
    return f"{field}: {msg}"
