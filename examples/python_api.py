"""The Python API: plan, run a small version of the default pipeline, read its results."""

from pathlib import Path

import stardag

SPEC = Path(__file__).parent.parent / "pipelines" / "star.yaml"
SMALL = [
    "loop.iterations=2",
    "stages.problems.params.train_per_digit=50",
    "stages.problems.params.heldout_per_digit=50",
]

for entry in stardag.plan(SPEC, overrides=SMALL):
    print(f"{entry.node:<18} {entry.status:<7} {entry.cause or ''}")

result = stardag.run(SPEC, overrides=SMALL)
print("computed:", result.computed())

metrics = stardag.read(SPEC, "evaluate", iteration=2, output="metrics", overrides=SMALL)
print(metrics)
print("trained model:", stardag.read(SPEC, "train", iteration=2, overrides=SMALL))
