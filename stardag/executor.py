"""Running a planned graph: the driver walks the DAG, computes each node's key once its
inputs are known (so an input that re-ran into the same bytes cuts off everything below
it), answers from the store where it can, and sends the rest to a runner: Ray tasks with the
stage's resources (default) or this process (`local`, for tests and debugging)."""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import logs
from .errors import CorruptArtifact, InputError, StageFailed, StardagError, StoreError
from .graph import Graph, Node
from .humanize import seconds
from .planner import input_hashes, node_key, provenance, stale_causes
from .store import Store

# --- the task: runs wherever the runner puts it ------------------------------------------


@dataclass(frozen=True)
class Payload:
    """What a stage's task gets: everything it needs to run the operator and publish its
    outputs, in plain values (it crosses to a Ray worker)."""

    store: str
    node: str
    iteration: int | None
    key: str
    target: str
    params: dict
    inputs: dict[str, dict]  # input name -> {"key", "output", "kind"}
    resources: Any
    sys_path: list[str]
    manifest: dict  # the manifest's parts known before the stage runs
    mark: bool = False  # the worker's lines are marked for the user (see logs)
    said: str | None = None  # the token its last line carries (see logs.drain)


@dataclass(frozen=True)
class Outcome:
    """What a stage's task returns: the published manifest, or why there is none."""

    manifest: dict | None = None
    error: str | None = None
    traceback: str | None = None
    corrupt: str | None = None  # the key of a corrupt input: quarantined, to recompute
    bad_input: bool = False  # the user's input is wrong (no traceback)

    @classmethod
    def failed(cls, error: str, **why: Any) -> Outcome:
        return cls(error=error, **why)


def run_stage(payload: Payload) -> Outcome:
    """Load inputs, run the operator, publish its outputs. Never raises for a stage that
    failed and never leaves a staging directory behind. Its last line for the user carries
    the payload's `said` token (see logs.drain)."""
    try:
        return _run_stage(payload)
    finally:
        if payload.said:
            logs.say("", said=payload.said)


def _run_stage(payload: Payload) -> Outcome:
    for p in payload.sys_path:
        if p not in sys.path:
            sys.path.insert(0, p)
    logs.marking = payload.mark  # this worker's lines for the user
    store = Store(payload.store)
    try:
        return Outcome(manifest=_compute(payload, store))
    except CorruptArtifact as e:
        return Outcome.failed(str(e), corrupt=e.key)
    except InputError as e:  # the user's input is wrong: the message says where, no traceback
        return Outcome.failed(str(e), bad_input=True)
    except StoreError as e:  # the store failed (full, read-only, gone): its message says how
        return Outcome.failed(str(e))
    except BaseException as e:  # the operator's failure is reported, not raised through Ray
        from .interrupt import by_signal

        if isinstance(e, KeyboardInterrupt) and by_signal():  # the user's, not the operator's
            raise
        if isinstance(e, SystemExit):
            error = f"the operator called sys.exit({e.code!r})"
        else:
            error = (
                f"{type(e).__name__}: {e}" if str(e) else f"the operator raised {type(e).__name__}"
            )
        return Outcome.failed(error, traceback=traceback.format_exc())


def _compute(payload: Payload, store: Store) -> dict:
    """Run the operator on its inputs and publish what it returns; the published manifest."""
    from .graph import keyed_files
    from .operator import Context, Dataset
    from .registry import resolve

    op = resolve(payload.target)
    # validated strictly at compile time; this rebuilds them from their JSON form
    params = op.Params.model_validate(payload.params, strict=False)
    keyed = payload.manifest["record"]["params"]
    _same_files(keyed_files(op, payload.params, keyed), keyed, "before the stage ran")
    inputs: dict[str, Any] = {}
    untouched: dict[str, tuple[str, Path, dict]] = {}
    for name, src in payload.inputs.items():
        if src["kind"] == "dataset":
            import polars as pl

            inputs[name] = pl.from_arrow(store.read_table(src["key"], src["output"]))
        else:
            inputs[name] = store.model_dir(src["key"], src["output"])
            untouched[name] = (src["key"], inputs[name], _listing(inputs[name]))
    with store.staging(payload.key) as staging:
        model_outputs = {
            n: staging.output_dir(n) for n, p in op.outputs.items() if not isinstance(p, Dataset)
        }
        ctx = Context(
            params,
            payload.node,
            model_outputs,
            payload.resources,
            shards=lambda name: store.shards(payload.key, name),
            storage=lambda name: _under(store.shards(payload.key, name).location(), name),
        )
        started = time.time()
        result = op().run(ctx, **inputs)
        seconds = time.time() - started
        for name, (key, path, before) in untouched.items():
            _unchanged_input(store, name, key, path, before)
        _same_files(keyed_files(op, payload.params, keyed), keyed, "while the stage ran")
        outputs = {}
        for name, port in op.outputs.items():
            if isinstance(port, Dataset):
                outputs[name] = store.write_table(staging, name, _output_table(op, name, result))
            else:
                outputs[name] = store.seal_directory(staging, name)
        published = store.publish(
            staging,
            {
                **payload.manifest,
                "outputs": outputs,
                "timings": {"started": started, "seconds": round(seconds, 4)},
                "host": platform.node(),
                "libraries": _libraries(),
            },
        )
    store.drop_partial(payload.key)
    return published


def _under(location: tuple, name: str) -> tuple:
    fs, base = location
    return fs, f"{base}/{name}"


def _same_files(now: dict, keyed: dict, when: str):
    """An artifact is stored under the content its file params had when it was keyed, so a
    file that changed in the meantime stops the stage (the next run keys the new content)."""
    for name, value in keyed.items():
        if now.get(name) != value:
            files = value if isinstance(value, list) else [value]
            raise InputError(
                f"param {name!r}: {', '.join(f.get('file', '?') for f in files)} "
                f"changed {when}; nothing was stored: run again to use the new "
                "content"
            )


def _listing(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under a directory, with its size and modification time."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(root, f))
            out[os.path.relpath(os.path.join(root, f), path)] = (st.st_size, st.st_mtime_ns)
    return out


def _unchanged_input(store: Store, name: str, key: str, path: Path, before: dict):
    """A model input is a published artifact that other stages share: an operator that
    writes into it fails, and the artifact is set aside to be recomputed, so nothing ever
    reads the changed copy."""
    after = _listing(path)
    if after == before:
        return
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(f for f in set(after) & set(before) if after[f] != before[f])
    what = "; ".join(
        f"{verb} {', '.join(files[:3])}" + (" ..." if len(files) > 3 else "")
        for verb, files in (("added", added), ("removed", removed), ("changed", changed))
        if files
    )
    store.set_aside_input(key, path, f"an operator wrote into it ({what})")
    raise InputError(
        f"the operator wrote into its input {name!r} ({what}); inputs are "
        "read-only: write into ctx.output_dir(...) instead. The input artifact "
        "was set aside and will be recomputed"
    )


def _output_table(op, name: str, result):
    import pyarrow as pa

    from .operator import Dataset, logical_type

    if isinstance(result, dict):
        if name not in result:
            raise ValueError(f"operator returned no output {name!r} (got {', '.join(result)})")
        value = result[name]
    elif sum(isinstance(p, Dataset) for p in op.outputs.values()) == 1:
        value = result
    else:
        raise ValueError("an operator with several outputs must return a dict of them")
    if hasattr(value, "to_arrow"):
        value = value.to_arrow()
    if not isinstance(value, pa.Table):
        raise TypeError(
            f"output {name!r} must be a polars DataFrame or Arrow table, not {type(value).__name__}"
        )
    for col, typ in op.outputs[name].columns.items():
        if col not in value.column_names:
            raise ValueError(f"output {name!r} lacks declared column {col!r}")
        field_type = value.schema.field(col).type
        if typ != "any" and pa.types.is_null(field_type) and not value.num_rows:
            # an empty column built from an empty list has no type yet: give it the declared one
            i = value.column_names.index(col)
            value = value.set_column(i, col, pa.array([], type=_arrow_type(typ)))
            continue
        have = logical_type(field_type)
        if typ != "any" and have != logical_type(typ):
            raise ValueError(
                f"output {name!r} column {col!r} is {have}, declared {typ}"
                + (
                    ""
                    if value.num_rows
                    else " (the table is empty; its columns "
                    "must have the declared types all the same)"
                )
            )
    return value


def _arrow_type(name: str):
    """The Arrow type a port declares by name (`int64`, `string`, `list<string>`)."""
    import pyarrow as pa

    if name.startswith(("list<", "large_list<")) and name.endswith(">"):
        return pa.list_(_arrow_type(name[name.index("<") + 1 : -1]))
    return pa.type_for_alias(name)


def _libraries() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("pyarrow", "polars", "torch", "transformers", "ray"):
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", "?")
    return out


# --- runners --------------------------------------------------------------------------


class LocalRunner:
    """Runs stages one at a time in this process."""

    def __init__(self):
        self._done: list[tuple[str, Outcome]] = []

    def submit(self, node_id: str, payload: Payload, node: Node):
        self._done.append((node_id, run_stage(payload)))

    def wait(self, timeout: float | None = None) -> list[tuple[str, Outcome]]:
        done, self._done = self._done, []
        return done

    def busy(self) -> int:
        return len(self._done)

    def close(self):
        pass


def ray_init_kwargs(address: str | None) -> dict[str, Any]:
    """What `ray.init` gets: a Ray started here serves its dashboard and job server on
    127.0.0.1 only; joining a cluster (`--address`) keeps that cluster's settings."""
    kwargs: dict[str, Any] = dict(
        address=address, log_to_driver=True, logging_level="WARNING", configure_logging=True
    )
    if address is None:
        kwargs.update(include_dashboard=True, dashboard_host="127.0.0.1")
    return kwargs


def check_address(address: str):
    """A cluster address that names no reachable host fails now, in one line: Ray itself
    retries for minutes."""
    import socket

    from .store import timeout

    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in hostport:
        raise StardagError(f"--address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout()) as sock:
            if os.environ.get("RAY_USE_TLS", "0") in ("0", ""):
                # Ray speaks gRPC: an HTTP/2 server answers the client preface with SETTINGS
                settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty frame
                sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings)
                head = sock.recv(9)
                if len(head) < 4 or head[3] != 4:
                    raise StardagError(
                        f"{address} is not a Ray cluster (it does not answer as a gRPC server)"
                    )
    except TimeoutError:
        raise StardagError(
            f"cannot reach the Ray cluster at {address}: no answer within "
            f"{timeout():g}s (--timeout)"
        ) from None
    except OSError as e:
        raise StardagError(
            f"cannot reach the Ray cluster at {address}: {e.strerror or e}"
        ) from None


WORKER_RETRIES = 2
DRAIN_S = 30.0  # the longest wait, at the end of a run, for Ray to forward stages' last lines
CORRUPT_RETRIES = 2  # how often a stage's corrupt input is recomputed before the run fails
POLL_S = 1.0  # how often a run waiting on another run's stage looks for its result


class Leases:
    """The leases this run holds on the keys it computes, renewed in the background until
    released: another run sharing the store waits for the result instead of computing it
    again, and takes over if this run dies (its lease expires, or on this host, its process
    is gone)."""

    def __init__(self, store: Store, ttl: float | None = None):
        import threading
        import uuid

        self.store = store
        self.ttl = ttl or float(os.environ.get("STARDAG_LEASE_TTL", "60"))
        self.owner = f"{platform.node()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True, name="stardag-leases")
        self._thread.start()

    def acquire(self, key: str) -> dict | None:
        holder = self.store.acquire_lease(key, self.owner, self.ttl)
        if holder is None:
            self.held.add(key)
        return holder

    def release(self, key: str):
        if key in self.held:
            self.held.discard(key)
            try:
                self.store.release_lease(key, self.owner)
            except StardagError:
                pass  # it expires on its own

    def _renew(self):
        while not self._stop.wait(self.ttl / 3):
            for key in list(self.held):
                try:
                    self.store.renew_lease(key, self.owner, self.ttl)
                except StardagError:
                    pass

    def close(self):
        self._stop.set()
        for key in list(self.held):
            self.release(key)


class RayRunner:
    """Each stage is a Ray task with the stage's resources; independent stages overlap."""

    def __init__(self, address: str | None, sys_path: list[str]):
        import ray

        from . import interrupt

        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            if address is not None:
                check_address(address)
            os.environ["PYTHONPATH"] = os.pathsep.join(
                sys_path + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            )
            os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
            # Ray runs task workers at nice 15; here they are the pipeline's work, and on a
            # busy machine they would get almost no CPU next to anything at nice 0
            os.environ.setdefault("RAY_worker_niceness", "0")
            ours = interrupt.installed()
            try:
                ray.init(**ray_init_kwargs(address))
            except Exception as e:  # Ray raises ConnectionError, ValueError, RuntimeError...
                what = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise StardagError(
                    "cannot start or join Ray" + (f" at {address}" if address else "") + f": {what}"
                ) from None
            if ours:  # Ray installs its own SIGTERM handler, which dumps the C++ stacks
                interrupt.install()
        self._task = ray.remote(run_stage)
        self._inflight: dict[Any, str] = {}
        self._said: dict[Any, str | None] = {}  # the token a task's last line carries
        self._refused: list[tuple[str, Outcome]] = []

    def submit(self, node_id: str, payload: Payload, node: Node):
        r = node.resources
        # a worker that dies (a killed process, a lost node) is retried, and the stage
        # resumes from its committed shards; an operator's error is a result, never retried
        options: dict[str, Any] = {
            "num_cpus": r.cpus,
            "num_gpus": r.gpus,
            "max_retries": WORKER_RETRIES,
            "retry_exceptions": False,
            "name": f"stardag:{node_id}",
        }
        if r.memory:
            options["memory"] = r.memory
        if r.custom:
            options["resources"] = dict(r.custom)
        if node.op.parallel_workers(node.params) > 1:
            # the stage's workers each hold its resources; its own task only orchestrates and
            # must hold none of what they need (a 1-GPU machine would wait forever)
            options.update(num_cpus=0, num_gpus=0)
            options.pop("memory", None)
            options.pop("resources", None)
        need = {
            k: v
            for k, v in {
                "CPU": r.cpus,
                "GPU": r.gpus,
                "memory": r.memory,
                **(r.custom or {}),
            }.items()
            if v
        }
        if not self._fits(need):
            have = "; ".join(
                ", ".join(
                    f"{k} {v:g}"
                    for k, v in sorted(n.items())
                    if not k.startswith(("node:", "object_store"))
                )
                for n in self._nodes()
            )
            wanted = ", ".join(f"{k} {v:g}" for k, v in need.items())
            if self.started_here:  # nothing will ever add a node: say so now
                self._refused.append(
                    (
                        node_id,
                        Outcome.failed(
                            f"it needs {wanted}, and no node of this Ray has that much ({have}): "
                            "lower the stage's resources, or run it on a cluster with --address"
                        ),
                    )
                )
                return
            logs.say(
                f"  {node_id}: needs {wanted}, which no node of the cluster has now ({have}); "
                "waiting for one (an autoscaler) to join"
            )
        said = uuid.uuid4().hex if payload.mark else None
        ref = self._task.options(**options).remote(replace(payload, said=said))
        self._inflight[ref] = node_id
        self._said[ref] = said

    def _nodes(self) -> list[dict]:
        return [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]

    def _fits(self, need: dict) -> bool:
        return any(all(res.get(k, 0) >= v for k, v in need.items()) for res in self._nodes())

    def wait(self, timeout: float | None = None) -> list[tuple[str, Outcome]]:
        if self._refused:
            out, self._refused = self._refused, []
            return out
        ready, _ = self.ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            node_id = self._inflight.pop(ref)
            said = self._said.pop(ref, None)
            try:
                out.append((node_id, self.ray.get(ref)))
                if said:
                    logs.expect(said)
            except Exception as e:  # a worker that died, or Ray itself failing
                out.append((node_id, Outcome.failed(f"{type(e).__name__}: {e}")))
        return out

    def busy(self) -> int:
        return len(self._inflight) + len(self._refused)

    def close(self):
        if not logs.drain(DRAIN_S):
            logs.say(f"warning: Ray forwarded no end line of a stage in {DRAIN_S} s")
        if self.started_here:
            self.ray.shutdown()


# --- the driver -----------------------------------------------------------------------


@dataclass
class NodeResult:
    node: str
    status: str  # "cached", "computed", "cutoff" (planned to run, found cached)
    key: str
    seconds: float = 0.0
    manifest: dict = field(default_factory=dict, repr=False)
    started: float = field(default=0.0, repr=False)  # monotonic, while it runs


@dataclass
class RunResult:
    spec: str
    nodes: dict[str, NodeResult]
    seconds: float = 0.0  # from the run's start until its last stage ended

    def computed(self) -> list[str]:
        return [n for n, r in self.nodes.items() if r.status == "computed"]

    def cached(self) -> list[str]:
        return [n for n, r in self.nodes.items() if r.status != "computed"]


class Progress:
    """A run's lines: `[  n/total] node  what`; a sweep's point names itself after the node."""

    def __init__(self, enabled: bool, total: int, label: str | None = None):
        self.enabled, self.total, self.n, self.label = enabled, total, 0, label
        self.t0 = time.monotonic()
        self.last: float | None = None  # when the last node finished

    def line(self, node: str, what: str, **event):
        if self.label is not None:
            node = f"{node} [{self.label}]"
        if what.startswith("running"):  # for the live display on a terminal
            event = {"started": node, "total": self.total}
        elif "finished" in event:
            event["finished"] = node
        if self.enabled:
            logs.say(f"[{self.n:>3}/{self.total}] {node:<24} {what}", **event)

    def finished(self, node: str, what: str):
        self.n += 1
        self.last = time.monotonic()
        self.line(node, what, finished=node, n=self.n, total=self.total)


def execute(
    graph: Graph,
    store: Store,
    selected: list[str],
    force: set[str],
    runner_factory: Callable[[], Any],
    sys_path: list[str],
    progress: bool = True,
) -> RunResult:
    """Run the selected nodes (in topological order). Starts the runner only if some node
    must really be computed."""
    (outcome,) = execute_together(
        [Job(graph, store, selected, force)], runner_factory, sys_path, progress
    )
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@dataclass
class Job:
    """One run in `execute_together`: a graph, where it is stored, what to run of it."""

    graph: Graph
    store: Store
    selected: list[str]
    force: set[str]
    label: str | None = None  # how its lines are told apart from the other runs'


def execute_together(
    jobs: list[Job],
    runner_factory: Callable[[], Any],
    sys_path: list[str],
    progress: bool = True,
) -> list[RunResult | StageFailed]:
    """Run several graphs at once on one runner (a sweep's points): independent stages of
    all of them run side by side as the runner's resources allow, and a stage two of them
    share (the same key) is computed once, by one, while the other waits for it. A failing
    graph stops launching its own stages; the others go on. Each graph's result, or the
    failure that stopped it, in the order given; each leaves its own run record."""
    pool = Pool(runner_factory)
    drivers = [Driver(job, pool, sys_path, progress) for job in jobs]
    for store in {d.store.uri: d.store for d in drivers}.values():
        store.clean_tmp()
    stopped: BaseException | None = None
    try:
        drive(drivers, pool)
    except KeyboardInterrupt as e:
        stopped = e
        raise
    finally:
        pool.close()
        for d in drivers:
            d.record(stopped)
    return [d.failure or RunResult(d.graph.name, d.results, d.seconds()) for d in drivers]


def drive(drivers: list[Driver], pool: Pool):
    """The rounds: every driver answers from the store or launches what is ready, and looks
    again at what it waits for; then the runner's finished stages go back to their drivers."""
    while any(d.active() for d in drivers) or pool.busy():
        finished_before = sum(d.show.n for d in drivers)
        launched = False
        for d in drivers:
            launched |= d.ready()
            launched |= d.recheck_waiting()
        progressed = sum(d.show.n for d in drivers) != finished_before
        if progressed and any(d.active() for d in drivers):
            continue  # what was found may make more nodes ready: launch them before waiting
        waiting = any(d.waiting for d in drivers)
        if pool.busy():
            for d, node_id, out in pool.wait(timeout=POLL_S if waiting else None):
                d.collect(node_id, out)
            continue
        if waiting:
            time.sleep(POLL_S)
        elif any(d.active() for d in drivers) and not launched:  # nothing found either
            stuck = [n for d in drivers for n in d.pending]
            raise StardagError(f"internal: nothing runnable, pending {stuck}")


class Pool:
    """What the drivers of a run share: the runner (made when a stage first must really
    run), the leases per store, and which driver computes which key."""

    def __init__(self, runner_factory: Callable[[], Any]):
        self.runner_factory = runner_factory
        self.runner: Any = None
        self.leases: dict[str, Leases] = {}
        # (store, key) -> the driver and node computing it
        self.computing: dict[tuple[str, str], tuple[Driver, str]] = {}
        self._sent: dict[str, tuple[Driver, str]] = {}  # runner id -> (driver, node)

    def acquire(self, store: Store, key: str) -> dict | None:
        """None if this run now holds the key's lease; else who holds it."""
        if store.uri not in self.leases:
            self.leases[store.uri] = Leases(store)
        return self.leases[store.uri].acquire(key)

    def release(self, store: Store, key: str):
        self.computing.pop((store.uri, key), None)
        if store.uri in self.leases:
            self.leases[store.uri].release(key)

    def submit(self, driver: Driver, node_id: str, key: str, payload: Payload):
        if self.runner is None:
            self.runner = self.runner_factory()
        rid = node_id if driver.label is None else f"{node_id} [{driver.label}]"
        while rid in self._sent:
            rid += "'"
        self._sent[rid] = (driver, node_id)
        self.computing[(driver.store.uri, key)] = (driver, node_id)
        self.runner.submit(rid, payload, driver.nodes[node_id])

    def busy(self) -> bool:
        return self.runner is not None and bool(self.runner.busy())

    def wait(self, timeout: float | None) -> list[tuple[Driver, str, Outcome]]:
        return [(*self._sent.pop(rid), out) for rid, out in self.runner.wait(timeout=timeout)]

    def close(self):
        for leases in self.leases.values():
            leases.close()
        if self.runner is not None:
            self.runner.close()


class Driver:
    """One run of a graph. Each round it answers from the store, or launches, every node
    whose inputs are known (`ready`), looks again at the nodes another run (or another
    point of a sweep) is computing (`recheck_waiting`), and takes in what the runner
    finished (`collect`); a stage that found an input corrupt has it recomputed, then runs
    again (`retry_corrupt`)."""

    def __init__(self, job: Job, pool: Pool, sys_path: list[str], progress: bool = True):
        self.graph, self.store, self.nodes = job.graph, job.store, job.graph.nodes
        self.force, self.label, self.pool = job.force, job.label, pool
        self.sys_path, self.progress = sys_path, progress
        self.pending = list(job.selected)
        self.waiting: dict[str, tuple[str, dict]] = {}  # node -> (key, hashes): another has it
        self.manifests: dict[str, dict | None] = {}  # None: running
        self.results: dict[str, NodeResult] = {}
        self.retries: dict[str, int] = {}
        self.failure: StageFailed | None = None
        self.show = Progress(progress, len(job.selected), job.label)

    def seconds(self) -> float:
        """From the start until this run's last stage ended (or now)."""
        return (self.show.last or time.monotonic()) - self.show.t0

    def active(self) -> bool:
        return self.failure is None and bool(self.pending or self.waiting)

    def ready(self) -> bool:
        """Answer from the store, or launch, each pending node whose inputs are all known.
        True if one was launched."""
        launched = False
        for node_id in list(self.pending):
            node = self.nodes[node_id]
            if self.failure or any(self.manifests.get(dep) is None for dep in node.deps):
                continue
            self.pending.remove(node_id)
            hashes = input_hashes(node, self.manifests)
            key = node_key(node, hashes).digest
            manifest = self._stored(node_id, key)
            try:
                refreshed = manifest is None and refresh_files(node)
            except InputError as e:
                self.failure = StageFailed(node_id, node.op_ref, str(e), bad_input=True)
                continue
            if refreshed:
                # a file param changed since the spec was read: key what it holds now
                key = node_key(node, hashes).digest
                manifest = self._stored(node_id, key)
            if manifest is not None:
                self.found(node_id, key, hashes, manifest, "cached")
            else:
                launched |= self.launch(node_id, key, hashes)
        return launched

    def recheck_waiting(self) -> bool:
        """The nodes another run is computing: take its result once published, or compute
        it here once its lease is gone. True if one was launched."""
        launched = False
        for node_id, (key, hashes) in list(self.waiting.items()):
            if self.failure:
                self.waiting.clear()
                break
            manifest = self.store.manifest(key)
            if manifest is not None:
                self.waiting.pop(node_id)
                self.found(node_id, key, hashes, manifest, "cached (computed by another run)")
            else:
                launched |= self.launch(node_id, key, hashes)
        return launched

    def launch(self, node_id: str, key: str, hashes: dict) -> bool:
        """Submit the stage, unless another run, or another driver of this one, is
        computing its key: then wait for it."""
        self.manifests[node_id] = None
        here = self.pool.computing.get((self.store.uri, key))
        holder = None if here is not None else self.pool.acquire(self.store, key)
        if here is not None or holder is not None:
            if node_id not in self.waiting:
                if here is not None:
                    driver, other = here
                    who = other + (f" [{driver.label}]" if driver.label is not None else "")
                    what = f"{who} is computing the same key"
                else:
                    what = (
                        "another run is computing it "
                        f"({(holder or {}).get('host')} pid {(holder or {}).get('pid')})"
                    )
                self.show.line(node_id, f"waiting: {what}")
            self.waiting[node_id] = (key, hashes)
            return False
        self.waiting.pop(node_id, None)
        manifest = self._stored(node_id, key)  # published meanwhile?
        if manifest is not None:
            self.pool.release(self.store, key)
            self.found(node_id, key, hashes, manifest, "cached (computed by another run)")
            return False
        node = self.nodes[node_id]
        causes, _ = stale_causes(
            node, self.store.read_ref(self.graph.name, node_id), hashes, node_id in self.force
        )
        self.show.line(node_id, f"running ({', '.join(causes) or 'missing'})")
        self.results[node_id] = NodeResult(node_id, "running", key, started=time.monotonic())
        self.pool.submit(self, node_id, key, self._payload(node, key, hashes))
        return True

    def collect(self, node_id: str, out: Outcome):
        """Take in a stage the runner finished: published, or failed."""
        res = self.results[node_id]
        res.seconds = time.monotonic() - res.started
        self.pool.release(self.store, res.key)
        if out.manifest is None:
            if not self.retry_corrupt(node_id, out):
                self._failed(node_id, res, out)
            return
        self.manifests[node_id] = out.manifest
        res.status, res.manifest = "computed", out.manifest
        _write_ref(
            self.store,
            self.graph,
            self.nodes[node_id],
            res.key,
            out.manifest["record"]["inputs"],
            out.manifest,
        )
        rows = [f"{v['rows']} rows" for v in out.manifest["outputs"].values() if "rows" in v]
        self.show.finished(
            node_id,
            f"done in {seconds(res.seconds)}" + (f" ({', '.join(rows)})" if rows else ""),
        )

    def retry_corrupt(self, node_id: str, out: Outcome) -> bool:
        """An input the stage read was corrupt: it is quarantined now. Recompute it, then
        the stage (twice at most). True if that was arranged."""
        if not out.corrupt or self.retries.get(node_id, 0) >= CORRUPT_RETRIES:
            return False
        self.retries[node_id] = self.retries.get(node_id, 0) + 1
        bad = [p for p, m in self.manifests.items() if m and m.get("key") == out.corrupt]
        for p in [*bad, node_id]:
            self.manifests.pop(p)
            self.results.pop(p, None)
            self.pending.append(p)
        order = list(self.nodes)
        self.pending.sort(key=order.index)
        self.show.line(node_id, f"input corrupt; recomputing {', '.join(bad)}")
        return True

    def found(self, node_id: str, key: str, hashes: dict, manifest: dict, how: str):
        self.manifests[node_id] = manifest
        self.results[node_id] = NodeResult(node_id, "cached", key, manifest=manifest)
        _write_ref(self.store, self.graph, self.nodes[node_id], key, hashes, manifest)
        self.show.finished(node_id, how)

    def record(self, stopped: BaseException | None):
        """The run's history entry (a run that did nothing at all leaves none)."""
        if self.pool.runner is not None or self.failure or stopped or self.results:
            from .interrupt import cause

            _record(
                self.graph,
                self.store,
                self.results,
                time.monotonic() - self.show.t0,
                self.failure or stopped and (cause(stopped) or "interrupted"),
            )

    def _stored(self, node_id: str, key: str) -> dict | None:
        return None if node_id in self.force else self.store.manifest(key)

    def _failed(self, node_id: str, res: NodeResult, out: Outcome):
        if out.traceback and self.progress:
            print(out.traceback, file=sys.stderr)
        self.show.finished(node_id, f"FAILED after {seconds(res.seconds)}")
        self.failure = self.failure or StageFailed(
            node_id, self.nodes[node_id].op_ref, out.error or "failed", bad_input=out.bad_input
        )

    def _payload(self, node: Node, key: str, hashes: dict) -> Payload:
        inputs = {}
        for inp, (producer, output) in node.inputs.items():
            m = self.manifests[producer]
            assert m is not None  # its inputs are known before a node launches
            inputs[inp] = {"key": m["key"], "output": output, "kind": m["outputs"][output]["kind"]}
        return Payload(
            store=self.store.uri,
            node=node.id,
            iteration=node.iteration,
            key=key,
            target=node.target,
            params=node.params_json,
            inputs=inputs,
            resources=node.resources,
            sys_path=self.sys_path,
            mark=logs.marking,
            manifest={
                "spec": self.graph.name,
                "stage": node.stage,
                "iteration": node.iteration,
                "op": node.op_ref,
                "record": node_key(node, hashes).to_json(),
                "code_identity": provenance(node),
                "inputs": {k: {"key": inputs[k]["key"], "content_hash": hashes[k]} for k in inputs},
            },
        )


def refresh_files(node: Node) -> bool:
    """Hash the node's file params again; True (and the node re-keyed) if one changed."""
    from .graph import keyed_files

    now = keyed_files(node.op, node.params_json, node.key_params)
    if now == node.key_params:
        return False
    node.key_params = now
    return True


def _record(graph: Graph, store: Store, results: dict[str, NodeResult], wall: float, failure):
    """A run's history entry: the overrides and the resolved spec, what each stage did and
    how long it took as the driver saw it, beside the operator's own time
    (runs/<spec>/<time>.json; `stardag runs` lists them)."""
    from .resolved import as_json

    nodes = {
        n: {
            "status": r.status,
            "wall_s": round(r.seconds, 4) if r.status == "computed" else 0.0,
            "operator_s": r.manifest.get("timings", {}).get("seconds", 0.0)
            if r.status == "computed"
            else 0.0,
        }
        for n, r in results.items()
    }
    loaded = graph.loaded
    store.write_run(
        graph.name,
        {
            "spec": graph.name,
            "spec_file": str(loaded.path),
            "overrides": list(loaded.overrides),
            "resolved": as_json(loaded.raw),
            "started": round(time.time() - wall, 3),
            "finished": time.time(),
            "wall_s": round(wall, 3),
            "failed": str(failure) if failure else None,
            "log": str(logs.current) if logs.current else None,
            "nodes": nodes,
        },
    )


def _write_ref(store: Store, graph: Graph, node: Node, key: str, hashes: dict, manifest: dict):
    store.write_ref(
        graph.name,
        node.id,
        {
            "key": key,
            "record": node_key(node, hashes).to_json(),
            "code_identity": provenance(node),
            "outputs": {k: v["content_hash"] for k, v in manifest["outputs"].items()},
        },
    )
