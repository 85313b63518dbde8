"""The Hugging Face worker of `sample`, `hint_rationalize` and `evaluate`: one model loaded
per worker, batches generated in the plan's order and seeded by their position."""

from __future__ import annotations

from stardag.operator import device_for


def chunks_of(texts: list[str], p) -> list[list[tuple[int, list[tuple[int, int, str]]]]]:
    """The batch plan cut into shards of about `shard_size` samples (whole batches): each
    chunk is [(batch number, [(prompt index, sample index, prompt), ...]), ...]."""
    from . import hf_common

    plan = hf_common.batch_plan(texts, p.n, p.batch_size)
    per = max(1, p.shard_size // p.batch_size)
    return [
        [(b, [(i, k, texts[i]) for i, k in plan[b]]) for b in range(s, min(s + per, len(plan)))]
        for s in range(0, len(plan), per)
    ]


class HFSampler:
    def __init__(self, config: dict):
        from . import hf_common

        hf_common.set_threads(config["cpus"])
        self.config = config
        self.model, self.tok = hf_common.load(
            config["model"], config["dtype"], device_for(config["gpus"])
        )

    def __call__(self, index: int, chunk):
        import pyarrow as pa

        from . import hf_common

        c = self.config
        rows = []
        for b, jobs in chunk:
            got = hf_common.generate_batch(
                self.model,
                self.tok,
                [text for _, _, text in jobs],
                b,
                temperature=c["temperature"],
                top_p=c["top_p"],
                max_new_tokens=c["max_new_tokens"],
                stop=c["stop"],
                seed=c["seed"],
            )
            rows += [(i, k, *sample) for (i, k, _), sample in zip(jobs, got)]
        return pa.table(dict(zip(hf_common.SHARD_COLUMNS, map(list, zip(*rows)))))
