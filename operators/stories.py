"""One-step word problems on single-digit facts, for STaR on a small real language model.

A problem tells of someone who has some things and then gains or loses some; the question
asks how many they have now. The rationale names the operation the story calls for and
does it, then ends with the answer line that GSM8K-style extraction reads::

    Q: Mia has 7 shells. She finds 5 more shells. How many shells does Mia have now?
    A: Mia had 7 shells and found 5 more, so 7 + 5 = 12.
    The answer is 12.

Additions add two numbers from 1 to 9; subtractions undo them (12 - 5 = 7), so every
problem rests on one of the 81 single-digit addition facts. The model has to choose the
operation from the words and know the fact. `check_steps` says whether a completion writes
exactly the right equation (the question's numbers, in either order for an addition, with
the right operation and result) and the right answer line. Standard library only.
"""

from __future__ import annotations

import random
import re

NAMES = (
    ("Ann", "She"), ("Ben", "He"), ("Mia", "She"), ("Sam", "He"), ("Ava", "She"),
    ("Leo", "He"), ("Zoe", "She"), ("Max", "He"), ("Ivy", "She"), ("Tom", "He"),
    ("Lily", "She"), ("Noah", "He"), ("Emma", "She"), ("Jack", "He"), ("Ella", "She"),
    ("Owen", "He"), ("Ruby", "She"), ("Finn", "He"), ("Nora", "She"), ("Luke", "He"),
)  # fmt: skip
THINGS = (
    "apples", "pencils", "marbles", "stickers", "books", "cookies", "shells", "stamps",
    "cards", "balloons", "coins", "flowers", "crayons", "buttons", "candies", "rocks",
)  # fmt: skip

# (how the question says it, how the rationale says it); `{n}` is the second number
_GAINS = (
    ("{he} finds {n} more {things}.", "found {n} more"),
    ("{he} buys {n} more {things}.", "bought {n} more"),
    ("{he} gets {n} more {things} from a friend.", "got {n} more"),
)
_LOSSES = (
    ("{he} gives {n} {things} to a friend.", "gave away {n}"),
    ("{he} loses {n} {things}.", "lost {n}"),
    ("{he} sells {n} {things}.", "sold {n}"),
)
OPS = {"add": _GAINS, "sub": _LOSSES}

_ANSWER_RE = re.compile(r"The answer is (-?\d+)\.")
_EQUATION_RE = re.compile(r"(-?\d+) ([+-]) (-?\d+) = (-?\d+)")
_START_RE = re.compile(r"^\w+ has (\d+) ")
_SECOND_RE = re.compile(r"^\w+ (?:\w+ )?(\d+) ")

# seeds are offset per split so that the two streams never share a random sequence
_SPLIT_OFFSET = {"train": 0, "heldout": 1_000_003}


def story(name: str, he: str, things: str, op: str, verb: int, a: int, b: int) -> dict:
    """One problem: `a` things, then `b` gained (op "add") or lost (op "sub")."""
    said, done = OPS[op][verb]
    question = (
        f"{name} has {a} {things}. {said.format(he=he, n=b, things=things)} "
        f"How many {things} does {name} have now?"
    )
    result = a + b if op == "add" else a - b
    sign = "+" if op == "add" else "-"
    return {
        "question": question,
        "answer": str(result),
        "rationale": (
            f"{name} had {a} {things} and {done.format(n=b)}, so {a} {sign} {b} = {result}.\n"
            f"The answer is {result}."
        ),
        "op": op,
    }


def _split_of(question: str) -> str:
    """A fixed hash of the question's text: about 1 in 4 is held out, whatever the seed."""
    h = 0
    for ch in question:
        h = (h * 131 + ord(ch)) % 2_147_483_647
    return "heldout" if (h * 48271) % 2_147_483_647 % 4 == 0 else "train"


def make_problems(seed: int, n: int, split: str = "train", ops: tuple = ("add", "sub")) -> list:
    """`n` distinct problems of `split`, the operations in turn (half each for two).

    Rows: ``{"id", "question", "answer", "rationale", "op"}``. Deterministic for a given
    (seed, n, split, ops). A question belongs to one split by a fixed hash of its text, so
    train and held-out never share a question; they share the 81 facts, as any arithmetic
    test shares facts with its training data."""
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    unknown = [op for op in ops if op not in OPS]
    if unknown or not ops:
        raise ValueError(f"ops must be some of {sorted(OPS)}, not {list(ops)}")
    rng = random.Random(f"{seed}:{_SPLIT_OFFSET[split]}")
    rows: list[dict] = []
    seen: set[str] = set()
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > 20 * n + 10_000:  # far past what any size the split holds needs
            raise ValueError(f"{split} has too few distinct questions for {n} problems")
        op = ops[len(rows) % len(ops)]
        name, he = rng.choice(NAMES)
        x, y = rng.randint(1, 9), rng.randint(1, 9)
        a, b = (x, y) if op == "add" else (x + y, y)
        row = story(name, he, rng.choice(THINGS), op, rng.randrange(len(OPS[op])), a, b)
        if row["question"] in seen or _split_of(row["question"]) != split:
            continue
        seen.add(row["question"])
        row["id"] = f"story-{split}-{seed}-{len(rows)}"
        rows.append(row)
    return rows


def parse_question(question: str) -> tuple[int, str, int]:
    """(a, op, b) of a question written by `story`."""
    sentences = question.split(". ")
    start = _START_RE.match(sentences[0]) if sentences else None
    for op, phrasings in OPS.items():
        for said, _ in phrasings:
            words = said.split(" {n} ")[0].replace("{he} ", "")
            if len(sentences) > 1 and f" {words} " in f" {sentences[1]}":
                second = _SECOND_RE.match(sentences[1])
                if start and second:
                    return int(start.group(1)), op, int(second.group(1))
    raise ValueError(f"not a story problem: {question!r}")


def check_steps(question: str, completion: str) -> bool:
    """True only if the completion writes exactly one equation, the right one (the
    question's two numbers, in either order for an addition, its operation, the right
    result), then the right answer line."""
    try:
        a, op, b = parse_question(question)
    except ValueError:
        return False
    result = a + b if op == "add" else a - b
    answer = _ANSWER_RE.search(completion)
    if answer is None or int(answer.group(1)) != result:
        return False
    equations = _EQUATION_RE.findall(completion[: answer.start()])
    if op == "add":
        return equations in (
            [(str(a), "+", str(b), str(result))],
            [(str(b), "+", str(a), str(result))],
        )
    return equations == [(str(a), "-", str(b), str(result))]
