"""The edit matrix over `operators/` (bench/invalidation.py, at the CI size of the default
pipeline): for every top-level definition, a code-changing edit. No stage that executed or
read a definition may stay cached when it changes (measured against a profiled run of every
stage), a new unused definition re-runs nothing, and no edit re-runs a stage that the
module-level fingerprint of before would not have."""

from support import bench


def test_no_edit_of_operators_leaves_a_stage_that_uses_it_cached(tmp_path):
    res = bench("invalidation").run_matrix(tmp_path)
    missed = [
        (r["definition"], sorted(set(r["used_by"]) - set(r["definition_level"])))
        for r in res["rows"]
        if set(r["used_by"]) - set(r["definition_level"])
    ]
    assert missed == []
    assert res["definition_level"]["unused_definition_reruns"] == 0
    assert res["module_level"]["unused_definition_reruns"] > 0  # the matrix can see re-runs
    wider = [
        r["definition"] for r in res["rows"] if set(r["definition_level"]) - set(r["module_level"])
    ]
    assert wider == []
    # the profiled run saw the stages use the operators' code at all
    assert sum(len(r["used_by"]) for r in res["rows"]) > 100
