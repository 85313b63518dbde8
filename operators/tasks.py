"""Tasks: how to read a final answer from a completion and, where the task allows it, how
to check every step. Verifiers choose a task by name; register more with `register`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator

from . import addition, stories, word_addition


@dataclass(frozen=True)
class Task:
    name: str
    parse: Callable[[str, str], str | None]  # (completion, question) -> answer, None if none
    gold: Callable[[str], str]  # gold answer as stored -> normalized answer
    check_steps: Callable[[str, str], bool] | None = None  # (question, completion) -> all right
    # named answer extractions a spec can choose (`extract: strict`); `parse` is the default
    extractors: dict[str, Callable[[str, str], str | None]] = field(default_factory=dict)
    # a completion sampled with a hint -> the rationale as stored (the hint's traces removed)
    unhint: Callable[[str], str] | None = None

    def extractor(self, mode: str | None) -> Callable[[str, str], str | None]:
        if mode is None:
            return self.parse
        if mode not in self.extractors:
            known = ", ".join(sorted(self.extractors)) or "none; leave `extract` out"
            raise ValueError(f"task {self.name!r} has no extraction {mode!r} (it has: {known})")
        return self.extractors[mode]


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


register(
    Task(
        "arithmetic",
        lambda completion, question: addition.parse_answer(completion),
        _digits,
        addition.check_steps,
        unhint=addition.unhint,
    )
)


# --- GSM8K: the final number, read as lm-evaluation-harness reads it ----------------------
# lm-eval's gsm8k task (strict-match: '#### N'), its gsm8k_cot task (strict-match:
# 'The answer is N.'), and both tasks' flexible-extract (the last number), with the
# normalization of its exact_match metric (regexes_to_ignore: ',', '$', '(?s).*#### ',
# a trailing '.'; ignore_case). Kept to the character, quirks included, so that accuracies
# compare with lm-eval's.
_STRICT = (re.compile(r"#### (\-?[0-9\.\,]+)"), re.compile(r"The answer is (\-?[0-9\.\,]+)."))
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def _regex_filter(pattern: re.Pattern, text: str, group_select: int) -> str | None:
    """lm-eval's `regex` filter then `take_first`: the selected match (the first non-empty
    group of it), stripped; None where lm-eval gives its '[invalid]' fallback."""
    found = pattern.findall(text)
    if not found:
        return None
    match = found[group_select]
    if isinstance(match, tuple):
        match = [m for m in match if m][0]
    return match.strip()


def _exact_match_form(text: str) -> str:
    for pattern in _IGNORE:
        text = pattern.sub("", text)
    return text.lower()


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


def gsm8k_strict(completion: str, question: str = "") -> str | None:
    """The final-answer line: the first '#### N', else the first 'The answer is N.'"""
    for pattern in _STRICT:
        found = _regex_filter(pattern, completion, 0)
        if found is not None:
            return _exact_match_form(found)
    return None


def gsm8k_flexible(completion: str, question: str = "") -> str | None:
    """The last number in the text."""
    found = _regex_filter(_FLEXIBLE, completion, -1)
    return None if found is None else _exact_match_form(found)


def gsm8k_parse(completion: str, question: str = "", mode: str = "strict") -> str | None:
    return (gsm8k_strict if mode == "strict" else gsm8k_flexible)(completion, question)


register(
    Task(
        "gsm8k",
        gsm8k_strict,
        gsm8k_gold,
        extractors={"strict": gsm8k_strict, "flexible": gsm8k_flexible},
    )
)


# addition written in words (`word_addition`): the answer read as GSM8K's, and the steps
# checked column by column
register(
    Task(
        "word_addition",
        gsm8k_strict,
        gsm8k_gold,
        word_addition.check_steps,
        extractors={"strict": gsm8k_strict, "flexible": gsm8k_flexible},
    )
)


# one-step word problems (`stories`): the answer read as GSM8K's, and the one equation checked
register(
    Task(
        "stories",
        gsm8k_strict,
        gsm8k_gold,
        stories.check_steps,
        extractors={"strict": gsm8k_strict, "flexible": gsm8k_flexible},
    )
)


# --- CommonsenseQA: the one choice the answer commits to ------------------------------------
_CHOICE_LINE = re.compile(r"\(([A-Ea-e])\)\s*([^()\n]+)")
_COMMITMENT = re.compile(r"answer is\s*:?", re.IGNORECASE)
_LETTER_IN_PARENS = re.compile(r"\(([A-Ea-e])\)")
_LEADING_LETTER = re.compile(r"\s*([A-E])(?=[\s).:,;!]|$)")


def choices_of(question: str) -> dict[str, str]:
    """{'A': 'ignore', ...} from a question written with '(A) ignore (B) ...'."""
    return {
        m.group(1).upper(): m.group(2).strip().rstrip(".").strip()
        for m in _CHOICE_LINE.finditer(question)
    }


def named_choices(answer: str, question: str) -> set[str]:
    """Every choice an answer names: letters in parentheses anywhere, a bare capital letter
    at its start ('B.'), and choice texts (the longest first, so 'kitchen table' is one
    choice, not also 'table'). A text that two choices share names both, unless the answer
    also names one of them by its letter ('(a) home')."""
    letters = {m.group(1).upper() for m in _LETTER_IN_PARENS.finditer(answer)}
    lead = _LEADING_LETTER.match(answer)
    if lead:
        letters.add(lead.group(1))
    letters_of: dict[str, set[str]] = {}
    for letter, text in choices_of(question).items():
        if text:
            letters_of.setdefault(text.lower(), set()).add(letter)
    named = set(letters)
    if letters_of:
        texts = sorted(letters_of, key=len, reverse=True)
        pattern = re.compile("|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in texts))
        for m in pattern.finditer(answer.lower()):
            if not letters_of[m.group(0)] & letters:
                named |= letters_of[m.group(0)]
    return named


def _csqa(completion: str, question: str, strict: bool) -> str | None:
    """The letter of the one choice the answer commits to; None when it names none or
    several. The answer is what follows the last 'answer is' up to the end of that line;
    without one, strict finds no answer, flexible reads the last non-empty line."""
    found = list(_COMMITMENT.finditer(completion))
    if found:
        answer = completion[found[-1].end() :].split("\n", 1)[0]
    elif strict:
        return None
    else:
        lines = [line for line in completion.splitlines() if line.strip()]
        answer = lines[-1] if lines else ""
    named = named_choices(answer, question)
    return named.pop() if len(named) == 1 else None


def csqa_strict(completion: str, question: str = "") -> str | None:
    return _csqa(completion, question, strict=True)


def csqa_flexible(completion: str, question: str = "") -> str | None:
    return _csqa(completion, question, strict=False)


def csqa_parse(completion: str, question: str = "", mode: str = "flexible") -> str | None:
    return _csqa(completion, question, strict=mode == "strict")


register(
    Task(
        "commonsenseqa",
        csqa_flexible,
        lambda a: a.strip().upper(),
        extractors={"strict": csqa_strict, "flexible": csqa_flexible},
    )
)
