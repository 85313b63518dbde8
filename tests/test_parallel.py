"""Data-parallel maps (`ctx.map`): each chunk committed as a shard as it lands and read back
on a resumed run; the same output for any number of workers, on Ray actors or in-process;
a worker that dies is replaced; `workers` is not in the key; and `sample` spread over
several workers gives the same samples as one."""

import pyarrow as pa
import pytest
from support import write

import stardag
from stardag.parallel import map_chunks
from stardag.store import Store


class _Log:
    def __init__(self):
        self.shards: dict[int, pa.Table] = {}

    def get(self, i):
        return self.shards.get(i)

    def put(self, i, table):
        self.shards[i] = table


class _Doubler:
    calls: list[int] = []
    closed = 0

    def __init__(self, config):
        self.fail_at = config.get("fail_at")

    def __call__(self, index, chunk):
        if index == self.fail_at:
            raise KeyboardInterrupt("killed")
        _Doubler.calls.append(index)
        return pa.table({"v": [2 * c for c in chunk]})

    def close(self):
        _Doubler.closed += 1


def test_map_commits_every_chunk_and_a_resumed_map_computes_only_the_rest():
    chunks = [[1, 2], [3], [4, 5], [6]]
    log, landed, messages = _Log(), [], []
    with pytest.raises(KeyboardInterrupt):
        map_chunks(_Doubler, {"fail_at": 2}, chunks, shards=log)
    assert sorted(log.shards) == [0, 1]
    _Doubler.calls = []
    out = map_chunks(
        _Doubler, {}, chunks, shards=log, landed=lambda i, t: landed.append(i), log=messages.append
    )
    assert _Doubler.calls == [2, 3]
    assert [t.column("v").to_pylist() for t in out] == [[2, 4], [6], [8, 10], [12]]
    assert sorted(landed) == [0, 1, 2, 3]
    assert messages == ["resumed 2 of 4 shards committed by an interrupted run"]


def test_a_worker_is_closed_when_the_map_ends_and_when_it_is_interrupted():
    # an engine with processes of its own (vLLM's) must not outlive its stage
    _Doubler.closed = 0
    with pytest.raises(KeyboardInterrupt):
        map_chunks(_Doubler, {"fail_at": 1}, [[1], [2]], shards=_Log())
    assert _Doubler.closed == 1
    map_chunks(_Doubler, {}, [[1], [2]], shards=_Log())
    assert _Doubler.closed == 2


SPEC = """
name: par
stages:
  squares:
    op: parallel_ops:Squares
    params: {n: 40, chunk: 5, workers: 1}
"""


def test_workers_is_not_in_the_key(tmp_path):
    spec = write(tmp_path / "par.yaml", SPEC)
    one = {e.node: e.key for e in stardag.plan(spec)}
    three = {
        e.node: e.key for e in stardag.plan(spec, overrides=["stages.squares.params.workers=3"])
    }
    assert one == three


@pytest.fixture(scope="module")
def ray_two_cpus():
    """One Ray of two CPUs for the module (stardag joins a Ray already started), whose
    workers can import the test operators."""
    import ray
    from support import TESTS

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(TESTS))
        mp.setenv("RAY_worker_niceness", "0")  # as stardag starts Ray: stages are the work
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        yield
        ray.shutdown()


def _content(spec, store, overrides=(), stage="squares") -> str:
    entry = next(
        e
        for e in stardag.plan(spec, overrides=list(overrides), store=str(store))
        if e.node == stage
    )
    assert entry.status == "cached"
    out = entry.manifest["outputs"]
    return next(iter(out.values()))["content_hash"]


@pytest.mark.ray
def test_one_two_and_three_workers_give_the_same_output(tmp_path, ray_two_cpus):
    spec = write(tmp_path / "par.yaml", SPEC)
    hashes = set()
    for n in (1, 2, 3):
        store = tmp_path / f"store{n}"
        closed, record = tmp_path / f"closed{n}", tmp_path / f"record{n}"
        over = [
            f"stages.squares.params.workers={n}",
            f"stages.squares.params.closed={closed}",
            f"stages.squares.params.record={record}",
        ]
        result = stardag.run(spec, overrides=over, store=str(store), progress=False)
        assert result.computed() == ["squares"]
        assert len(Store(store).partial_keys()) == 0  # the shards went with the publish
        # every worker that computed a chunk was closed, on actors too
        ran = {line.split()[1] for line in record.read_text().splitlines()}
        assert set(closed.read_text().split()) == ran
        hashes.add(_content(spec, store, over))
    assert len(hashes) == 1


@pytest.mark.ray
def test_a_worker_that_dies_is_replaced_and_the_output_is_unchanged(tmp_path, ray_two_cpus):
    spec = write(tmp_path / "par.yaml", SPEC)
    marker = tmp_path / "died-once"
    whole = stardag.run(spec, store=str(tmp_path / "a"), progress=False, executor="local")
    assert whole.computed() == ["squares"]
    over = ["stages.squares.params.workers=2", f"stages.squares.params.crash_once={marker}"]
    result = stardag.run(spec, overrides=over, store=str(tmp_path / "b"), progress=False)
    assert marker.exists()  # a worker did die
    assert result.computed() == ["squares"]
    assert _content(spec, tmp_path / "b", over) == _content(spec, tmp_path / "a")


SAMPLE_SPEC = """
name: psample
stages:
  model:
    op: parallel_ops_models:TinyModel
  prompts:
    op: parallel_ops_models:Prompts
    params: {n: 12}
  samples:
    op: sample
    inputs: {model: model, prompts: prompts}
    params: {n: 2, temperature: 1.0, max_new_tokens: 8, batch_size: 4, shard_size: 8,
             seed: 3, workers: 1}
"""


@pytest.mark.ray
def test_sampling_over_two_workers_gives_the_samples_of_one(tmp_path, ray_two_cpus):
    spec = write(tmp_path / "psample.yaml", SAMPLE_SPEC)
    one = stardag.run(spec, store=str(tmp_path / "one"), progress=False, executor="local")
    assert "samples" in one.computed()
    over = ["stages.samples.params.workers=2"]
    two = stardag.run(spec, overrides=over, store=str(tmp_path / "two"), progress=False)
    assert "samples" in two.computed()
    assert _content(spec, tmp_path / "two", over, "samples") == _content(
        spec, tmp_path / "one", (), "samples"
    )
