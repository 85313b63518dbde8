"""A data-parallel map as an engine service (`ctx.map`): an operator splits its work into
chunks and names a worker class; the engine applies one worker object per worker to the
chunks and commits each chunk's result as a shard of the stage as it lands, so a killed run
resumes from what was committed.

With one worker, or outside Ray (`--executor local`), the worker runs in the stage's own
process. With `workers: N` on Ray, N actors each hold one worker object (a model loaded
once) and the stage's resources (a GPU each on a GPU cluster); the stage's own task then
holds nothing they need. An actor that dies is restarted and its chunk retried. Chunk i's
result depends only on chunk i (and the config), so the stage's output is the same for any
N, and the same as a resumed run's.

    class Sampler:                          # module level: it is sent to the workers
        def __init__(self, config): self.model = load(config["model"])
        def __call__(self, index, chunk): return pa.table(...)   # chunk `index`'s rows
        def close(self): ...                # optional: free what __init__ took (engines)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

ACTOR_RESTARTS = 2  # a worker process that dies is replaced this many times per worker
CLOSE_TIMEOUT_S = 30  # then the actors are killed whatever state their engines are in


class _Holder:
    """The actor: one worker object, built once."""

    def __init__(self, worker_cls, config: dict, sys_path: list[str]):
        import sys

        for p in sys_path:
            if p not in sys.path:
                sys.path.insert(0, p)
        self.worker = worker_cls(config)

    def run(self, index: int, chunk):
        return self.worker(index, chunk)

    def close(self):
        _close(self.worker)


def _close(worker) -> None:
    """Free a worker's engines now rather than at garbage collection, which for an engine
    with processes of its own (vLLM's) may be never: they would hold memory and CPU under
    the stages that run next in the same process."""
    close = getattr(worker, "close", None)
    if close is not None:
        close()


def map_chunks(
    worker_cls: Callable[[dict], Callable[[int, Any], Any]],
    config: dict,
    chunks: Sequence[Any],
    *,
    shards,
    workers: int = 1,
    cpus: float = 1,
    gpus: float = 0,
    landed: Callable[[int, Any], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> list:
    """Every chunk's result (an Arrow table), in chunk order; see the module's docstring."""
    results: list = [None] * len(chunks)
    todo = []
    for i in range(len(chunks)):
        done = shards.get(i)
        if done is None:
            todo.append(i)
        else:
            results[i] = done
    if log and len(todo) < len(chunks):
        log(
            f"resumed {len(chunks) - len(todo)} of {len(chunks)} shards committed by an "
            "interrupted run"
        )

    for i, table in enumerate(results):
        if table is not None and landed:
            landed(i, table)

    def land(i: int, table):
        shards.put(i, table)
        results[i] = table
        if landed:
            landed(i, table)

    if todo and (workers <= 1 or not _in_ray()):
        worker = worker_cls(config)
        try:
            for i in todo:
                land(i, worker(i, chunks[i]))
        finally:
            _close(worker)
    elif todo:
        n = _fitting(min(workers, len(todo)), cpus, gpus, log)
        _on_actors(worker_cls, config, chunks, todo, land, n, cpus, gpus)
    return results


def _fitting(n: int, cpus: float, gpus: float, log) -> int:
    """As many workers as the cluster can hold now, of the `n` asked for: a worker that
    cannot be placed would hold its chunk forever."""
    import ray

    free = ray.available_resources()
    room = n
    for need, have in ((cpus, free.get("CPU", 0)), (gpus, free.get("GPU", 0))):
        if need:
            room = min(room, int(have // need + 1e-9))
    room = max(1, room)
    if room < n and log:
        log(f"{room} of {n} workers fit in the cluster now; the chunks are shared among them")
    return room


def _in_ray() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _on_actors(
    worker_cls, config, chunks, todo: list[int], landed, n: int, cpus: float, gpus: float
):
    import sys

    import ray

    holder: Any = ray.remote(
        num_cpus=cpus, num_gpus=gpus, max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS
    )(_Holder)
    actors = [
        holder.options(name=None).remote(worker_cls, config, list(sys.path)) for _ in range(n)
    ]
    queue = list(todo)
    running: dict = {}
    try:
        for actor in actors:
            if queue:
                i = queue.pop(0)
                running[actor.run.remote(i, chunks[i])] = (i, actor)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            i, actor = running.pop(ready[0])
            landed(i, ray.get(ready[0]))
            if queue:
                j = queue.pop(0)
                running[actor.run.remote(j, chunks[j])] = (j, actor)
    finally:
        closing = [actor.close.remote() for actor in actors]
        ray.wait(closing, num_returns=len(closing), timeout=CLOSE_TIMEOUT_S)
        for actor in actors:
            ray.kill(actor)
