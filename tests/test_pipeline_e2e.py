"""The default pipeline end to end at a size CI affords: on Ray, with Ray Train workers."""

import json
from pathlib import Path

import pytest
from support import bench

import stardag
from stardag.cli import main

pytestmark = pytest.mark.ray

PIPELINES = Path(__file__).parent.parent / "pipelines"
SMALL = bench("invalidation").SMALL


def test_the_default_pipeline_runs_reports_and_caches_and_its_variant_reuses_it(tmp_path):
    from click.testing import CliRunner

    store = str(tmp_path / "store")
    first = stardag.run(PIPELINES / "star.yaml", overrides=SMALL, store=store, progress=False)
    assert "train@2" in first.computed() and "evaluate@2" in first.computed()

    out = CliRunner().invoke(
        main,
        [
            "report",
            str(PIPELINES / "star.yaml"),
            "--store",
            store,
            "--json",
            "--plot",
            str(tmp_path / "r.png"),
            *sum((["--set", s] for s in SMALL), []),
        ],
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert [e["iteration"] for e in report["iterations"]] == [0, 1, 2]
    for e in report["iterations"]:
        assert 0 <= e["accuracy"] <= 1 and set(e["by_slice"]) == {"1", "2"}
    assert set(report["iterations"][1]["train_used"]) == {"generation", "rationalization"}
    assert (tmp_path / "r.png").stat().st_size > 1000

    again = stardag.run(PIPELINES / "star.yaml", overrides=SMALL, store=store, progress=False)
    assert again.computed() == []

    plan = {
        e.node: e
        for e in stardag.plan(
            PIPELINES / "star_no_rationalization.yaml", overrides=SMALL, store=store
        )
    }
    for shared in (
        "problems",
        "base",
        "train_prompts",
        "heldout_prompts",
        "evaluate_base",
        "samples@1",
        "verified@1",
    ):
        assert plan[shared].status == "cached", shared
    assert plan["examples@1"].status == "run" and plan["examples@1"].causes == ["new"]
    assert "rationalized@1" not in plan

    ablation = stardag.run(
        PIPELINES / "star_no_rationalization.yaml", overrides=SMALL, store=store, progress=False
    )
    assert "base" not in ablation.computed() and "examples@1" in ablation.computed()
    out = CliRunner().invoke(
        main,
        [
            "compare",
            str(PIPELINES / "star.yaml"),
            str(PIPELINES / "star_no_rationalization.yaml"),
            "--store",
            store,
            "--slice",
            "2",
            *sum((["--set", s] for s in SMALL), []),
        ],
    )
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["accuracy", "[2]", "it", "0", "it", "1", "it", "2"]
    assert [line.split()[0] for line in lines[1:3]] == ["star", "star_no_rationalization"]
    head = lines[4].split()
    assert head[:4] == ["iter", "variant", "n", "accuracy"] and "used:gen" in head
    assert "acc[2]" in head and head[-1] == "time"
    shared = next(line for line in lines if line.startswith("shared by all variants"))
    for stage in ("problems", "base", "evaluate_base", "samples@1", "verified@1"):
        assert stage in shared
    assert "not computed" not in out.stdout
