"""The catalog of bad inputs (tests/bad_inputs/cases.yaml): specs, overrides, data files,
exemplar files and model paths that a user gets wrong. Each must give exactly one error,
with exit status 2, naming the file, the line and the stage, and must leave the store as it
was (or, where a stage ran and found its input bad, with no artifact of that stage and
nothing half-written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stardag.cli import main
from stardag.store import Store

CASES = Path(__file__).parent / "bad_inputs"
CATALOG = yaml.safe_load((CASES / "cases.yaml").read_text(encoding="utf-8"))

SEED = """\
name: seed
stages:
  nums:
    op: engine_ops:Numbers
    params: {n: 3}
"""


@pytest.fixture(autouse=True)
def _calls(tmp_path, monkeypatch):
    """Test operators record their calls here (tests/engine_ops.py)."""
    monkeypatch.setenv("STARDAG_TEST_CALLS", str(tmp_path / "calls.txt"))
    monkeypatch.delenv("STARDAG_STORE", raising=False)


def listing(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def seeded_store(tmp_path: Path) -> Path:
    """A store that already holds an artifact, a ref and a run record: "unchanged" then
    means something."""
    store = tmp_path / "store"
    spec = tmp_path / "seed" / "seed.yaml"
    spec.parent.mkdir()
    spec.write_text(SEED)
    r = CliRunner().invoke(
        main, ["run", str(spec), "--store", str(store), "--executor", "local", "-q"]
    )
    assert r.exit_code == 0, r.output
    (tmp_path / "calls.txt").unlink()
    return store


def expected_where(case: dict, work: Path) -> str | None:
    """The start of what the error must contain to name the file and line of `where`."""
    where = case.get("where")
    if where is None:
        return None
    if where.startswith("--set"):
        return where + ": "
    file, _, line = where.partition(":")
    path = (work / file).resolve()
    return f"{path}:{line}: " if line else f"{path}: "


def test_the_catalog_is_well_formed():
    names = [c["case"] for c in CATALOG]
    assert len(names) == len(set(names)) >= 40
    assert sorted(names) == sorted(p.name for p in CASES.iterdir() if p.is_dir())
    for c in CATALOG:
        assert set(c) <= {"case", "argv", "error", "where", "stage", "fails", "note"}, c
        assert c["argv"][0] in ("run", "plan") and c["error"], c
        assert (CASES / c["case"] / "spec.yaml").is_file(), c
        assert "fails" not in c or c["argv"][0] == "run", c


@pytest.mark.parametrize("case", CATALOG, ids=[c["case"] for c in CATALOG])
def test_bad_input(case, tmp_path, monkeypatch):
    work = tmp_path / "case"
    shutil.copytree(CASES / case["case"], work)
    monkeypatch.chdir(work)  # where a YAML tag that ran a command would leave its file
    store = seeded_store(tmp_path)
    before = listing(store)

    command, *rest = case["argv"]
    argv = [command, str(work / "spec.yaml"), *rest, "--store", str(store)]
    if command == "run":
        argv += ["--executor", "local", "-q"]
    r = CliRunner().invoke(main, argv)

    # one error, exit status 2, no traceback
    assert isinstance(r.exception, SystemExit), r.exc_info
    assert r.exit_code == 2, r.output
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    message = lines[0].removeprefix("error: ")

    # naming the file and line, the stage, and what is wrong
    where = expected_where(case, work)
    if case.get("fails"):
        prefix = f"stage '{case['fails']}' (op "
        assert message.startswith(prefix), (message, prefix)
        assert "invalid input: " in message, message
        if where:
            assert where in message, (message, where)
    else:
        if where:
            assert message.startswith(where), (message, where)
        if case.get("stage"):
            assert f"stage '{case['stage']}': " in message, message
    if where and ":" not in case["where"] and not case["where"].startswith("--set"):
        # an error without a line must not claim one
        assert f"{where[:-2]}:" not in message.replace(where, ""), message
    for fragment in case["error"]:
        assert fragment in message, (fragment, message)
    assert not (work / "PWNED").exists()

    if not case.get("fails"):
        # found before anything ran: no operator called, the store exactly as it was
        assert not (tmp_path / "calls.txt").exists()
        assert listing(store) == before
        return
    # the failing stage left nothing that reads as complete, and nothing half-written:
    # what is new is whole artifacts of the stages before it, their refs, a run record
    manifests = list(Store(str(store)).artifacts())
    assert case["fails"] not in {m.get("stage") for m in manifests}
    complete = {f"objects/{m['key'][:2]}/{m['key']}" for m in manifests}
    for new in sorted(set(listing(store)) - set(before)):
        top = new.split("/")[0]
        if top == "objects" and new.count("/") >= 2:
            assert "/".join(new.split("/")[:3]) in complete, new
        else:
            assert top in ("objects", "refs", "runs", "tmp", "leases"), new
            assert not (store / new).is_file() or top in ("refs", "runs"), new
    assert not list((store / "refs").glob(f"*/{case['fails']}.json"))
    records = [
        store / p
        for p in set(listing(store)) - set(before)
        if p.startswith("runs/") and p.endswith(".json")
    ]
    assert len(records) == 1 and json.loads(records[0].read_text())["failed"] == message
