"""Problem source: CommonsenseQA (Talmor et al. 2019) from its official JSON Lines format
(answerKey, id, question.stem, question.choices[{label, text}]). The choices are written
into the question text, '(A) ignore (B) enforce ...', as the paper's prompts do, and kept in
`meta`. From the hub: `tau/commonsense_qa`, splits "train" and "validation"."""

from __future__ import annotations

from stardag.operator import Dataset, Operator

from .arithmetic import PROBLEMS
from .datafiles import SourceParams


def csqa_row(raw: dict, where: str) -> dict:
    from .datafiles import DataError, field

    stem = field(raw, "question.stem", where)
    choices = field(raw, "question.choices", where, list)
    labels = []
    for c in choices:
        if (
            not isinstance(c, dict)
            or not isinstance(c.get("label"), str)
            or not isinstance(c.get("text"), str)
        ):
            raise DataError(f"{where}: each choice needs a string `label` and `text`")
        labels.append(c["label"])
    key = field(raw, "answerKey", where)
    if key not in labels:
        raise DataError(f"{where}: answerKey {key!r} is not one of the choice labels {labels}")
    text = " ".join(f"({c['label'].lower()}) {c['text']}" for c in choices)
    # the paper's hint: the correct choice marked in the question
    marked = " ".join(
        f"({c['label'].lower()}) {c['text']}" + (" (CORRECT)" if c["label"] == key else "")
        for c in choices
    )
    return {
        "id": field(raw, "id", where),
        "question": f"{stem}\nAnswer Choices:\n{text}",
        "answer": key,
        "meta": {
            "stem": stem,
            "choices": text,
            "answer_text": next(c["text"] for c in choices if c["label"] == key),
            "question_with_hint": f"{stem}\nAnswer Choices:\n{marked}",
        },
    }


def hub_row(raw: dict) -> dict:
    """A row of the hub's `tau/commonsense_qa` (choices as {label: [...], text: [...]}) in
    the official file format."""
    choices = raw.get("choices")
    if not isinstance(choices, dict):
        return raw
    return {
        "id": raw.get("id"),
        "answerKey": raw.get("answerKey"),
        "question": {
            "stem": raw.get("question"),
            "choices": [
                {"label": label, "text": text}
                for label, text in zip(choices.get("label") or [], choices.get("text") or [])
            ],
        },
    }


class CommonsenseQA(Operator):
    version = "2"
    outputs = {"train": Dataset(PROBLEMS), "heldout": Dataset(PROBLEMS)}

    Params = SourceParams

    def run(self, ctx):
        from .datafiles import problems

        # the hub's dataset has one (default) config and no answers in its "test" split:
        # the paper's held-out set is "validation" (the dev set)
        return problems(ctx.params, csqa_row, hub_config=None, hub_row=hub_row)
