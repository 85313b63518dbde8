"""`stardag compare`: variants side by side from what the store holds, the stages they share,
and what is missing; it runs nothing."""

import json

from report_ops import SCORES_SPEC as SPEC
from support import cli, run, store_files, write

VARIANT = """
extends: scores.yaml
name: scores-fewer
loop:
  stages:
    after:
      params: {correct: [0, 3, 8]}
"""


def _specs(tmp_path):
    return write(tmp_path / "scores.yaml", SPEC), write(tmp_path / "fewer.yaml", VARIANT)


def test_compare_shows_variants_side_by_side_and_the_stages_they_share(tmp_path):
    a, b = _specs(tmp_path)
    store = str(tmp_path / "store")
    run(a, store=store)
    run(b, store=store)
    r = cli("compare", a, b, "--store", store, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    first, second = data["variants"]
    assert (first["label"], second["label"]) == ("scores", "fewer")
    assert [(e["iteration"], e["accuracy"], e["n"]) for e in first["iterations"]] == [
        (0, 0.0, 10),
        (1, 0.5, 10),
        (2, 1.0, 10),
    ]
    assert [e["accuracy"] for e in second["iterations"]] == [0.0, 0.3, 0.8]
    assert all(e["ci95"] and e["seconds"] >= 0 for e in first["iterations"])
    assert first["not_computed"] == second["not_computed"] == []
    assert data["stages"] == {
        "before": ["A", "A"],
        "train@1": ["A", "A"],
        "train@2": ["A", "A"],
        "after@1": ["A", "B"],
        "after@2": ["A", "B"],
    }

    text = cli("compare", a, b, "--store", store, "--plot", tmp_path / "c.png")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["accuracy", "[all]", "it", "0", "it", "1", "it", "2"]
    assert lines[1].split()[0] == "scores" and "50.0% (23.7-76.3)" in lines[1]
    assert lines[2].split()[0] == "fewer" and "30.0% (10.8-60.3)" in lines[2]
    assert "shared by all variants (same key): before, train@1-2" in lines
    assert any(line.split() == ["after@1", "A", "B"] for line in lines)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_compare_runs_nothing_and_names_what_to_run_for_the_missing_stages(tmp_path):
    a, _ = _specs(tmp_path)
    store = tmp_path / "store"
    run(a, store=str(store))
    before = store_files(store)
    r = cli("compare", a, "--store", store, "--sweep", "loop.iterations=2,3")
    assert r.returncode == 0, r.stderr
    assert store_files(store) == before
    assert "scores iterations=3: 2 stages not computed (train@3, after@3); to compute them: " in (
        r.stdout
    )
    assert f"stardag run {a} --set loop.iterations=3" in r.stdout
    head = r.stdout.splitlines()[1:3]
    assert [h.split()[:2] for h in head] == [["scores", "iterations=2"], ["scores", "iterations=3"]]


def test_bad_sweep_syntax_is_one_error_with_exit_status_2(tmp_path):
    a, _ = _specs(tmp_path)
    for bad, says in [
        ("loop.iterations", "is not of the form key.path=value1,value2"),
        ("loop.iterations=2,,3", "has an empty value"),
        ("loop.iterations=2,2", "names a value twice"),
        ("=2,3", "is not of the form"),
        ("stages.nosuch.params.x=1,2", "--sweep stages.nosuch.params.x=1: unknown stage"),
    ]:
        for command in ("compare", "run"):
            r = cli(command, a, "--sweep", bad, "--store", tmp_path / "store")
            assert r.returncode == 2, (command, bad, r.stderr)
            assert r.stderr.count("\n") == 1 and says in r.stderr, r.stderr
