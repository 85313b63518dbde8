"""kill -9 at random moments during the default pipeline (at a size CI affords), until 20
kills have landed (a run that finishes first starts the next in a fresh store), with a
resumed run after each: no artifact that reads as complete is ever
incomplete or wrong, the run finishes, and every stage's output equals an uninterrupted
run's. The full size is `python bench/kill_loop.py`."""

import sys
from pathlib import Path

from support import bench

ROOT = Path(__file__).resolve().parent.parent

kill_loop = bench("kill_loop").kill_loop

# the trainer in-process and no Ray executor: the kills land in the stages, not in Ray's
# start-up (bench/kill_loop.py runs the default pipeline as it is, on Ray)
CI = bench("invalidation").CI


def test_twenty_kills_in_a_row_never_leave_a_wrong_artifact_and_change_no_result(tmp_path):
    res = kill_loop(
        ROOT / "pipelines" / "star.yaml",
        CI,
        kills=20,
        seed=0,
        executor="local",
        work=tmp_path,
        log=lambda m: print(m, file=sys.stderr),
    )
    assert res["kills"] == 20, res["record"]
    assert res["differ"] == [], res["record"]
    assert res["stages"] == 17
