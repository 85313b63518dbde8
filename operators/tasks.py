"""Tasks: how to read a final answer from a completion and, where the task allows it, how
to check every step. Verifiers choose a task by name; register more with `register`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Callable

from pydantic import AfterValidator

from . import arith


@dataclass(frozen=True)
class Task:
    name: str
    parse: Callable[[str, str], str | None]   # (completion, question) -> answer, None if none
    gold: Callable[[str], str]                # gold answer as stored -> normalized answer
    check_steps: Callable[[str, str], bool] | None = None  # (question, completion) -> all right


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def get(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name]


def _known(name: str) -> str:
    get(name)
    return name


# a param naming a task: an unknown name is a spec error, found when the spec compiles
TaskName = Annotated[str, AfterValidator(_known)]


def _digits(answer: str) -> str:
    return answer.strip().lstrip("0") or "0"


register(Task("arithmetic", lambda completion, question: arith.parse_answer(completion), _digits,
              arith.check_steps))


# --- GSM8K: the final number -------------------------------------------------------------
_NUMBER = re.compile(r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\$?\s*\.\d+")


def normalize_number(text: str) -> str | None:
    """'$1,234.50' -> '1234.5', '72.0' -> '72', '-3.' -> '-3'; None if no number."""
    t = text.strip().replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = float(t)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value == int(value):
        return str(int(value))
    return repr(value).rstrip("0").rstrip(".")


def gsm8k_gold(answer: str) -> str:
    """The number after '####' in a GSM8K solution, or the answer itself if it is a number."""
    tail = answer.rsplit("####", 1)[-1]
    value = normalize_number(tail)
    if value is None:
        raise ValueError(f"no final number in GSM8K answer {answer[-40:]!r}")
    return value


def gsm8k_parse(completion: str, question: str = "") -> str | None:
    """The sample's final answer: after '####' if present, else after 'answer is', else the
    last number in the text."""
    for marker in ("####", "answer is", "Answer:", "answer:"):
        if marker in completion:
            found = _NUMBER.findall(completion.rsplit(marker, 1)[1])
            if found:
                return normalize_number(found[0])
    found = _NUMBER.findall(completion)
    return normalize_number(found[-1]) if found else None


register(Task("gsm8k", gsm8k_parse, gsm8k_gold))


# --- CommonsenseQA: the choice letter ------------------------------------------------------
_CHOICE_LINE = re.compile(r"\(([A-Ea-e])\)\s*([^()\n]+)")


def choices_of(question: str) -> dict[str, str]:
    """{'A': 'ignore', ...} from a question written with '(A) ignore (B) ...'."""
    return {m.group(1).upper(): m.group(2).strip().rstrip(".").strip() for m in _CHOICE_LINE.finditer(question)}


def csqa_parse(completion: str, question: str = "") -> str | None:
    """The chosen letter: '(b)', 'answer is B', 'B)', or the text of a choice when the sample
    names it instead of its letter."""
    tail = completion.rsplit("answer is", 1)[-1] if "answer is" in completion else completion
    m = re.search(r"\(([A-Ea-e])\)", tail) or re.search(r"(?:^|\s)([A-E])(?:[).:,]|\s|$)", tail)
    if m:
        return m.group(1).upper()
    text = tail.strip().strip(".").lower()
    hits = [k for k, v in choices_of(question).items() if v.lower() and v.lower() in text]
    if len(hits) == 1:
        return hits[0]
    if hits:  # the longest named choice wins ('table' vs 'kitchen table')
        return max(hits, key=lambda k: len(choices_of(question)[k]))
    return None


register(Task("commonsenseqa", csqa_parse, lambda a: a.strip().upper()))
