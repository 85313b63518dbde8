"""Problem source: GSM8K (Cobbe et al. 2021) from its official JSON Lines format
({"question", "answer"}, the answer ending in '#### N'), or a Hugging Face dataset name."""

from __future__ import annotations

from stardag.operator import Dataset, Operator

from .arithmetic import PROBLEMS
from .datafiles import SourceParams


def gsm8k_row(raw: dict, where: str) -> dict:
    from .datafiles import DataError, field
    from .tasks import gsm8k_gold

    question = field(raw, "question", where)
    solution = field(raw, "answer", where)
    if "####" not in solution:
        raise DataError(f"{where}: answer has no '#### N' final line")
    try:
        gold = gsm8k_gold(solution)
    except ValueError:
        raise DataError(f"{where}: the final answer after '####' is not a number") from None
    rationale = solution.rsplit("####", 1)[0].strip()
    return {"id": raw.get("id") or f"gsm8k-{where.rsplit(':', 1)[-1]}", "question": question,
            "answer": gold, "meta": {"rationale": rationale}}


class GSM8K(Operator):
    version = "1"
    outputs = {"train": Dataset(PROBLEMS), "heldout": Dataset(PROBLEMS)}

    Params = SourceParams

    def run(self, ctx):
        from .datafiles import frames, load_problems, split

        p = ctx.params
        rows = (load_problems(p.path, gsm8k_row) if p.path else _from_hub(p.hf_dataset, gsm8k_row))
        return frames(*split(rows, p.seed, p.train_size, p.heldout_size))


def _from_hub(name: str | None, parse_row):
    if not name:
        raise ValueError("give `path` (a JSON Lines file) or `hf_dataset`")
    try:
        import datasets
    except ImportError:
        raise ValueError("`hf_dataset` needs the `datasets` package (pip install datasets)") from None
    ds = datasets.load_dataset(name, "main", split="train")
    return [parse_row(dict(r), f"{name}[{i}]") for i, r in enumerate(ds)]
