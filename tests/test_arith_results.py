"""bench/arith_results.py's summary over seeds and the tables it writes, on collected data
made up here (the runs themselves are the benchmark's)."""

from support import bench

R = bench("arith_results")


def _variant(spec: str, fives: list[float], rationalized: list[float | None]) -> dict:
    its = []
    for i, (five, rat) in enumerate(zip(fives, rationalized)):
        its.append(
            {
                "iteration": i,
                "accuracy": (0.9 * 4 + five) / 5,
                "ci95": [0.0, 1.0],
                "by_slice": {"4": 0.9, "5": five},
                "by_slice_ci95": {"4": [0.85, 0.95], "5": [max(0.0, five - 0.03), five + 0.03]},
                "train_used": {"generation": 0.7, "rationalization": 0.1 if rat else 0.0},
                "faithful": {"generation": 1.0, **({"rationalization": rat} if rat else {})},
            }
        )
    return {"spec": f"/x/pipelines/{spec}", "iterations": its}


def _seeds():
    return {
        "0": {
            "variants": [
                _variant("star.yaml", [0.0, 0.3, 0.5], [None, 0.6, 0.2]),
                _variant("star_no_rationalization.yaml", [0.0, 0.0, 0.01], [None, None, None]),
            ]
        },
        "1": {
            "variants": [
                _variant("star.yaml", [0.0, 0.2, 0.4], [None, 0.5, 0.1]),
                _variant("star_no_rationalization.yaml", [0.0, 0.0, 0.03], [None, None, None]),
            ]
        },
    }


def test_the_summary_is_the_mean_and_range_over_seeds():
    summ = R.summary(_seeds())
    last = summ["star"]["2"]
    assert last["5"]["seeds"] == [0.5, 0.4]
    assert abs(last["5"]["mean"] - 0.45) < 1e-9 and last["5"]["min"] == 0.4
    assert last["5"]["max"] == 0.5
    assert abs(last["faithful:rationalization"]["mean"] - 0.15) < 1e-9
    assert "faithful:rationalization" not in summ["star_no_rationalization"]["2"]
    assert summ["star_no_rationalization"]["2"]["5"]["max"] == 0.03


def test_the_tables_name_each_seed_and_the_gap_between_the_two_runs():
    md = R.markdown(R.summary(_seeds()), _seeds())
    rows = [
        line for line in md.splitlines() if line.startswith("| 0 |") or line.startswith("| 1 |")
    ]
    # the per-seed table: five digits with and without, and the gap in points
    assert any("| +49.0 |" in r for r in rows) and any("| +37.0 |" in r for r in rows)
    assert "| 2 | 90.0% [90.0, 90.0] | 45.0% [40.0, 50.0] |" in md
    assert "| star | 2 | 70.0% | 10.0% | 100.0% | 20.0% |" in md
    text = R.table(R.summary(_seeds()))
    assert "star (2 seeds)" in text
