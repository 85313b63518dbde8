"""A tracker that writes what it is given to a JSON file: the tracker interface, without
MLflow."""

import json
from dataclasses import asdict


class Recorder:
    def __init__(self, options, spec_dir):
        self.path = spec_dir / options.get("file", "tracked.jsonl")

    def log(self, run):
        with open(self.path, "a") as f:
            f.write(json.dumps(asdict(run)) + "\n")
        return f"recorded {run.name}"
