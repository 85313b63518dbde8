"""Problem source: GSM8K (Cobbe et al. 2021) from its official JSON Lines format
({"question", "answer"}, the answer ending in '#### N'), or a Hugging Face dataset name
(`openai/gsm8k`, config "main", splits "train" and "test")."""

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
    return {
        "id": raw.get("id") or f"gsm8k-{where.rsplit(':', 1)[-1]}",
        "question": question,
        "answer": gold,
        "meta": {"rationale": rationale},
    }


class GSM8K(Operator):
    version = "2"
    outputs = {"train": Dataset(PROBLEMS), "heldout": Dataset(PROBLEMS)}

    Params = SourceParams

    def run(self, ctx):
        from .datafiles import problems

        return problems(ctx.params, gsm8k_row, hub_config="main")
