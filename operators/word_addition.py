"""Addition written out in words, column by column, for STaR on a real language model.

A rationale adds one column per sentence, from the ones up, and ends with the answer line
that GSM8K-style extraction reads (`The answer is N.`)::

    Ones: 7 + 5 = 12. Write 2, carry 1.
    Tens: 3 + 4 + 1 = 8. Write 8.
    The answer is 82.

`rationale` writes the right one; `check_steps` says whether a completion's sums are exactly
those, in order, and its answer line is right, however the sentences around them are worded.
Standard library only.
"""

from __future__ import annotations

import re

from . import addition

#: column names from the ones up; longer numbers are named by position ("Column 7")
COLUMNS = ("Ones", "Tens", "Hundreds", "Thousands", "Ten thousands", "Hundred thousands")

# one column's sum as a rationale writes it: "3 + 4 = 7" or "3 + 4 + 1 = 8"
_SUM_RE = re.compile(r"(\d+) \+ (\d+)(?: \+ (\d+))? = (\d+)")
_ANSWER_RE = re.compile(r"The answer is (\d+)\.")


def _column(i: int) -> str:
    return COLUMNS[i] if i < len(COLUMNS) else f"Column {i + 1}"


def column_sums(a: int, b: int) -> list[tuple[int, int, int, int]]:
    """The sums of a + b, one per column from the ones up: (x, y, carry in, total)."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    sums, carry = [], 0
    for i in range(max(len(xs), len(ys))):
        x = int(xs[i]) if i < len(xs) else 0
        y = int(ys[i]) if i < len(ys) else 0
        sums.append((x, y, carry, x + y + carry))
        carry = (x + y + carry) // 10
    return sums


def rationale(a: int, b: int) -> str:
    """The right column-by-column rationale of a + b, ending with its answer line."""
    sums = column_sums(a, b)
    lines = []
    for i, (x, y, carry, total) in enumerate(sums):
        added = f"{x} + {y}" + (f" + {carry}" if carry else "")
        # the last column writes its whole total; the others carry its tens
        write = f"{total % 10}, carry 1" if total >= 10 and i < len(sums) - 1 else str(total)
        lines.append(f"{_column(i)}: {added} = {total}. Write {write}.")
    lines.append(f"The answer is {a + b}.")
    return "\n".join(lines)


def written_sums(completion: str) -> list[tuple[int, int, int, int]]:
    """The sums a completion writes, in order, before its answer line: (x, y, carry, total),
    carry 0 where it adds two numbers."""
    end = _ANSWER_RE.search(completion)
    text = completion[: end.start()] if end else completion
    return [(int(x), int(y), int(c or 0), int(t)) for x, y, c, t in _SUM_RE.findall(text)]


def check_steps(question: str, completion: str) -> bool:
    """True only if the completion writes exactly the right column sums of the question
    (`a+b`), in order, none missing and none extra, and then the right answer line."""
    try:
        a, b = addition.parse_question(question)
    except ValueError:
        return False
    answer = _ANSWER_RE.search(completion)
    if answer is None or int(answer.group(1)) != a + b:
        return False
    return written_sums(completion) == column_sums(a, b)
