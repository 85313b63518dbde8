"""Distributed training as an engine service: an operator hands `ctx.train` a per-worker
loop and its scaling; the engine runs it in this process or on Ray Train's workers, keeps its
checkpoints under the stage's key until the model is published, and puts the final model in
the stage's output. The loop gets a `TrainSession` and never sees Ray or the store:

    def loop(config, session):
        model = session.prepare(build_model(config))          # DDP on Ray, .to(device) here
        first = 0
        if (d := session.latest_checkpoint()) is not None:     # resuming a killed training
            first = restore(d, model)
        for step in range(first, steps):
            ...
            if (step + 1) % every == 0:
                session.checkpoint(lambda d: save(d, model, step + 1))   # every rank writes its part
        session.finish(lambda d: model.save_pretrained(d), {"loss": loss})  # rank 0's model
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import logs
from .operator import device_for

Writer = Callable[[Path], None]


@dataclass(frozen=True)
class Scaling:
    workers: int = 1
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0


class TrainSession:
    """What a training loop gets on each worker."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    def prepare(self, model):
        """The model on this worker's device (wrapped for data-parallel training on Ray)."""
        raise NotImplementedError

    def latest_checkpoint(self) -> Path | None:
        """A local directory holding the last checkpoint this stage saved (this run's, or a
        killed run's), None if there is none."""
        raise NotImplementedError

    def checkpoint(self, write: Writer, metrics: dict | None = None):
        """Save a checkpoint: every rank calls it, `write(dir)` writes this rank's files."""
        raise NotImplementedError

    def finish(self, write_model: Writer, metrics: dict):
        """The end: rank 0's `write_model(dir)` writes the stage's model output."""
        raise NotImplementedError


# --- in this process ------------------------------------------------------------------


class LocalSession(TrainSession):
    def __init__(self, checkpoints: Path | None, output: Path, gpus: float):
        self._dir = checkpoints / "state" if checkpoints else None
        self._output = output
        self.device = device_for(gpus)
        self.metrics: dict = {}

    def prepare(self, model):
        return model.to(self.device)

    def latest_checkpoint(self) -> Path | None:
        return latest(self._dir)

    def checkpoint(self, write: Writer, metrics: dict | None = None):
        if self._dir is not None:
            replace_atomically(self._dir, write)

    def finish(self, write_model: Writer, metrics: dict):
        write_model(self._output)
        self.metrics = dict(metrics)


def replace_atomically(d: Path, write: Writer):
    """`write` into `d`, replacing what was there only once the new content is whole."""
    tmp = d.with_name(d.name + ".tmp")
    old = d.with_name(d.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if d.exists():
        shutil.rmtree(old, ignore_errors=True)
        d.rename(old)
    tmp.rename(d)
    shutil.rmtree(old, ignore_errors=True)


def latest(d: Path | None) -> Path | None:
    """`d` if it is whole, or its previous copy if a crash came between the two renames of
    `replace_atomically`."""
    if d is None:
        return None
    for c in (d, d.with_name(d.name + ".old")):
        if c.is_dir() and any(c.iterdir()):
            return c
    return None


def run_local(loop, config: dict, checkpoints: Path | None, output: Path, gpus: float) -> dict:
    session = LocalSession(checkpoints, output, gpus)
    loop(config, session)
    return session.metrics


# --- on Ray Train -----------------------------------------------------------------------


class RaySession(TrainSession):
    def __init__(self):
        import ray.train

        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self._restored: Path | None = None

    def prepare(self, model):
        import torch

        if torch.cuda.is_available():
            import ray.train.torch

            model = ray.train.torch.prepare_model(model)
            self.device = str(next(model.parameters()).device)
            return model
        # no CUDA here (a logical GPU on a CPU machine, or CPU workers): data parallelism
        # over gloo, on the CPU; Ray Train's prepare_model would move the model to cuda
        self.device = "cpu"
        if self.world_size > 1:
            model = torch.nn.parallel.DistributedDataParallel(model)
        return model

    def latest_checkpoint(self) -> Path | None:
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        self._restored = Path(tempfile.mkdtemp(prefix="stardag-restore-"))
        ckpt.to_directory(str(self._restored))
        return self._restored

    def checkpoint(self, write: Writer, metrics: dict | None = None):
        import ray.train
        from ray.train import Checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            write(Path(tmp))
            ray.train.report(dict(metrics or {}), checkpoint=Checkpoint.from_directory(tmp))

    def finish(self, write_model: Writer, metrics: dict):
        import ray.train
        from ray.train import Checkpoint

        # report() uploads the checkpoint before it returns: the local copy (the whole
        # model) is deleted then, not left in the temp dir after every training
        with tempfile.TemporaryDirectory(prefix="stardag-model-") as out:
            if self.rank == 0:
                write_model(Path(out))
            checkpoint = Checkpoint.from_directory(out) if self.rank == 0 else None
            ray.train.report(dict(metrics), checkpoint=checkpoint)
        if self._restored is not None:
            shutil.rmtree(self._restored, ignore_errors=True)


def _per_worker(args: dict):
    if not args.get("__mark__"):
        args["__loop__"](args["__config__"], RaySession())
        return
    from .logs import Marked

    stderr, sys.stderr = sys.stderr, Marked(sys.stderr)  # the loop's lines are the user's
    try:
        args["__loop__"](args["__config__"], RaySession())
    finally:
        sys.stderr = stderr


def run_ray(loop, config: dict, scaling: Scaling, storage: tuple | None, output: Path) -> dict:
    """Ray Train keeps its run (checkpoints) in the store's partial area under the stage's
    key: a training killed with its driver is found there by the next run (Ray Train
    restores a run of the same name and storage), and a worker that fails is restarted from
    the last checkpoint within the same fit."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    fs, path = storage if storage else (None, tempfile.mkdtemp(prefix="stardag-train-"))
    use_gpu = bool(scaling.gpus_per_worker)
    trainer = TorchTrainer(
        _per_worker,
        train_loop_config={"__loop__": loop, "__config__": config, "__mark__": logs.marking},
        # NCCL needs CUDA: GPUs that Ray declares on a machine without any (logical GPUs)
        # train with gloo, on the CPU
        torch_config=TorchConfig(backend="nccl" if use_gpu and _cuda() else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=scaling.workers,
            use_gpu=use_gpu,
            resources_per_worker={
                "CPU": scaling.cpus_per_worker,
                **({"GPU": scaling.gpus_per_worker} if use_gpu else {}),
            },
        ),
        run_config=RunConfig(
            storage_path=path,
            storage_filesystem=fs,
            name="train",
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=2),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("distributed training ended without a checkpoint")
    with result.checkpoint.as_directory() as ckpt:
        for f in Path(ckpt).iterdir():
            if f.is_file():
                shutil.copy2(f, output / f.name)
    if not storage:
        shutil.rmtree(path, ignore_errors=True)
    return {k: v for k, v in dict(result.metrics or {}).items() if not k.startswith("_")}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def train(
    loop, config: dict, scaling: Scaling, backend: str, storage: tuple | None, output: Path
) -> dict[str, Any]:
    """Run `loop(config, session)` with the given scaling; `storage` is where checkpoints
    live ((filesystem, path), a local path when the filesystem is None; None for none)."""
    if backend == "local":  # one worker, in this process, whatever `workers` says
        local = Path(storage[1]) if storage and storage[0] is None else None
        return run_local(loop, config, local, output, scaling.gpus_per_worker)
    if backend == "ray":
        return run_ray(loop, config, scaling, storage, output)
    raise ValueError(f"unknown training backend {backend!r} (ray or local)")
