"""Addition written in words for real language models: the rationale the exemplars show, and
the step checker that tells a faithful rationale from one that copies the hinted answer."""

import random

import polars as pl
import pytest

from operators import word_addition
from operators.tasks import get
from operators.verify import verify_table


def test_the_rationale_adds_one_column_per_line_and_ends_with_the_answer_line():
    assert word_addition.rationale(47, 38) == (
        "Ones: 7 + 8 = 15. Write 5, carry 1.\nTens: 4 + 3 + 1 = 8. Write 8.\nThe answer is 85."
    )
    assert word_addition.rationale(68, 57).split("\n")[1] == "Tens: 6 + 5 + 1 = 12. Write 12."
    assert word_addition.rationale(6, 9) == "Ones: 6 + 9 = 15. Write 15.\nThe answer is 15."


def test_every_right_rationale_passes_and_reads_back_its_answer():
    rng = random.Random(0)
    task = get("word_addition")
    for _ in range(500):
        n = rng.randint(1, 7)
        a, b = rng.randint(10 ** (n - 1), 10**n - 1), rng.randint(10 ** (n - 1), 10**n - 1)
        text = word_addition.rationale(a, b)
        assert task.check_steps(f"{a}+{b}", text)
        assert task.parse(text, f"{a}+{b}") == task.gold(str(a + b)) == str(a + b)


RIGHT = "Ones: 7 + 8 = 15. Write 5, carry 1.\nTens: 4 + 3 + 1 = 8. Write 8.\nThe answer is 85."


@pytest.mark.parametrize(
    "completion,faithful",
    [
        (RIGHT, True),
        # worded differently, the same sums: still right
        ("First 7 + 8 = 15, so 5 and carry 1. Then 4 + 3 + 1 = 8.\nThe answer is 85.", True),
        # a wrong sum, then the hinted answer copied: the answer verifier keeps it
        (
            "Ones: 7 + 8 = 14. Write 4, carry 1.\nTens: 4 + 3 + 1 = 8. Write 8.\nThe answer is 85.",
            False,
        ),
        # the carry forgotten
        (
            "Ones: 7 + 8 = 15. Write 5, carry 1.\nTens: 4 + 3 = 7. Write 7.\nThe answer is 85.",
            False,
        ),
        # the digits of another column
        ("Ones: 4 + 3 = 7. Write 7.\nTens: 7 + 8 = 15. Write 15.\nThe answer is 85.", False),
        ("Ones: 7 + 8 = 15. Write 5, carry 1.\nThe answer is 85.", False),  # a column missing
        (RIGHT.replace("The answer", "Hundreds: 0 + 0 = 0.\nThe answer"), False),  # one extra
        (RIGHT.replace("85.", "86."), False),  # the right steps, a wrong answer
        ("The answer is 85.", False),  # no steps at all
    ],
)
def test_the_step_checker_reads_the_sums_not_the_wording(completion, faithful):
    assert word_addition.check_steps("47+38", completion) is faithful


def test_the_step_verifier_drops_rationales_that_the_answer_verifier_keeps():
    copied = "Ones: 7 + 8 = 14. Write 4, carry 1.\nTens: 4 + 3 + 1 = 8. Write 8.\nThe answer is 85."
    samples = pl.DataFrame(
        {
            "question": ["47+38", "47+38", "47+38"],
            "answer": ["85", "85", "85"],
            "completion": [RIGHT, copied, RIGHT],
            "finish_reason": ["stop", "stop", "length"],
        }
    )
    assert verify_table(samples, "word_addition", "answer", "strict")["correct"].to_list() == [
        True,
        True,
        False,  # cut off at the token limit: never right
    ]
    assert verify_table(samples, "word_addition", "steps")["correct"].to_list() == [
        True,
        False,
        False,
    ]
