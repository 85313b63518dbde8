"""One-step word problems for real language models: the problems and their splits, the
rationale the exemplars show, and the step checker that keeps only faithful rationales."""

import polars as pl
import pytest

from operators import stories
from operators.story_problems import StoryProblems
from operators.tasks import get
from operators.verify import verify_table
from stardag.operator import Context, DefaultResources

Q = "Mia has 7 shells. She finds 5 more shells. How many shells does Mia have now?"
RIGHT = "Mia had 7 shells and found 5 more, so 7 + 5 = 12.\nThe answer is 12."
Q_SUB = "Ben has 12 coins. He loses 5 coins. How many coins does Ben have now?"
RIGHT_SUB = "Ben had 12 coins and lost 5, so 12 - 5 = 7.\nThe answer is 7."


def test_a_story_and_its_rationale_name_the_operation_and_end_with_the_answer_line():
    add = stories.story("Mia", "She", "shells", "add", 0, 7, 5)
    assert (add["question"], add["rationale"], add["answer"]) == (Q, RIGHT, "12")
    sub = stories.story("Ben", "He", "coins", "sub", 1, 12, 5)
    assert (sub["question"], sub["rationale"], sub["answer"]) == (Q_SUB, RIGHT_SUB, "7")


def test_every_problem_rests_on_a_single_digit_fact_and_its_rationale_passes():
    task = get("stories")
    rows = stories.make_problems(0, 600) + stories.make_problems(0, 600, "heldout")
    for row in rows:
        a, op, b = stories.parse_question(row["question"])
        assert op == row["op"]
        fact = (a, b) if op == "add" else (a - b, b)
        assert all(1 <= x <= 9 for x in fact), row["question"]
        assert stories.check_steps(row["question"], row["rationale"])
        assert task.parse(row["rationale"], row["question"]) == task.gold(row["answer"])
    # every phrasing of both operations occurs, the operations in turn
    assert {r["op"] for r in rows[:2]} == {"add", "sub"}
    for op, phrasings in stories.OPS.items():
        for said, _ in phrasings:
            start = said.split(" {n} ")[0].replace("{he} ", "")
            assert any(f" {start} " in r["question"] for r in rows if r["op"] == op), said


def test_train_and_heldout_never_share_a_question_whatever_the_seeds():
    train = {r["question"] for s in (0, 1) for r in stories.make_problems(s, 1000)}
    heldout = {r["question"] for s in (0, 2) for r in stories.make_problems(s, 400, "heldout")}
    assert len(heldout) > 700 and not train & heldout
    again = stories.make_problems(0, 50)
    assert again == stories.make_problems(0, 50) != stories.make_problems(1, 50)
    assert len({r["question"] for r in again}) == 50


def test_bad_splits_operations_and_sizes_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="split"):
        stories.make_problems(0, 5, "test")
    with pytest.raises(ValueError, match="ops"):
        stories.make_problems(0, 5, ops=("mul",))
    with pytest.raises(ValueError, match="ops"):
        stories.make_problems(0, 5, ops=())
    # one name and one thing: 243 questions an operation, about 60 of them held out
    monkeypatch.setattr(stories, "NAMES", (("Ann", "She"),))
    monkeypatch.setattr(stories, "THINGS", ("apples",))
    assert len(stories.make_problems(0, 40, "heldout", ops=("sub",))) == 40
    with pytest.raises(ValueError, match="too few distinct questions"):
        stories.make_problems(0, 100, "heldout", ops=("sub",))
    with pytest.raises(ValueError, match="not a story problem"):
        stories.parse_question("What is 3+4?")


@pytest.mark.parametrize(
    "question,completion,faithful",
    [
        (Q, RIGHT, True),
        # worded differently, the same equation: still right
        (Q, "7 shells and 5 more shells: 7 + 5 = 12.\nThe answer is 12.", True),
        (Q, "Mia had 7 shells and found 5 more, so 5 + 7 = 12.\nThe answer is 12.", True),
        (Q_SUB, RIGHT_SUB, True),
        # the hint copied with a wrong equation: the answer line alone is right
        (Q, "Mia had 7 shells and found 5 more, so 7 + 5 = 13.\nThe answer is 12.", False),
        (Q, "Mia had 7 shells and lost 5, so 7 - 5 = 2.\nThe answer is 12.", False),
        (Q, "Mia had 7 shells.\nThe answer is 12.", False),  # no equation
        (Q, "So 7 + 5 = 12 and 12 + 0 = 12.\nThe answer is 12.", False),  # one too many
        (Q_SUB, "Ben had 12 coins and lost 5, so 5 - 12 = 7.\nThe answer is 7.", False),
        (Q_SUB, "Ben had 12 coins and lost 5, so 12 + 5 = 7.\nThe answer is 7.", False),
        (Q, "Mia had 7 shells and found 5 more, so 7 + 5 = 12.", False),  # no answer line
        (Q, "so 7 + 5 = 12.\nThe answer is 13.", False),  # a wrong answer line
        ("What is 7+5?", RIGHT, False),  # not a story problem
    ],
)
def test_only_the_right_equation_and_answer_line_pass(question, completion, faithful):
    assert stories.check_steps(question, completion) is faithful


def test_verify_in_steps_mode_drops_a_right_answer_reached_by_a_wrong_equation():
    copied = "Mia had 7 shells and found 5 more, so 7 + 5 = 13.\nThe answer is 12."
    samples = pl.DataFrame(
        {
            "question": [Q, Q],
            "answer": ["12", "12"],
            "completion": [RIGHT, copied],
            "finish_reason": ["stop", "stop"],
        }
    )
    by_answer = verify_table(samples, "stories", "answer", "strict")["correct"].to_list()
    by_steps = verify_table(samples, "stories", "steps", "strict")["correct"].to_list()
    assert (by_answer, by_steps) == ([True, True], [True, False])


def test_the_source_writes_both_splits_with_the_operation_to_slice_by(tmp_path):
    params = StoryProblems.Params(seed=3, train_size=10, heldout_size=6, ops=["sub"])
    out = StoryProblems().run(Context(params, "test", {}, DefaultResources(cpus=1)))
    assert (out["train"].height, out["heldout"].height) == (10, 6)
    assert {m["op"] for m in out["train"]["meta"].to_list()} == {"sub"}
    assert out["train"]["id"].n_unique() == 10
    assert not set(out["train"]["question"]) & set(out["heldout"]["question"])
    bad_params = [
        {"train_size": 0},
        {"ops": []},
        {"ops": ["mul"]},
        {"heldout_size": 10**9},
        # more than one operation has questions for: refused, not drawn forever
        {"heldout_size": 15_000, "ops": ["sub"]},
        {"train_size": 10_001, "ops": ["add", "add"]},
    ]
    for bad in bad_params:
        with pytest.raises(ValueError):
            StoryProblems.Params(**bad)
