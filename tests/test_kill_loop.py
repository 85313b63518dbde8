"""kill -9 at random moments during the default pipeline (at a size CI affords), 20 times
in a row with a resumed run after each: no artifact that reads as complete is ever
incomplete or wrong, the run finishes, and every stage's output equals an uninterrupted
run's. The full size is `python bench/kill_loop.py`."""

import importlib.util
import random
import sys
from pathlib import Path

from test_pipeline_e2e import SMALL

ROOT = Path(__file__).resolve().parent.parent


def _bench(name: str):
    """A script of bench/, loaded without putting bench/ on everyone's import path."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kill_loop = _bench("kill_loop").kill_loop

# the trainer in-process and no Ray executor: the kills land in the stages, not in Ray's
# start-up (bench/kill_loop.py runs the default pipeline as it is, on Ray)
CI = [*SMALL, "stages.base.params.steps=200", "stages.base.params.checkpoint_every=50",
      "loop.stages.train.params.trainer=torch"]


def test_twenty_kills_in_a_row_never_leave_a_wrong_artifact_and_change_no_result(tmp_path):
    seed = random.randrange(1 << 20)
    res = kill_loop(ROOT / "pipelines" / "star.yaml", CI, kills=20, seed=seed,
                    executor="local", work=tmp_path, log=lambda m: print(m, file=sys.stderr))
    assert res["kills"] >= 15, f"seed {seed}: only {res['kills']} kills landed: {res['record']}"
    assert res["differ"] == [], f"seed {seed}"
    assert res["stages"] == 17
