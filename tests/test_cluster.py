"""Beyond one machine: a real two-node Ray cluster on this machine (head with resource
`node_a`, worker with `node_b`, token authentication on), `stardag run --address` placing
stages by their resources, and `stardag submit` / `status` / `logs` running a spec as a Ray
Job whose artifacts are the same as a local run's.

The cluster is stopped by terminating the `ray start --block` processes this module started
(and what is left of their descendants), by process id: `ray stop` would kill every Ray
process on the machine, other users' included."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import TESTS, write
from test_pipeline_e2e import SMALL as E2E_SMALL

import stardag
from stardag import api
from stardag import submit as sub
from stardag.errors import SpecError, StardagError

ROOT = TESTS.parent
BIN = Path(sys.executable).parent  # the venv's `ray` and `stardag`


# --- the cluster ----------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Cluster:
    gcs: str  # ray.init / `stardag run --address`
    jobs: str  # the job server, `stardag submit --address`
    token: str
    nodes: dict  # custom resource -> node id
    env: dict  # an environment that holds the token

    def cli(self, *args, env=None, cwd=None, timeout=180):
        """The real `stardag` command in a fresh process (no Ray state shared with pytest)."""
        e = {**self.env, **(env or {})}
        e = {k: v for k, v in e.items() if v is not None}
        return subprocess.run(
            [str(BIN / "stardag"), *map(str, args)],
            env=e,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _get(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _nodes(jobs: str, token: str) -> dict:
    data = _get(f"{jobs}/api/v0/nodes?detail=1", token)
    out = {}
    for n in data["data"]["result"]["result"]:
        if n["state"] == "ALIVE":
            for res in ("node_a", "node_b"):
                if res in n.get("resources_total", {}):
                    out[res] = n["node_id"]
    return out


def _stop(procs: list[subprocess.Popen]):
    """SIGTERM to the `ray start --block` processes (each stops the processes it started),
    then SIGKILL to whatever is left of their process trees after 30 s; by pid."""
    import psutil

    tree = []
    for proc in procs:
        try:
            tree += psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=max(0.1, deadline - time.monotonic()))
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def cluster():
    tmp = Path(tempfile.mkdtemp(prefix="sdc", dir="/tmp"))  # short: Ray's socket paths
    token = secrets.token_hex(16)
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "STARDAG_STORE", "RAY_AUTH_TOKEN_PATH")
    }
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # SIGTERM stops a node at once
        RAY_worker_niceness="0",  # stages are the work: not starved on a busy machine
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
    )
    (gcs, dash, client, *rest) = _free_ports(15)

    def node_ports(p):  # every port a node opens, so that nothing here meets another Ray
        return [
            "--dashboard-agent-listen-port",
            p[0],
            "--dashboard-agent-grpc-port",
            p[1],
            "--runtime-env-agent-port",
            p[2],
            "--metrics-export-port",
            p[3],
            "--node-manager-port",
            p[4],
            "--object-manager-port",
            p[5],
        ]

    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    head_cmd = [
        BIN / "ray",
        "start",
        "--head",
        "--port",
        gcs,
        "--dashboard-port",
        dash,
        "--ray-client-server-port",
        client,
        "--dashboard-host",
        "127.0.0.1",
        "--resources",
        '{"node_a": 1}',
        "--temp-dir",
        tmp / "a",
        *common,
        *node_ports(rest[:6]),
    ]
    worker_cmd = [
        BIN / "ray",
        "start",
        "--address",
        f"127.0.0.1:{gcs}",
        "--resources",
        '{"node_b": 1}',
        "--temp-dir",
        tmp / "b",
        *common,
        *node_ports(rest[6:12]),
    ]
    procs = []
    jobs = f"http://127.0.0.1:{dash}"
    try:
        for cmd, want in ((head_cmd, {"node_a"}), (worker_cmd, {"node_a", "node_b"})):
            with open(tmp / f"{len(procs)}.log", "w") as log:
                procs.append(
                    subprocess.Popen(
                        [str(c) for c in cmd],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + 90
            nodes = {}
            while set(nodes) != want:
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"ray start failed:\n{(tmp / f'{len(procs) - 1}.log').read_text()[-3000:]}"
                    )
                time.sleep(1)
                try:
                    nodes = _nodes(jobs, token)
                except OSError:
                    pass
        yield Cluster(f"127.0.0.1:{gcs}", jobs, token, nodes, env)
    finally:
        t0 = time.monotonic()
        _stop(procs)
        print(f"\ncluster stopped in {time.monotonic() - t0:.1f}s")
        shutil.rmtree(tmp, ignore_errors=True)


# --- a small project, as a user would have it --------------------------------------------

SPEC = """
name: cluster
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 50}
  scaled:
    op: engine_ops:Scale
    inputs: {table: numbers}
    params: {factor: 3}
    resources: {cpus: 1, custom: {node_b: 1}}
  words:
    op: cluster_ops:Lines
    params: {file: prompts/words.txt}
  weights:
    op: engine_ops:Weights
    inputs: {table: scaled}
    resources: {custom: {node_a: 1}}
  back:
    op: engine_ops:ReadWeights
    inputs: {model: weights}
    resources: {custom: {node_b: 1}}
  total:
    op: engine_ops:Sum
    inputs: {table: back}
  broken:
    op: engine_ops:Fail
    inputs: {table: numbers}
    params: {fail: false}
loop:
  iterations: 2
  stages:
    step:
      op: engine_ops:Step
      inputs: {table: {previous: step, initial: scaled}}
"""

WHERE = """
name: where
stages:
  numbers:
    op: engine_ops:Numbers
    params: {n: 7}
  on_a:
    op: cluster_ops:Where
    inputs: {table: numbers}
    params: {label: a}
    resources: {custom: {node_a: 1}}
  on_b:
    op: cluster_ops:Where
    inputs: {table: numbers}
    params: {label: b}
    resources: {cpus: 1, custom: {node_b: 1}}
"""


def project(tmp_path: Path) -> Path:
    """A directory with specs, their operator modules and a prompt file, and the things a
    job must not carry (a store, a virtual environment)."""
    d = tmp_path / "project"
    (d / "prompts").mkdir(parents=True)
    for name in ("engine_ops.py", "cluster_ops.py"):
        shutil.copy(TESTS / name, d / name)
    (d / "prompts" / "words.txt").write_text("alpha beta gamma\n")
    write(d / "spec.yaml", SPEC)
    write(d / "where.yaml", WHERE)
    (d / ".stardag").mkdir()
    (d / ".venv").mkdir()
    return d


def outputs(spec: Path, store: Path, overrides=()) -> dict:
    """node -> (key, content hash of each output), from the refs that the run which filled
    `store` wrote (not re-planned: operator code edited since would make everything stale)."""
    ld = api.load(spec, list(overrides), str(store))
    refs = {n: ld.store.read_ref(ld.graph.name, n) for n in ld.graph.nodes}
    assert all(refs.values()), [n for n, r in refs.items() if not r]
    return {n: (r["key"], r["outputs"]) for n, r in refs.items()}


# --- on the cluster ---------------------------------------------------------------------


@pytest.mark.ray
def test_a_stage_pinned_by_a_custom_resource_runs_on_the_node_that_has_it(cluster, tmp_path):
    d = project(tmp_path)
    store = tmp_path / "store"
    r = cluster.cli("run", "where.yaml", "--address", cluster.gcs, "--store", store, cwd=d)
    assert r.returncode == 0, r.stderr
    assert "3 stages, 3 computed" in r.stderr
    for stage, resource in (("on_a", "node_a"), ("on_b", "node_b")):
        row = stardag.read(d / "where.yaml", stage, store=str(store)).row(0, named=True)
        assert row["node_id"] == cluster.nodes[resource], stage
        assert json.loads(row["resources"])[resource] == 1.0
    assert cluster.nodes["node_a"] != cluster.nodes["node_b"]


PARALLEL = """
name: parallel
stages:
  squares:
    op: parallel_ops:Squares
    params: {n: 40, chunk: 5, workers: 2, record: RECORD}
"""


@pytest.mark.ray
def test_data_parallel_workers_land_on_both_nodes(cluster, tmp_path):
    d = project(tmp_path)
    shutil.copy(TESTS / "parallel_ops.py", d / "parallel_ops.py")
    record = tmp_path / "where.txt"
    write(d / "parallel.yaml", PARALLEL.replace("RECORD", str(record)))
    r = cluster.cli(
        "run", "parallel.yaml", "--address", cluster.gcs, "--store", tmp_path / "store", cwd=d
    )
    assert r.returncode == 0, r.stderr
    nodes = {line.split()[0] for line in record.read_text().splitlines()}
    assert nodes == {cluster.nodes["node_a"], cluster.nodes["node_b"]}
    local = stardag.run(
        d / "parallel.yaml", store=str(tmp_path / "local"), executor="local", progress=False
    )
    got = stardag.read(d / "parallel.yaml", "squares", store=str(tmp_path / "store"))
    assert got.equals(stardag.read(d / "parallel.yaml", "squares", store=str(tmp_path / "local")))
    assert local.computed() == ["squares"]


@pytest.mark.ray
def test_a_submitted_job_runs_to_the_end_with_the_artifacts_of_a_local_run(cluster, tmp_path):
    d = project(tmp_path)
    store = tmp_path / "cluster-store"
    t0 = time.monotonic()
    r = cluster.cli(
        "submit", "spec.yaml", "--address", cluster.jobs, "--store", store, "--no-wait", cwd=d
    )
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().splitlines()[-1]
    assert job.startswith("raysubmit_") and f"stardag logs {job}" in r.stderr

    r = cluster.cli("status", job, "--address", cluster.jobs)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:1] == [job] and r.stdout.split()[1] in (
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
    )
    r = cluster.cli("logs", job, "--address", cluster.jobs, "--follow")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cluster: 9 stages, 9 computed, 0 cached" in r.stdout
    assert f"job {job} SUCCEEDED" in r.stderr
    r = cluster.cli("status", job, "--address", cluster.jobs, "--json")
    info = json.loads(r.stdout)
    assert r.returncode == 0 and info["status"] == "SUCCEEDED" and info["driver_exit_code"] == 0
    assert info["entrypoint"] == f"stardag run spec.yaml --store {store}"
    print(f"submitted job: {time.monotonic() - t0:.1f}s")

    r = cluster.cli("run", "spec.yaml", "--executor", "local", "--store", tmp_path / "local", cwd=d)
    assert r.returncode == 0, r.stderr
    on_cluster, local = (
        outputs(d / "spec.yaml", store),
        outputs(d / "spec.yaml", tmp_path / "local"),
    )
    assert on_cluster == local and len(on_cluster) == 9
    assert stardag.read(d / "spec.yaml", "words", store=str(store))["line"].to_list() == [
        "alpha",
        "beta",
        "gamma",
    ]
    assert stardag.read(d / "spec.yaml", "total", store=str(store))["total"].to_list() == [
        3 * sum(range(50))
    ]

    # the logs of a finished job, without --follow
    r = cluster.cli("logs", job, "--address", cluster.jobs)
    assert r.returncode == 0 and "9 computed" in r.stdout


@pytest.mark.ray
def test_a_failing_job_exits_as_stardag_run_would(cluster, tmp_path):
    d = project(tmp_path)
    store = tmp_path / "store"
    job = f"broken-{secrets.token_hex(4)}"
    r = cluster.cli(
        "submit",
        "spec.yaml",
        "--address",
        cluster.jobs,
        "--store",
        store,
        "--set",
        "stages.broken.params.fail=true",
        "--until",
        "broken",
        "--job-id",
        job,
        cwd=d,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == job
    assert "stage 'broken' (op engine_ops:Fail) failed" in r.stdout
    assert f"job {job} FAILED" in r.stderr
    r = cluster.cli("status", job, "--address", cluster.jobs)
    assert r.returncode == 1 and "FAILED" in r.stdout


@pytest.mark.ray
def test_the_job_server_wants_the_clusters_token(cluster, tmp_path):
    r = cluster.cli(
        "status",
        "raysubmit_none",
        "--address",
        cluster.jobs,
        env={"RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None, "HOME": str(tmp_path)},
    )
    assert r.returncode == 1
    assert "token authentication" in r.stderr and "RAY_AUTH_MODE=token" in r.stderr
    r = cluster.cli(
        "status",
        "raysubmit_none",
        "--address",
        cluster.jobs,
        env={"RAY_AUTH_TOKEN": "not-the-token"},
    )
    assert r.returncode == 1 and "not the cluster's token" in r.stderr
    r = cluster.cli("status", "raysubmit_none", env={"RAY_API_SERVER_ADDRESS": cluster.jobs})
    assert r.returncode == 1 and "raysubmit_none does not exist" in r.stderr


# --- the default pipeline as a job --------------------------------------------------------

# tests/test_pipeline_e2e.py's size, with the base on one CPU (a node has one)
SMALL = [*E2E_SMALL, "stages.base.resources.cpus=1"]


@pytest.mark.ray
def test_the_default_pipeline_as_a_job_matches_a_local_run(cluster, tmp_path):
    """The default pipeline at CI size (the end-to-end test's, with a shorter pretraining)
    as a Ray Job on the two-node cluster, and the same locally: the same outputs."""
    spec = ROOT / "pipelines" / "star.yaml"
    small = [*SMALL, "stages.base.params.steps=150"]
    sets = [arg for s in small for arg in ("--set", s)]
    t0 = time.monotonic()
    r = cluster.cli(
        "submit",
        spec,
        "--address",
        cluster.jobs,
        "--store",
        tmp_path / "cluster",
        *sets,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    t1 = time.monotonic()
    r = cluster.cli("run", spec, "--store", tmp_path / "local", *sets, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"on the cluster {t1 - t0:.0f}s, local {time.monotonic() - t1:.0f}s")
    on_cluster = outputs(spec, tmp_path / "cluster", small)
    local = outputs(spec, tmp_path / "local", small)
    differ = sorted(n for n in on_cluster if on_cluster[n][1] != local[n][1])
    assert not differ, f"different outputs: {differ}"


# --- what a job carries, without a cluster ----------------------------------------------


def test_a_store_beside_the_spec_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("STARDAG_STORE", raising=False)
    d = project(tmp_path)
    with pytest.raises(SpecError, match="--store an absolute path"):
        sub.prepare(d / "spec.yaml")
    with pytest.raises(SpecError, match="relative"):
        sub.prepare(d / "spec.yaml", store="here")
    p = sub.prepare(
        d / "spec.yaml",
        ["loop.iterations=3"],
        store="s3://bucket/runs",
        force=["step@3"],
        until=["total"],
    )
    assert p.entrypoint == (
        "stardag run spec.yaml --store s3://bucket/runs --set "
        "loop.iterations=3 --force step@3 --until total"
    )
    assert p.spec == "cluster" and p.store == "s3://bucket/runs"


def test_the_runtime_env_sends_the_spec_directory_without_stores_and_venvs(tmp_path):
    d = project(tmp_path)
    (d / "sub").mkdir()
    write(
        d / "sub" / "child.yaml",
        "extends: ../spec.yaml\nname: child\n"
        "stages: {words: {params: {file: ../prompts/words.txt}}}\n",
    )
    p = sub.prepare(
        d / "sub" / "child.yaml",
        store="/shared/store",
        working_dir=str(d),
        pip=["emoji==2.0"],
        env=["A=1"],
        excludes=["*.bin"],
    )
    env = p.runtime_env
    assert env["working_dir"] == str(d) and p.entrypoint.startswith("stardag run sub/child.yaml")
    assert {".stardag", ".venv", ".git", "__pycache__", "*.bin"} <= set(env["excludes"])
    assert env["pip"] == ["emoji==2.0"] and env["env_vars"] == {"A": "1"}
    # a runtime env file, added to by --pip and --env
    f = write(tmp_path / "env.yaml", "pip: [requests]\nenv_vars: {B: '2'}\nexcludes: [data/]\n")
    env = sub.runtime_env(d, str(f), pip=["emoji"], env=["A=1"])
    assert env["pip"] == ["requests", "emoji"] and env["env_vars"] == {"B": "2", "A": "1"}
    assert "data/" in env["excludes"]
    write(f, "working_dir: /elsewhere\n")
    with pytest.raises(SpecError, match="working_dir is set by stardag"):
        sub.runtime_env(d, str(f))
    with pytest.raises(SpecError, match="NAME=VALUE"):
        sub.runtime_env(d, env=["novalue"])


def test_files_the_spec_names_must_travel_with_the_job(tmp_path):
    d = project(tmp_path)
    (tmp_path / "outside.txt").write_text("x\n")
    with pytest.raises(SpecError, match="param 'file': file ../outside.txt lies outside"):
        sub.prepare(
            d / "spec.yaml", ["stages.words.params.file=../outside.txt"], store="/shared/store"
        )
    # an absolute path is taken to be one the cluster has
    sub.prepare(
        d / "spec.yaml",
        [f"stages.words.params.file={tmp_path / 'outside.txt'}"],
        store="/shared/store",
    )
    # an extended spec outside the directory sent
    write(d / "child.yaml", "extends: ../base.yaml\nname: child\n")
    write(tmp_path / "base.yaml", SPEC)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "words.txt").write_text("a\n")
    with pytest.raises(SpecError, match="extended spec .*base.yaml lies outside"):
        sub.prepare(d / "child.yaml", store="/shared/store")


def test_the_address_comes_from_the_option_or_rays_variables(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with pytest.raises(StardagError, match="--address http://HEAD:8265"):
        sub.job_server_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "http://a:8265")
    assert sub.job_server_address(None) == "http://a:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://b:8265")
    assert sub.job_server_address(None) == "http://b:8265"
    assert sub.job_server_address("http://c:8265") == "http://c:8265"


@pytest.mark.parametrize("command", ["submit", "status", "logs"])
def test_the_job_commands_have_help_with_an_example(command):
    from click.testing import CliRunner

    from stardag.cli import main

    out = CliRunner().invoke(main, [command, "--help"])
    assert out.exit_code == 0 and "Example:" in out.output
