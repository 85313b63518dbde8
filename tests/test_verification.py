"""Verification a reviewer can trust: GSM8K answers read as lm-evaluation-harness reads them
(strict-match and flexible-extract), CommonsenseQA answers that must commit to one choice,
and completions cut off at the token limit never counted correct."""

import polars as pl
import pytest
from pydantic import ValidationError

from operators import addition, stories, word_addition
from operators.evaluate import Evaluate
from operators.hint_rationalize import HintRationalize
from operators.tasks import csqa_flexible, csqa_strict, gsm8k_flexible, gsm8k_strict
from operators.verify import Verify, verify_table
from stardag.operator import Context, DefaultResources

# lm-eval's gsm8k_cot few-shot targets and GSM8K's own solution format
COT_TREES = (
    "There are 15 trees originally. Then there were 21 trees after some more were "
    "planted. So there must have been 21 - 15 = 6. The answer is 6."
)
COT_OLIVIA = (
    "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. "
    "So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8."
)
GSM8K_SOLUTION = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
    "<<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


@pytest.mark.parametrize(
    "text,strict,flexible",
    [
        (COT_TREES, "6", "6"),
        (COT_OLIVIA, "8", "8"),
        (GSM8K_SOLUTION, "72", "72"),
        ("The price is 1,200 - 200 = 1,000 dollars.\n#### 1,000", "1000", "1000"),
        ("#### -3", "-3", "-3"),
        # only the final-answer line counts as strict; flexible takes the last number
        ("So the answer is 72.", None, "72"),
        ("The answer is 42.\n\nQ: Tom has 7 apples", "42", "7"),
        ("The total is 5 + 13 = 18 dollars.", None, "18"),
        ("no number here", None, None),
        # exact match compares strings: '$18.00' is not '18', in lm-eval as here
        ("The total is $18.00.", None, "18.00"),
        # lm-eval's 'The answer is (N).' needs one character after the number: kept as it is
        ("The answer is 72", "7", "72"),
    ],
)
def test_gsm8k_strict_and_flexible_read_answers_as_lm_eval_does(text, strict, flexible):
    assert gsm8k_strict(text) == strict
    assert gsm8k_flexible(text) == flexible


def samples(completions, answers, finish, question="q"):
    n = len(completions)
    return pl.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "question": [question] * n,
            "answer": answers,
            "prompt": [""] * n,
            "sample_index": [0] * n,
            "completion": completions,
            "prompt_tokens": [1] * n,
            "completion_tokens": [1] * n,
            "finish_reason": finish,
        }
    )


def ctx(op, **params):
    return Context(op.Params(**params), "test", {}, DefaultResources(cpus=1))


def test_the_extraction_is_chosen_in_the_spec():
    s = samples(["So the answer is 72.", "Then 3 more.\n#### 10"], ["72", "10"], ["eos", "eos"])
    strict = Verify().run(ctx(Verify, task="gsm8k", extract="strict"), s)
    flexible = Verify().run(ctx(Verify, task="gsm8k", extract="flexible"), s)
    assert strict["correct"].to_list() == [False, True]
    assert flexible["correct"].to_list() == [True, True]
    assert Verify.Params(task="gsm8k").extract is None  # the task's default: strict
    assert Verify().run(ctx(Verify, task="gsm8k"), s)["correct"].to_list() == [False, True]
    for op in (Verify, Evaluate, HintRationalize):
        with pytest.raises(ValidationError, match="task 'arithmetic' has no extraction 'strict'"):
            op.Params(task="arithmetic", extract="strict")
        with pytest.raises(ValidationError):
            op.Params(task="gsm8k", extract="lenient")


STORY = stories.story("Mia", "She", "shells", "add", 0, 7, 5)


@pytest.mark.parametrize(
    "task,extract,mode,completion,answer,question",
    [
        ("gsm8k", "strict", "answer", "The score is 86.\n#### 86", "86", "q"),
        ("gsm8k", "flexible", "answer", "She has 3/", "3", "q"),
        ("gsm8k", "flexible", "answer", "...The score is 86, and the", "86", "q"),
        (
            "commonsenseqa",
            "flexible",
            "answer",
            "So the answer is (b).",
            "B",
            "Q\nAnswer Choices:\n(a) x (b) y",
        ),
        ("arithmetic", None, "answer", addition.scratchpad(12, 34), "46", "12+34"),
        ("arithmetic", None, "steps", addition.scratchpad(12, 34), "46", "12+34"),
        ("stories", "strict", "steps", STORY["rationale"], "12", STORY["question"]),
        ("word_addition", "flexible", "steps", word_addition.rationale(47, 38), "85", "47+38"),
    ],
)
def test_a_truncated_completion_is_never_correct(task, extract, mode, completion, answer, question):
    reasons = ["length", "eos", "stop"]
    s = samples([completion] * 3, [answer] * 3, reasons, question)
    out = verify_table(s, task, mode, extract)
    # the same text is right when the model ended it, and wrong when the token limit did
    assert out["correct"].to_list() == [False, True, True]
    assert out["pred"][0] == out["pred"][1] is not None


QUESTION = (
    "Where do you eat breakfast at home?\nAnswer Choices:\n"
    "(a) table (b) kitchen table (c) chair (d) floor (e) roof"
)


@pytest.mark.parametrize(
    "text,strict,flexible",
    [
        ("Breakfast is eaten in the kitchen. So the answer is (b).", "B", "B"),
        ("The answer is B.", "B", "B"),
        ("So the answer is kitchen table.", "B", "B"),  # the longest choice text
        ("The answer is (b) kitchen table.", "B", "B"),  # letter and text agree
        ("The answer is (b). A kitchen table is where families eat.", "B", "B"),
        ("The answer is roof.\nQ: next", "E", "E"),
        # names two choices: wrong, in either mode
        ("So the answer is (a) or (b).", None, None),
        ("The answer is (b) table.", None, None),
        ("The answer is chair or floor.", None, None),
        # commits to nothing
        ("the answer is valley", None, None),
        ("Let me think about this.", None, None),
        # no 'answer is': strict finds no answer; flexible reads the last line
        ("You eat at a table.\nI would say a kitchen table", None, "B"),
        ("(e) roof", None, "E"),
    ],
)
def test_commonsenseqa_answers_commit_to_exactly_one_choice(text, strict, flexible):
    assert csqa_strict(text, QUESTION) == strict
    assert csqa_flexible(text, QUESTION) == flexible


def test_a_choice_text_that_two_choices_share_names_both():
    # CommonsenseQA has such questions: '(a) home (b) hardware store (c) home ...'
    question = (
        "Where?\nAnswer Choices:\n(a) home (b) hardware store (c) home (d) hot room (e) office"
    )
    assert csqa_flexible("So the answer is home.", question) is None
    assert csqa_flexible("So the answer is (a) home.", question) == "A"  # the letter decides
    assert csqa_flexible("So the answer is (a).", question) == "A"
    assert csqa_flexible("So the answer is (b) home.", question) is None
