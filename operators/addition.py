"""n-digit addition for arithmetic STaR: problems, scratchpads, prompts, parsing, checking.

Pure Python, standard library only, so that importing it costs nothing.

Text format (one character per token, see `operators.tiny_gpt`):

    prompt            "12345+67890\\n"
    prompt with hint  "12345+67890|80235\\n"       (hint = gold answer, between '|' and '\\n')
    completion        "12345+67890:5+0+0=05 5\\n1234+6789:4+9+0=13 35\\n...\\n=80235"

Each scratchpad line restates the operands left to add, adds their last digits with the
carry (``x+y+carry_in=carry_out digit``) and ends with the result digits found so far; the
last line is ``=`` followed by the answer (see `scratchpad`). A 5-digit problem with its
hint is 129 characters (plus an end-of-sequence token): the model has 160 positions.

With layout "inline" (see LAYOUTS; the default pipeline's) the prompt has no newline,
``12345+67890`` or ``12345+67890|80235``, and the completion continues its line from ':'
(``:5+0+0=05 5\\n1234+6789:...``); the verifiers read such a completion with the question's
operands in front.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

HINT_SEP = "|"
#: how a hinted completion is written: the plain scratchpad, or with the hint restated
HINT_FORMATS = ("prompt", "restated")
#: where the prompt ends: after the question's line ("line": the completion restates the
#: operands as its first line) or where the first line's operands end ("inline": the
#: completion continues that line from ':', so the model never copies the prompt's line)
LAYOUTS = ("line", "inline")
STEPS_SEP = ":"
ANSWER_PREFIX = "="
#: every character the prompts and completions can contain
CHARS = "0123456789+=|\n "

_ANSWER_RE = re.compile(r"^=(\d+)$")
_QUESTION_RE = re.compile(r"^\s*(\d+)\s*\+\s*(\d+)\s*$")

# seeds are offset per split so that the two streams never share a random sequence
_SPLIT_OFFSET = {"train": 0, "heldout": 1_000_003, "test": 1_000_003}


# --------------------------------------------------------------------------- problems
def _operand(rng: random.Random, n: int) -> int:
    if n == 1:
        return rng.randint(0, 9)
    return rng.randint(10 ** (n - 1), 10**n - 1)


def _split_of(a: int, b: int, n: int, salt: int = 0) -> str:
    """Deterministic assignment of a question to a split (about 1 in 5 held out).

    Used for lengths whose problem space is large enough; a pure function of the question,
    so a held-out question can never be drawn for training, whatever the seeds."""
    h = (a * 1_000_003 + b * 998_244_353 + n * 7919 + salt) % 2_147_483_647
    h = (h * 48271) % 2_147_483_647
    return "heldout" if h % 5 == 0 else "train"


def make_problems(
    seed: int,
    digits: Iterable[int],
    per_digit: int,
    split: str = "train",
) -> list[dict]:
    """Addition problems whose operands both have exactly n digits, for each n in `digits`.

    Rows: ``{"id", "question": "a+b", "answer": str(a+b), "digits": n}``. Deterministic for
    a given (seed, digits, per_digit, split). Within a call the questions are unique.

    `split` is "train" or "heldout" ("test" is an alias of "heldout"). Every question belongs
    to exactly one split by a fixed hash of the question (about 1 in 5 is held out), so train
    and held-out sets never overlap, whatever seeds they were made with. Small lengths have
    few questions: for 1 and 2 digits `per_digit` is capped at what the split holds (1 digit:
    about 80 train and 20 held-out of the 100 questions).
    """
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    want = "heldout" if split in ("heldout", "test") else "train"
    tag = "add" if want == "train" else "addh"
    rows: list[dict] = []
    for n in sorted(set(int(d) for d in digits)):
        if n < 1:
            raise ValueError(f"digits must be >= 1, got {n}")
        rng = random.Random(f"{seed}:{n}:{_SPLIT_OFFSET[split]}")
        if n <= 2:
            lo = 0 if n == 1 else 10
            pool = [
                (a, b)
                for a in range(lo, 10**n)
                for b in range(lo, 10**n)
                if _split_of(a, b, n) == want
            ]
            rng.shuffle(pool)
            pairs = pool[:per_digit]
        else:
            seen: set[tuple[int, int]] = set()
            pairs = []
            while len(pairs) < per_digit:
                a, b = _operand(rng, n), _operand(rng, n)
                if (a, b) in seen or _split_of(a, b, n) != want:
                    continue
                seen.add((a, b))
                pairs.append((a, b))
        for i, (a, b) in enumerate(pairs):
            rows.append(
                {
                    "id": f"{tag}-{n}-{seed}-{i}",
                    "question": f"{a}+{b}",
                    "answer": str(a + b),
                    "digits": n,
                }
            )
    return rows


def parse_question(question: str) -> tuple[int, int]:
    m = _QUESTION_RE.match(question)
    if not m:
        raise ValueError(f"not an addition question: {question!r}")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------- text
def scratchpad(a: int, b: int) -> str:
    """The completion the model should write for a+b: one line per digit from the right,
    then ``=answer``. Each line restates the operands still to add, so the digits it adds
    are always the ones just before '+' and ':' (found by content, not by counting
    positions, which is what lets a small model extend to longer numbers), and carries the
    result digits found so far, so the answer line is a copy, not a lookup:

        12345+67890:5+0+0=05 5
        1234+6789:4+9+0=13 35
        ...
        1+6:1+6+1=08 80235
        =80235
    """
    sa, sb = str(a), str(b)
    n = max(len(sa), len(sb))
    sa, sb = sa.zfill(n), sb.zfill(n)
    lines, carry, partial = [], 0, ""
    for k in range(n):
        ra, rb = sa[: n - k], sb[: n - k]
        x, y = int(ra[-1]), int(rb[-1])
        total = x + y + carry
        partial = str(total % 10) + partial
        lines.append(f"{ra}+{rb}:{x}+{y}+{carry}={total // 10}{total % 10} {partial}")
        carry = total // 10
    lines.append(f"{ANSWER_PREFIX}{a + b}")
    return "\n".join(lines)


def hinted_scratchpad(a: int, b: int) -> str:
    """The scratchpad a model writes when given the answer as a hint, in the restated
    format: each line restates, after the operands left to add, the hint digits left to
    write, so that the digits a line writes (carry out and result digit) are the last ones
    before ':', found by content as the operand digits are, never by counting positions:

        12345+67890|80235:5+0+0=05 5
        1234+6789|8023:4+9+0=13 35
        ...
        1+6|80:1+6+1=08 80235
        =80235

    Deleting every restated hint (`unhint`) gives exactly `scratchpad(a, b)`."""
    hint = str(a + b)
    lines = scratchpad(a, b).split("\n")
    out = []
    for k, line in enumerate(lines[:-1]):
        operands, steps = line.split(":", 1)
        out.append(f"{operands}{HINT_SEP}{hint[: len(hint) - k]}:{steps}")
    return "\n".join([*out, lines[-1]])


_RESTATED_HINT = re.compile(r"\|\d*(?=:)")


def unhint(completion: str) -> str:
    """A completion written with a hint, with every restated hint (`|digits` before a
    line's ':') deleted: the rationale as it is stored for training, in the plain format.
    A completion with no restated hint is returned unchanged."""
    return _RESTATED_HINT.sub("", completion)


def prompt(question: str, hint: str | None = None, layout: str = "line") -> str:
    """The prompt for `question`; with `hint` (the gold answer) it reads ``a+b|hint\\n``.
    With layout "inline" there is no newline: the completion continues the line from ':'."""
    q = question.strip()
    text = q if hint is None else f"{q}{HINT_SEP}{str(hint).strip()}"
    return text if layout == "inline" else f"{text}\n"


def strip_hint(prompt_text: str) -> str:
    """The prompt with its hint removed (the form stored for training after rationalization)."""
    first, sep, rest = prompt_text.partition("\n")
    return first.split(HINT_SEP, 1)[0] + sep + rest


def _lines(completion: str, question: str | None = None) -> list[str]:
    """A completion's non-empty lines, stripped. A completion that starts at ':' continues
    the prompt's line (layout "inline"): with `question`, its first line is read with the
    question's operands in front, as the line the model and the reader see."""
    if question is not None and completion.startswith(STEPS_SEP):
        completion = question.strip() + completion
    return [ln.strip() for ln in completion.split("\n") if ln.strip()]


def parse_answer(completion: str) -> str | None:
    """The final answer of a completion: the digits of its last non-empty line ``=N``,
    without leading zeros; None when there is no such line or it is malformed."""
    lines = _lines(completion or "")
    if not lines:
        return None
    m = _ANSWER_RE.match(lines[-1])
    if not m:
        return None
    return m.group(1).lstrip("0") or "0"


def check_steps(question: str, completion: str) -> bool:
    """True only if the completion is the right scratchpad: one correct line per digit from
    the right (the remaining operands, their last digits, carry in, carry out, result digit
    and the result so far), in order, no missing or extra lines, and the right answer. A
    completion that starts at ':' is judged as the continuation of the question's line."""
    try:
        a, b = parse_question(question)
    except ValueError:
        return False
    return _lines(completion, question) == scratchpad(a, b).split("\n")


_LINE_RE = re.compile(r"^(\d+)\+(\d+):(\d)\+(\d)\+(\d)=(\d)(\d) (\d+)$")
#: a scratchpad line's fields, in the order it writes them, with their groups in _LINE_RE
LINE_FIELDS = {
    "operands": (0, 2),
    "digit pair": (2, 4),
    "carry in": (4, 5),
    "sum": (5, 7),
    "result so far": (7, 8),
}


def first_wrong_field(question: str, completion: str) -> tuple[str, int | None]:
    """Where a completion first departs from the right scratchpad: (field, line), the field
    one of LINE_FIELDS, "line does not parse", "missing line", "extra line" or "answer
    line", the line counted from 1 (the ones digit's line first); ("right", None) if it
    does not depart."""
    a, b = parse_question(question)
    gold = scratchpad(a, b).split("\n")
    got = _lines(completion, question)
    for i, want in enumerate(gold[:-1]):
        if i >= len(got):
            return "missing line", i + 1
        m, w = _LINE_RE.match(got[i]), _LINE_RE.match(want)
        if got[i] == want or w is None:
            continue
        if m is None:
            return "line does not parse", i + 1
        for name, (lo, hi) in LINE_FIELDS.items():
            if m.groups()[lo:hi] != w.groups()[lo:hi]:
                return name, i + 1
    rest = got[len(gold) - 1 :]
    if not rest:
        return "missing line", len(gold)
    if rest[0] != gold[-1]:
        return ("extra line" if _LINE_RE.match(rest[0]) else "answer line"), len(gold)
    if len(rest) > 1:
        return "extra line", len(gold) + 1
    return "right", None


def pretrain_examples(
    rng: random.Random,
    n: int,
    mix: dict[int, float],
    hint_share: float | dict[int, float],
    exclude: set[str] | None = None,
    hint_format: str = "prompt",
    layout: str = "line",
) -> list[tuple[str, str]]:
    """`n` (prompt, completion) pairs for pretraining: the digit count of each is drawn with
    the weights in `mix` ({digits: weight}, normalized here), and a share `hint_share` of the
    prompts carry the answer as a hint (so that the model learns to read hints); a mapping
    {digits: share} gives each length its own share (0 for a length it leaves out). With
    `hint_format` "prompt" a hinted example's completion is the plain scratchpad; with
    "restated" it restates the hint on every line (`hinted_scratchpad`). With `layout`
    "inline" the prompt is the first line's operands (and hint) and the completion starts
    at its ':'. Questions in `exclude` (e.g. the held-out set's) are redrawn."""
    if hint_format not in HINT_FORMATS:
        raise ValueError(f"hint_format must be one of {', '.join(HINT_FORMATS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
    lengths = sorted(mix)
    weights = [float(mix[d]) for d in lengths]
    if not lengths or sum(weights) <= 0:
        raise ValueError("mix needs at least one positive weight")
    out: list[tuple[str, str]] = []
    while len(out) < n:
        d = rng.choices(lengths, weights)[0]
        a, b = _operand(rng, d), _operand(rng, d)
        q = f"{a}+{b}"
        if exclude and q in exclude:
            continue
        share = hint_share.get(d, 0.0) if isinstance(hint_share, dict) else hint_share
        hint = str(a + b) if rng.random() < share else None
        restated = hint is not None and hint_format == "restated"
        text = (hinted_scratchpad if restated else scratchpad)(a, b)
        if layout == "inline":
            text = text[text.index(STEPS_SEP) :]
        out.append((prompt(q, hint, layout), text))
    return out
