"""Running a pipeline on a Ray cluster as a Ray Job: `stardag submit` sends the spec's
directory to the cluster (runtime_env `working_dir`) and starts `stardag run` there;
`stardag status` and `stardag logs` ask the cluster's job server about it.

The job's driver runs on the cluster, so the store it writes must be one that every node,
and you afterwards, can reach: a shared filesystem path or an object store URI. A store
path relative to the spec would land inside the job's temporary copy of the directory, and
is refused.

Ray's token authentication works as for `ray job`: with `RAY_AUTH_MODE=token` in the
environment, the token (`RAY_AUTH_TOKEN`, the file named by `RAY_AUTH_TOKEN_PATH`, or
`~/.ray/auth_token`) is sent with every request. The token is never put into the job's
environment: the cluster has its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SpecError, StardagError

# never sent with a job: virtual environments, stores, VCS data, caches
EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    ".stardag",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "*.egg-info",
    ".ipynb_checkpoints",
]


def job_server_address(address: str | None) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS (as `ray job` reads them)."""
    found = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not found:
        raise StardagError(
            "no cluster address: give --address http://HEAD:8265 (the head "
            "node's dashboard port) or set RAY_API_SERVER_ADDRESS"
        )
    return found


@contextlib.contextmanager
def _errors(address: str) -> Iterator[None]:
    """Ray's client errors as one message each."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as e:
        first = str(e).splitlines()[0]
        if "Invalid" in first or "Forbidden" in first:
            raise StardagError(
                f"the cluster at {address} refused the request ({first}): "
                "RAY_AUTH_TOKEN (or the token file) is not the cluster's token; "
                "`ray get-auth-token` on the head node prints it"
            ) from None
        raise StardagError(
            f"the cluster at {address} refused the request ({first}). It uses token "
            "authentication: export RAY_AUTH_MODE=token and the cluster's token as "
            "RAY_AUTH_TOKEN (or in the file named by RAY_AUTH_TOKEN_PATH, or in "
            "~/.ray/auth_token); `ray get-auth-token` on the head node prints it"
        ) from None
    except ConnectionError as e:
        raise StardagError(
            f"cannot reach the Ray job server at {address} "
            f"({str(e).rstrip('.')}). Is the "
            "address the head node's dashboard port (default 8265)?"
        ) from None
    except (RuntimeError, ValueError) as e:
        message = str(e)
        if "status code 404" in message:
            message = message.split(": ", 1)[-1]
            raise StardagError(f"{address}: {message.rstrip('.')}") from None
        raise StardagError(f"Ray job server at {address}: {message}") from None


def client(address: str | None):
    """A JobSubmissionClient for the address. Ray lets $RAY_API_SERVER_ADDRESS and
    $RAY_ADDRESS override an explicit address; here the explicit one wins."""
    import logging

    from ray.job_submission import JobSubmissionClient

    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)
    addr = job_server_address(address)
    saved = {
        k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if k in os.environ
    }
    try:
        with _errors(addr):
            c = JobSubmissionClient(addr)
    finally:
        os.environ.update(saved)
    c.stardag_address = addr  # type: ignore[attr-defined]  # where errors say it went
    return c


# --- what a job carries ------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_files(graph, working_dir: Path):
    """Every file the spec names by a relative path (the specs it extends, FilePath params)
    must travel with the job."""
    from .operator import file_params

    hint = (
        f"lies outside the directory sent with the job ({working_dir}): give --working-dir "
        "a directory that holds it"
    )
    for file in sorted({f for f, _ in graph.loaded.origins.values() if f and Path(f).is_file()}):
        if not _inside(Path(file).resolve(), working_dir):
            raise SpecError(f"extended spec {file} {hint}", str(graph.loaded.path))
    for node in graph.nodes.values():
        for name in file_params(node.op.Params):
            raw = getattr(node.params, name, None)
            values = raw if isinstance(raw, list) else [raw]
            resolved = node.params_json.get(name)
            resolved = resolved if isinstance(resolved, list) else [resolved]
            for value, file in zip(values, resolved):
                if value is None or Path(value).is_absolute():
                    continue  # an absolute path is taken to exist on the cluster
                if not _inside(Path(file).resolve(), working_dir):
                    file_, line = graph.loaded.where(
                        graph.loaded.stage_path(node.stage) + ("params", name)
                    )
                    raise SpecError(
                        f"param {name!r}: file {value} {hint}, or --set it to "
                        "an absolute path that exists on the cluster",
                        file_,
                        line,
                        node.stage,
                    )


def _read_runtime_env(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise SpecError(f"cannot read runtime env file: {e.strerror}", path) from None
    except yaml.YAMLError as e:
        raise SpecError(f"runtime env file is not valid YAML or JSON: {e}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(
            "a runtime env file holds a mapping (runtime_env keys: pip, env_vars, py_modules, ...)",
            path,
        )
    if "working_dir" in data:
        raise SpecError(
            "working_dir is set by stardag (the spec's directory, or "
            "--working-dir): remove it from the file",
            path,
        )
    return data


def runtime_env(
    working_dir: Path,
    runtime_env_file: str | None = None,
    pip: Sequence[str] = (),
    env: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> dict[str, Any]:
    """The job's runtime_env: a file's keys (if given), then the working dir, excludes, pip
    packages and environment variables from the command line."""
    out = _read_runtime_env(runtime_env_file) if runtime_env_file else {}
    out["working_dir"] = str(working_dir)
    out["excludes"] = list(dict.fromkeys([*EXCLUDES, *out.get("excludes", []), *excludes]))
    if pip:
        have = out.get("pip", [])
        if isinstance(have, dict):  # {"packages": [...], "pip_check": ...}
            out["pip"] = {**have, "packages": [*have.get("packages", []), *pip]}
        elif isinstance(have, list):
            out["pip"] = [*have, *pip]
        else:  # a requirements file's path
            raise SpecError(
                "--pip cannot be added to a `pip` given as a file name; list the "
                "packages in the runtime env file instead",
                runtime_env_file,
            )
    if env:
        env_vars = dict(out.get("env_vars", {}))
        for item in env:
            name, eq, value = item.partition("=")
            if not eq or not name:
                raise SpecError(f"--env {item!r}: give NAME=VALUE")
            env_vars[name] = value
        out["env_vars"] = env_vars
    return out


@dataclass
class Prepared:
    entrypoint: str
    runtime_env: dict[str, Any]
    store: str
    spec: str  # the spec's name


def prepare(
    spec_path: str,
    overrides: Sequence[str] = (),
    store: str | None = None,
    force: Sequence[str] = (),
    until: Sequence[str] = (),
    working_dir: str | None = None,
    runtime_env_file: str | None = None,
    pip: Sequence[str] = (),
    env: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> Prepared:
    """Check the spec here (it compiles, its files travel, its store is reachable from the
    cluster) and build the job's entrypoint and runtime_env."""
    from .graph import compile_spec
    from .spec import load_spec

    spec = Path(spec_path).resolve()
    loaded = load_spec(spec, tuple(overrides))  # a bad spec fails here, before any upload
    if str(spec.parent) not in sys.path:
        sys.path.insert(0, str(spec.parent))  # `module:Name` operators beside the spec
    graph = compile_spec(loaded)
    root = Path(working_dir).resolve() if working_dir else spec.parent
    if not root.is_dir():
        raise SpecError(f"--working-dir {working_dir}: not a directory")
    if not _inside(spec, root):
        raise SpecError(f"the spec is not inside --working-dir {root}", str(spec))
    _check_files(graph, root)
    # the store as given (not opened here: it is the cluster's to reach)
    uri = store or os.environ.get("STARDAG_STORE") or loaded.spec.store
    if not uri or not ("://" in uri or Path(uri).is_absolute()):
        where = "beside the spec" if not uri else f"relative ({uri})"
        raise SpecError(
            f"the store is a path {where}: a submitted job would write it on the cluster, "
            "inside a temporary copy of the spec's directory. Give --store an absolute path "
            "that every node and you can reach (a shared filesystem), or s3://bucket/prefix",
            str(spec),
        )
    args = ["stardag", "run", spec.relative_to(root).as_posix(), "--store", uri]
    for o in overrides:
        args += ["--set", o]
    for f in force:
        args += ["--force", f]
    for u in until:
        args += ["--until", u]
    return Prepared(
        shlex.join(args), runtime_env(root, runtime_env_file, pip, env, excludes), uri, graph.name
    )


# --- the job server ----------------------------------------------------------------------


def submit(c, prepared: Prepared, job_id: str | None = None) -> str:
    with _errors(c.stardag_address):
        try:
            return c.submit_job(
                entrypoint=prepared.entrypoint,
                runtime_env=prepared.runtime_env,
                submission_id=job_id,
                metadata={"stardag_spec": prepared.spec, "stardag_store": prepared.store},
            )
        except ValueError as e:  # e.g. the directory is over Ray's upload limit
            raise StardagError(f"cannot send {prepared.runtime_env['working_dir']}: {e}") from None


def info(c, job_id: str):
    with _errors(c.stardag_address):
        return c.get_job_info(job_id)


def logs(c, job_id: str) -> str:
    with _errors(c.stardag_address):
        return c.get_job_logs(job_id)


def follow(c, job_id: str, out=None) -> None:
    """Print the job's logs as they come, until it ends."""
    out = out or sys.stdout

    async def tail():
        async for chunk in c.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    with _errors(c.stardag_address):
        c.get_job_info(job_id)  # an unknown id is one error, not a websocket failure
        asyncio.run(tail())


def exit_code(job) -> int:
    """0 for a job that succeeded or is still going, else the driver's exit code (so a
    submitted run exits like `stardag run` would), or 1."""
    status = str(job.status)
    if status not in ("FAILED", "STOPPED"):
        return 0
    code = getattr(job, "driver_exit_code", None)
    return code if isinstance(code, int) and code > 0 else 1


def describe(job) -> str:
    status = str(job.status)
    lines = [f"{job.submission_id}  {status}"]
    if job.message:
        lines.append(f"  {job.message.strip().splitlines()[0]}")
    if job.entrypoint:
        lines.append(f"  entrypoint: {job.entrypoint}")
    if job.start_time:
        end = job.end_time or None
        took = f", {(end - job.start_time) / 1000:.1f}s" if end else ""
        lines.append(f"  started {_when(job.start_time)}{took}")
    return "\n".join(lines)


def as_json(job) -> str:
    return json.dumps(
        {
            "job_id": job.submission_id,
            "status": str(job.status),
            "message": job.message,
            "entrypoint": job.entrypoint,
            "start_time": job.start_time,
            "end_time": job.end_time,
            "driver_exit_code": getattr(job, "driver_exit_code", None),
            "metadata": job.metadata,
        },
        indent=1,
    )


def _when(ms: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
