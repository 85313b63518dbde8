"""Work files in the temp dir are deleted once they have served: a long study trains a model
every iteration, and a copy of each left behind would fill the disk."""

from pathlib import Path

from stardag import training


def _session(rank: int) -> training.RaySession:
    session = object.__new__(training.RaySession)  # no Ray Train context needed
    session.rank, session.world_size, session._restored = rank, 2, None
    return session


def test_ray_training_deletes_its_local_model_copy_once_it_is_reported(monkeypatch):
    import ray.train

    reported = []

    def report(metrics, checkpoint=None):
        where = Path(checkpoint.path) if checkpoint else None
        reported.append((metrics, where, sorted(p.name for p in where.iterdir()) if where else []))

    monkeypatch.setattr(ray.train, "report", report)
    _session(0).finish(lambda out: (out / "model.safetensors").write_bytes(b"w"), {"loss": 1.5})
    _session(1).finish(lambda out: (out / "never.bin").write_bytes(b"w"), {"loss": 1.5})

    (metrics, where, files), (_, other, _) = reported
    assert metrics == {"loss": 1.5} and files == ["model.safetensors"]
    assert where.name.startswith("stardag-model-") and not where.exists()
    assert other is None  # only rank 0 writes and reports the model
