"""The operator contract: what an operator declares (ports, params, resources, version) and
what it receives when it runs. Operators import this module and nothing else of the engine.

    class Double(Operator):
        version = "1"
        inputs = {"numbers": Dataset({"x": "int64"})}
        outputs = {"numbers": Dataset({"x": "int64"})}

        class Params(Params):
            factor: int = 2

        def run(self, ctx, numbers):
            return numbers.with_columns(pl.col("x") * ctx.params.factor)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict

from .errors import InputError

__all__ = [
    "Context",
    "Dataset",
    "DefaultResources",
    "FilePath",
    "InputError",
    "METRIC_COLUMNS",
    "Metric",
    "Metrics",
    "Model",
    "Operator",
    "Params",
    "RegularFile",
    "Unkeyed",
    "device_for",
    "directory_params",
    "file_params",
    "logical_type",
    "unkeyed_params",
]


class Params(BaseModel):
    """Base of every operator's params: frozen, unknown keys are errors, and values are
    taken as the spec's YAML types them (strict): `true` is no integer, `"3"` no number,
    `3.0` no integer; an integer is accepted where a float is declared."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


AnyParams = Params  # for annotations inside Operator, whose `Params` is its own class


class _File:
    """Marks a param as a path: resolved beside the spec, and its content (not its path) is
    part of the stage's key. A FilePath names a regular file or a directory (a model's); a
    RegularFile only a regular file, checked before anything is read."""

    def __init__(self, directories: bool):
        self.directories = directories


FilePath = Annotated[str, _File(directories=True)]
RegularFile = Annotated[str, _File(directories=False)]


class _Unkeyed:
    """Marks a param that decides how a stage runs, never what it computes (how many
    workers share it): left out of the stage's key, so that changing it re-runs nothing.
    Use it only where the output is the same for every value (a test should show it)."""


Unkeyed = _Unkeyed()  # e.g.  workers: Annotated[int, Unkeyed] = 1


def unkeyed_params(params_model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, f in params_model.model_fields.items()
        if any(isinstance(m, _Unkeyed) for m in f.metadata)
    ]


def file_params(params_model: type[BaseModel]) -> list[str]:
    """Names of the params declared as FilePath or RegularFile (or Optional of them)."""
    return [
        name for name, f in params_model.model_fields.items() if _marker(f.annotation, f.metadata)
    ]


def directory_params(params_model: type[BaseModel]) -> list[str]:
    """Names of the path params that may name a directory (FilePath)."""
    return [
        name
        for name, f in params_model.model_fields.items()
        if getattr(_marker(f.annotation, f.metadata), "directories", False)
    ]


def _marker(annotation: Any, metadata: Sequence[Any] = ()) -> _File | None:
    found = next((m for m in metadata if isinstance(m, _File)), None)
    if found:
        return found
    return next(
        filter(None, (_marker(a, getattr(a, "__metadata__", ())) for a in get_args(annotation))),
        None,
    )


# Arrow type names are compared by meaning: polars writes large_string where pyarrow writes
# string, and both are the same column to an operator.
_SYNONYMS = {
    "float64": "double",
    "float32": "float",
    "float16": "halffloat",
    "boolean": "bool",
    "large_string": "string",
    "string_view": "string",
    "utf8": "string",
    "large_utf8": "string",
    "large_binary": "binary",
    "binary_view": "binary",
    "large_list": "list",
    "list_view": "list",
}


def logical_type(arrow_type: object) -> str:
    t = str(arrow_type).replace(" not null", "")
    m = re.fullmatch(r"(?:large_list|list_view|list)<(?:[^:<>]+: )?(.*)>", t)
    if m:
        return f"list<{logical_type(m.group(1))}>"
    return _SYNONYMS.get(t, t)


@dataclass(frozen=True)
class Dataset:
    """A table port. `columns` are the columns (and Arrow types) that must be present;
    more may be. A type of "any" accepts every type."""

    columns: dict[str, str] = field(default_factory=dict)
    optional: bool = False
    # for an output: it also carries every column of this input (e.g. samples keep the
    # columns of their prompts), which the engine follows when it checks schemas
    passthrough: str | None = None
    kind: ClassVar[str] = "dataset"

    def describe(self) -> str:
        return "dataset(" + ", ".join(f"{k}: {v}" for k, v in self.columns.items()) + ")"


METRIC_COLUMNS = {"kind": "string", "slice": "string", "value": "float64", "n": "int64"}


@dataclass(frozen=True)
class Metric:
    """How a report shows one kind of row of a metrics table.

    show: "score" is a proportion of `n` trials, shown with its 95% interval for the whole
    (slice `all`) and each slice; the first score is the report's headline, the one the
    plot draws. "share" is a value per slice. "source" is a note naming each slice with its
    n (where the data came from). `short` heads the per-slice columns (default: `label`),
    `slices` gives short names to known slices, in the order to show them; `whole` says the
    kind has only the slice `all` (one number per iteration); `percent` shows values as %."""

    label: str
    show: str = "share"
    short: str | None = None
    slices: dict[str, str] = field(default_factory=dict)
    whole: bool = False
    percent: bool = True

    def __post_init__(self) -> None:
        if self.show not in ("score", "share", "source"):
            raise ValueError(f"Metric {self.label!r}: show is score, share or source")


@dataclass(frozen=True)
class Metrics(Dataset):
    """A metrics table port (columns kind, slice, value, n): one row per kind and slice,
    e.g. ("score", "all", 0.8, 200). `kinds` declares how reports show each kind (in that
    order; undeclared kinds follow as shares), `axis` names the headline on a plot."""

    columns: dict[str, str] = field(default_factory=lambda: dict(METRIC_COLUMNS))
    kinds: dict[str, Metric] = field(default_factory=dict)
    axis: str = "score"


@dataclass(frozen=True)
class Model:
    """A directory port: a model (config, safetensors weights, tokenizer) or any files."""

    optional: bool = False
    kind: ClassVar[str] = "model"

    def describe(self) -> str:
        return "model directory"


Port = Dataset | Model


@dataclass(frozen=True)
class DefaultResources:
    cpus: float = 1
    gpus: float = 0
    memory: int | None = None
    custom: dict[str, float] = field(default_factory=dict)


class _NoShards:
    def get(self, i: int) -> None:
        return None

    def put(self, i: int, table: Any) -> None:
        pass


class Context:
    """What an operator gets besides its inputs: validated params, where to write directory
    outputs, the stage's name (for messages), its resources, and a way to report progress.
    Anything that changes an output must come through params, which the key covers: the
    loop's iteration reaches an operator only as its `iteration` param."""

    def __init__(
        self,
        params: Params,
        stage: str,
        output_dirs: dict[str, Path],
        resources: DefaultResources,
        shards: Callable[[str], Any] | None = None,
        storage: Callable[[str], tuple | None] | None = None,
    ):
        self.params = params
        self.stage = stage
        self.resources = resources
        self._output_dirs = output_dirs
        self._shards = shards
        self._storage = storage  # name -> (filesystem or None, path) kept under the key
        self._last_report = 0.0

    def shards(self, name: str = "part") -> Any:
        """A log of this stage's committed shards (`get(i)` -> Arrow table or None,
        `put(i, table)`), kept in the store under the stage's key until its output is
        published: a stage killed in the middle computes, when run again, only the shards
        it had not committed. Shard i must depend on nothing but the inputs and params (so a
        resumed run's output is the uninterrupted run's). Outside the engine it keeps
        nothing."""
        return self._shards(name) if self._shards else _NoShards()

    def checkpoint_dir(self, name: str = "state") -> Path | None:
        """A local directory kept under the stage's key until its output is published, for
        an operator's own checkpoints: a stage killed in the middle finds there what it
        saved. None where the store cannot give one (an object store) or outside the
        engine: the operator then runs without checkpoints."""
        where = self._storage(name) if self._storage else None
        if where is None or where[0] is not None:
            return None
        path = Path(where[1])
        path.mkdir(parents=True, exist_ok=True)
        return path

    def map(
        self,
        worker: Callable[[dict], Callable[[int, Any], Any]],
        config: dict,
        chunks: Sequence[Any],
        *,
        name: str = "part",
        workers: int = 1,
        landed: Callable[[int, Any], None] | None = None,
    ) -> list:
        """Apply `worker(config)` (one object per worker: a model loaded once) to every
        chunk, `worker(index, chunk) -> Arrow table`, on `workers` data-parallel workers
        that each hold this stage's resources (Ray actors; this process with one worker or
        outside Ray). Each chunk's table is committed as shard `index` of `name` as it lands
        (`landed(index, table)` is told), and committed shards are read back instead of
        recomputed. Chunk i's table must depend only on chunk i and `config`: then the
        output is the same for any number of workers. The operator's class says how many
        workers its params ask for (`parallel_workers`), so that its own task holds none of
        their resources. `worker` must be a module-level class."""
        from .parallel import map_chunks

        r = self.resources
        return map_chunks(
            worker,
            config,
            chunks,
            shards=self.shards(name),
            workers=workers,
            cpus=r.cpus,
            gpus=r.gpus,
            landed=landed,
            log=self.log,
        )

    def train(
        self,
        loop: Callable[[dict, Any], None],
        config: dict,
        *,
        workers: int = 1,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 0,
        backend: str = "ray",
        output: str = "model",
    ) -> dict:
        """Run `loop(config, session)` on `workers` data-parallel workers (Ray Train), or
        as one worker in this process (backend "local"), and return the metrics the loop
        finished with.
        The session (stardag.training.TrainSession) gives the worker its rank, device and
        checkpoints, kept under the stage's key so that a killed training resumes; rank 0's
        final model becomes the output `output`. `loop` must be a module-level function
        (it is sent to the workers) and `config` plain data."""
        from .training import Scaling, train

        storage = self._storage(f"{output}-training") if self._storage else None
        return train(
            loop,
            config,
            Scaling(workers, cpus_per_worker, gpus_per_worker),
            backend,
            storage,
            self.output_dir(output),
        )

    def output_dir(self, name: str) -> Path:
        """The empty directory to write the model output `name` into."""
        return self._output_dirs[name]

    def progress(self, done: int, total: int | None = None, unit: str = "", **info: Any) -> None:
        """Report progress; printed at most every 2 s (and at the end)."""
        now = time.monotonic()
        if now - self._last_report < 2 and (total is None or done < total):
            return
        self._last_report = now
        of = f"/{total}" if total else ""
        extra = "".join(f", {_info(k, v)}" for k, v in info.items())
        from .logs import say

        say(
            f"  {self.stage}: {done}{of} {unit}{extra}",
            stage=self.stage,
            done=done,
            total=total,
            unit=unit,
            info=extra,
        )

    def log(self, message: str) -> None:
        from .logs import say

        say(f"  {self.stage}: {message}")


def _info(name: str, value: Any) -> str:
    """`tokens_per_s=15800.0` reads `15.8k tokens/s`; `loss=0.12345` reads `loss 0.123`."""
    from .humanize import number, rate

    if name.endswith("_per_s") and isinstance(value, (int, float)):
        return rate(value, name.removesuffix("_per_s"))
    return f"{name} {number(value)}" if isinstance(value, float) else f"{name} {value}"


class Operator:
    """Subclass and declare `inputs`, `outputs`, `Params`, `version`, `resources`; implement
    `run(ctx, **inputs)`. Dataset inputs arrive as polars DataFrames, model inputs as local
    directory Paths. Return a DataFrame/Arrow table for a single dataset output, or a dict of
    them by output name; model outputs are written into `ctx.output_dir(name)`.

    Raise `InputError` for input the user has to fix (a malformed row of a data file, a
    model path holding no model), naming the file and line: the run stops with the stage's
    name and exit status 2, as for an invalid spec, and no traceback.

    Module-level imports of an operator's module must stay light (no torch, transformers or
    ray): the engine imports operators to plan, and a fully cached run must not pay for them.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}
    resources: ClassVar[DefaultResources] = DefaultResources()
    Params: ClassVar[type[Params]] = Params

    def run(self, ctx: Context, **inputs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def parallel_workers(cls, params: AnyParams) -> int:
        """How many data-parallel workers (`ctx.map`, `ctx.train`) a run with these params
        starts, each holding the stage's resources. Above 1, the stage's own task asks for
        no CPU or GPU: it only orchestrates."""
        return 1


def device_for(gpus: float) -> str:
    """The device for work given `gpus`: a GPU only where torch sees one (a logical GPU,
    declared by a Ray cluster on a CPU machine, runs on the CPU)."""
    if not gpus:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
