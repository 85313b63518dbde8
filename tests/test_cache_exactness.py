"""The cache is exact: no stale result is ever served (a helper beside the spec, a file
edited while the run goes on, an operator writing into its input, an empty output of the
wrong type), no work re-runs for an unrelated edit, and `gc` never deletes what a kept spec
still reaches, says which store it cleans and lists what it would delete. Each case runs the
real `stardag` command, as a user would."""

import json
import os

import pytest
from support import Calls, cli, write
from test_invalidation import ALL, Project, reruns


@pytest.fixture
def project(tmp_path):
    p = Project(tmp_path, Calls(tmp_path / "calls.txt"))
    assert p.run() == ALL
    return p


def test_an_unused_new_function_in_a_helper_module_reruns_nothing(project):
    project.edit(
        "proj/text.py",
        "return word.upper() + suffix",
        "return word.upper() + suffix\n\n\ndef unused(x):\n    return x\n",
    )
    plan, ran = project.rerun()
    assert reruns(plan) == {} and ran == []


def test_an_edited_helper_used_by_one_operator_reruns_only_its_stages_and_names_it(project):
    project.edit("proj/text.py", "word.upper() + suffix", "suffix + word.upper()")
    plan, ran = project.rerun()
    assert reruns(plan) == {"loud": ["code"], "probe": ["inputs"]}
    assert plan["loud"]["details"] == ["code: proj/text.py:shout changed"]
    assert ran == ["loud", "probe"]


# --- a user's operator and a helper module beside the spec -------------------------------

USER_OPS = """
import polars as pl

from stardag.operator import Dataset, Operator
from helpers import FACTOR


class Scaled(Operator):
    outputs = {"table": Dataset({"x": "int64"})}

    def run(self, ctx):
        return pl.DataFrame({"x": [1 * FACTOR, 2 * FACTOR]})
"""


def test_a_helper_module_beside_the_spec_is_in_the_key(tmp_path):
    write(tmp_path / "myops.py", USER_OPS)
    write(tmp_path / "helpers.py", "FACTOR = 10\nUNUSED = 1\n")
    spec = write(tmp_path / "user.yaml", "name: user\nstages:\n  scaled: {op: 'myops:Scaled'}\n")
    assert cli("run", spec, "--executor", "local", cwd=tmp_path).returncode == 0
    write(tmp_path / "helpers.py", "FACTOR = 10\nUNUSED = 2\n")
    plan = json.loads(cli("plan", spec, "--json", cwd=tmp_path).stdout)
    assert plan[0]["status"] == "cached"
    write(tmp_path / "helpers.py", "FACTOR = 100\nUNUSED = 2\n")
    plan = json.loads(cli("plan", spec, "--json", cwd=tmp_path).stdout)
    assert plan[0]["status"] == "run" and plan[0]["details"] == ["code: helpers.py:FACTOR changed"]
    assert cli("run", spec, "--executor", "local", cwd=tmp_path).returncode == 0
    out = cli("show", spec, "scaled", "--to", tmp_path / "x.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["x"] for line in (tmp_path / "x.jsonl").read_text().split()] == [
        100,
        200,
    ]


# --- file params: keyed by the content the operator read --------------------------------

FILE_OPS = """
import os
from pathlib import Path

import polars as pl

from stardag.operator import Dataset, FilePath, Operator, Params


class Slow(Operator):
    '''Stands for a long upstream stage during which the user edits a file.'''

    outputs = {"table": Dataset({"n": "int64"})}

    class Params(Params):
        edit: str  # a path the test edits (relative to the working directory)

    def run(self, ctx):
        if os.environ.get("EDIT_DURING_UPSTREAM"):
            Path(ctx.params.edit).write_text("edited while upstream ran\\n")
        return pl.DataFrame({"n": [1]})


class Read(Operator):
    inputs = {"table": Dataset({"n": "int64"})}
    outputs = {"table": Dataset({"line": "string"})}

    class Params(Params):
        file: FilePath

    def run(self, ctx, table):
        text = Path(ctx.params.file).read_text()
        if os.environ.get("EDIT_DURING_STAGE"):
            Path(ctx.params.file).write_text("edited while the stage ran\\n")
        return pl.DataFrame({"line": text.splitlines()})
"""

FILE_SPEC = """
name: files
stages:
  slow: {op: "fileops:Slow", params: {edit: notes.txt}}
  read: {op: "fileops:Read", inputs: {table: slow}, params: {file: notes.txt}}
"""


@pytest.fixture
def files(tmp_path):
    write(tmp_path / "fileops.py", FILE_OPS)
    (tmp_path / "notes.txt").write_text("first\n")
    return write(tmp_path / "files.yaml", FILE_SPEC)


def _lines(spec, cwd):
    out = cli("show", spec, "read", "--to", cwd / "out.jsonl", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return [json.loads(line)["line"] for line in (cwd / "out.jsonl").read_text().splitlines()]


def test_a_file_edited_while_an_upstream_stage_runs_is_keyed_by_what_was_read(files, tmp_path):
    out = cli("run", files, "--executor", "local", env={"EDIT_DURING_UPSTREAM": "1"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # `read` ran on the edited file: its artifact must sit under the edited content's key
    plan = {e["node"]: e for e in json.loads(cli("plan", files, "--json", cwd=tmp_path).stdout)}
    assert plan["read"]["status"] == "cached"
    assert _lines(files, tmp_path) == ["edited while upstream ran"]
    (tmp_path / "notes.txt").write_text("first\n")
    plan = {e["node"]: e for e in json.loads(cli("plan", files, "--json", cwd=tmp_path).stdout)}
    assert plan["read"]["status"] == "run"


def test_a_file_edited_while_its_stage_runs_stores_nothing_and_says_so(files, tmp_path):
    out = cli("run", files, "--executor", "local", env={"EDIT_DURING_STAGE": "1"}, cwd=tmp_path)
    assert out.returncode == 2
    assert "param 'file': notes.txt changed while the stage ran; nothing was stored" in out.stderr
    assert "Traceback" not in out.stderr
    plan = {e["node"]: e for e in json.loads(cli("plan", files, "--json", cwd=tmp_path).stdout)}
    assert plan["slow"]["status"] == "cached" and plan["read"]["status"] == "run"
    assert cli("run", files, "--executor", "local", cwd=tmp_path).returncode == 0
    assert _lines(files, tmp_path) == ["edited while the stage ran"]


# --- inputs are read-only ---------------------------------------------------------------

MODEL_OPS = """
import os
from pathlib import Path

import polars as pl

from stardag.operator import Dataset, Model, Operator


class Make(Operator):
    outputs = {"model": Model()}

    def run(self, ctx):
        with open(os.environ["STARDAG_TEST_CALLS"], "a") as f:
            f.write("make\\n")
        (ctx.output_dir("model") / "weights.bin").write_bytes(b"1234")


class Use(Operator):
    inputs = {"model": Model()}
    outputs = {"table": Dataset({"files": "int64"})}

    def run(self, ctx, model):
        if os.environ.get("SCRIBBLE"):
            (model / "notes.txt").write_text("scribbled")
        return pl.DataFrame({"files": [len(list(model.iterdir()))]})
"""


@pytest.fixture
def models(tmp_path):
    write(tmp_path / "modelops.py", MODEL_OPS)
    Calls(tmp_path / "calls.txt")
    return write(
        tmp_path / "models.yaml",
        """
        name: models
        stages:
          make: {op: "modelops:Make"}
          use: {op: "modelops:Use", inputs: {model: make}}
    """,
    )


def test_published_files_lose_their_write_bits(models, tmp_path):
    assert cli("run", models, "--executor", "local", cwd=tmp_path).returncode == 0
    weights = list((tmp_path / ".stardag").rglob("weights.bin"))
    assert len(weights) == 1 and not weights[0].stat().st_mode & 0o222


def test_an_operator_writing_into_its_input_fails_and_the_input_is_recomputed(models, tmp_path):
    out = cli("run", models, "--executor", "local", env={"SCRIBBLE": "1"}, cwd=tmp_path)
    assert out.returncode == 2
    assert "the operator wrote into its input 'model' (added notes.txt)" in out.stderr
    assert not list((tmp_path / ".stardag" / "objects").rglob("notes.txt"))
    plan = {e["node"]: e for e in json.loads(cli("plan", models, "--json", cwd=tmp_path).stdout)}
    assert plan["make"]["status"] == "run" and plan["make"]["causes"] == ["missing"]
    calls = Calls(tmp_path / "calls.txt")
    calls.take()
    assert cli("run", models, "--executor", "local", cwd=tmp_path).returncode == 0
    assert calls.take() == ["make"]
    assert _files_seen(models, tmp_path) == 1


def test_a_file_added_to_a_model_artifact_by_hand_reads_as_corrupt(models, tmp_path):
    assert cli("run", models, "--executor", "local", cwd=tmp_path).returncode == 0
    weights = next((tmp_path / ".stardag" / "objects").rglob("weights.bin"))
    (weights.parent / "extra.txt").write_text("not in the manifest")
    out = cli("run", models, "--executor", "local", "--force", "use", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "file model/extra.txt is not in the manifest" in out.stderr
    assert _files_seen(models, tmp_path) == 1


def _files_seen(spec, cwd) -> int:
    out = cli("show", spec, "use", "--to", cwd / "use.jsonl", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads((cwd / "use.jsonl").read_text())["files"]


# --- schemas of empty outputs -----------------------------------------------------------

EMPTY_OPS = """
import os

import polars as pl

from stardag.operator import Dataset, Operator


class Empty(Operator):
    outputs = {"table": Dataset({"x": "int64", "name": "string"})}

    def run(self, ctx):
        if os.environ.get("WRONG_TYPE"):
            return pl.DataFrame({"x": pl.Series([], dtype=pl.String), "name": []})
        return pl.DataFrame({"x": [], "name": []})
"""


def test_an_empty_output_of_the_wrong_type_is_refused_and_one_without_types_gets_the_declared(
    tmp_path,
):
    write(tmp_path / "emptyops.py", EMPTY_OPS)
    spec = write(tmp_path / "empty.yaml", "name: empty\nstages:\n  e: {op: 'emptyops:Empty'}\n")
    out = cli("run", spec, "--executor", "local", env={"WRONG_TYPE": "1"}, cwd=tmp_path)
    assert out.returncode == 1
    assert "output 'table' column 'x' is string, declared int64 (the table is empty" in out.stderr
    assert not (tmp_path / ".stardag" / "objects").exists() or not any(
        (tmp_path / ".stardag" / "objects").rglob("manifest.json")
    )
    out = cli("run", spec, "--executor", "local", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import pyarrow.parquet as pq

    part = next((tmp_path / ".stardag" / "objects").rglob("*.parquet"))
    schema = pq.read_schema(part)
    assert str(schema.field("x").type) == "int64" and "string" in str(schema.field("name").type)


# --- library versions --------------------------------------------------------------------


def test_a_changed_library_version_is_a_note_and_with_libraries_in_key_a_cause(project):
    manifests = [
        p
        for p in (project.root / ".stardag" / "objects").rglob("manifest.json")
        if json.loads(p.read_text())["stage"] == "loud"
    ]
    m = json.loads(manifests[0].read_text())
    assert m["code_identity"]["libraries"]["polars"]
    m["code_identity"]["libraries"]["polars"] = "0.0.1"
    os.chmod(manifests[0], 0o644)
    manifests[0].write_text(json.dumps(m))
    plan = project.plan()
    assert plan["loud"]["status"] == "cached"
    assert plan["loud"]["notes"][0].startswith("library polars: 0.0.1 -> ")
    out = cli("plan", project.spec, cwd=project.root)
    assert "note: library polars: 0.0.1 -> " in out.stdout
    project.edit(
        "pipeline.yaml", "name: invalidation", "name: invalidation\nlibraries_in_key: true"
    )
    plan, ran = project.rerun()
    assert reruns(plan)["loud"][0] == "libraries"  # (its input re-runs too, into the same bytes)
    assert (
        plan["loud"]["details"][0] == "library versions are now part of the key (libraries_in_key)"
    )
    assert "loud" in ran


# --- gc -----------------------------------------------------------------------------------


def _artifacts(root) -> dict[str, str]:
    out = {}
    for p in (root / ".stardag" / "objects").rglob("manifest.json"):
        m = json.loads(p.read_text())
        out[m["stage"]] = m["key"]
    return out


def test_gc_keeps_the_work_below_a_missing_upstream_artifact(project):
    before = _artifacts(project.root)
    out = cli("gc", "--keep", project.spec, cwd=project.root)
    assert out.returncode == 0 and "0 artifacts deleted, 4 kept" in out.stdout
    import shutil

    words = next(
        p.parent
        for p in (project.root / ".stardag" / "objects").rglob("manifest.json")
        if json.loads(p.read_text())["stage"] == "words"
    )
    shutil.rmtree(words)  # deleted (or quarantined): the cheap source is missing
    out = cli("gc", "--keep", project.spec, cwd=project.root)
    assert out.returncode == 0, out.stderr
    assert "0 artifacts deleted, 3 kept" in out.stdout
    assert project.run() == ["words"]  # recomputed into the same bytes: the rest is reused
    assert _artifacts(project.root) == before


def test_gc_names_its_store_and_refuses_a_stardag_store_that_disagrees_with_the_spec(
    project, tmp_path
):
    project.edit("pipeline.yaml", "name: invalidation", "name: invalidation\nstore: .stardag")
    other = tmp_path / "other-store"
    out = cli("gc", "--keep", project.spec, env={"STARDAG_STORE": str(other)}, cwd=project.root)
    assert out.returncode == 1
    assert f"$STARDAG_STORE is {other}, but {project.spec} says store: .stardag" in out.stderr
    assert "--store" in out.stderr
    store = project.root / ".stardag"
    out = cli(
        "gc",
        "--keep",
        project.spec,
        "--store",
        store,
        env={"STARDAG_STORE": str(other)},
        cwd=project.root,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"store: {store}"


def test_gc_dry_run_lists_what_it_would_delete_with_stage_and_size(project):
    project.edit("pipeline.yaml", "times: 1", "times: 2")
    assert project.run() == ["loud", "probe"]
    old = project.spec.read_text()
    out = cli("gc", "--keep", project.spec, "--dry-run", cwd=project.root)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "would delete" in line]
    assert len(lines) == 2
    assert any("invalidation/loud" in line for line in lines)
    assert any("invalidation/probe" in line for line in lines)
    assert all(line.rstrip().endswith(("B", "KB", "MB")) for line in lines)
    assert "2 artifacts to delete, 4 kept" in out.stdout
    assert len(_artifacts_all(project.root)) == 6  # nothing deleted
    assert project.spec.read_text() == old


def _artifacts_all(root) -> list:
    return list((root / ".stardag" / "objects").rglob("manifest.json"))
