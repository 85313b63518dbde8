"""GSM8K and CommonsenseQA: loaders of the official formats, and answer parsers."""

from pathlib import Path

import pytest

from operators.commonsenseqa import csqa_row
from operators.datafiles import DataError, load_problems, split
from operators.gsm8k import gsm8k_row
from operators.tasks import csqa_parse, get, gsm8k_gold, normalize_number

FIX = Path(__file__).parent / "fixtures"


def test_gsm8k_rows_parse_with_their_gold_numbers():
    rows = load_problems(str(FIX / "gsm8k_small.jsonl"), gsm8k_row)
    assert [r["answer"] for r in rows] == ["7", "1000", "2.5", "-2"]
    assert rows[0]["id"] == "gsm8k-1" and "####" not in rows[0]["meta"]["rationale"]


def test_gsm8k_gold_and_normalization():
    assert gsm8k_gold("blah\n#### 1,000") == "1000"
    assert normalize_number("$ 7.") == "7" and normalize_number("abc") is None
    with pytest.raises(ValueError):
        gsm8k_gold("no final line")


def test_commonsenseqa_rows_put_the_choices_in_the_question():
    rows = load_problems(str(FIX / "commonsenseqa_small.jsonl"), csqa_row)
    assert rows[0]["question"] == (
        "Where do you eat breakfast at home?\nAnswer Choices:\n"
        "(a) table (b) kitchen table (c) chair (d) floor (e) roof"
    )
    assert [r["answer"] for r in rows] == ["B", "E", "A"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("So the answer is (b).", "B"),
        ("The answer is B.", "B"),
        ("(E) valley", "E"),
        ("So the answer is kitchen table.", "B"),
        ("I would say a table", "A"),
        ("the answer is valley", None),
        ("nothing", None),
    ],
)
def test_commonsenseqa_parser_reads_letters_and_choice_texts(text, expected):
    question = load_problems(str(FIX / "commonsenseqa_small.jsonl"), csqa_row)[0]["question"]
    assert csqa_parse(text, question) == expected


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"question": "q", "answer": "a\\n#### 1"}\n{not json}\n', ":2: not a JSON object"),
        ('{"question": "q"}\n', ":1: missing field 'answer'"),
        ('{"question": "q", "answer": "no final line"}\n', ":1: answer has no '#### N' final line"),
        (
            '{"question": "q", "answer": "x\\n#### many"}\n',
            ":1: the final answer after '####' is not a number",
        ),
        ("[1, 2]\n", ":1: not a JSON object"),
        ("", "no problems in the file"),
    ],
)
def test_malformed_gsm8k_files_give_the_file_and_line(tmp_path, content, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_problems(str(f), gsm8k_row)


@pytest.mark.parametrize(
    "row,message",
    [
        (
            '{"answerKey": "F", "id": "x", "question": {"stem": "s", "choices": [{"label": "A", "text": "a"}]}}',
            "answerKey 'F' is not one of the choice labels",
        ),
        (
            '{"answerKey": "A", "id": "x", "question": {"choices": []}}',
            "missing field 'question.stem'",
        ),
        (
            '{"answerKey": "A", "id": "x", "question": {"stem": "s", "choices": "A"}}',
            "should be list",
        ),
        (
            '{"answerKey": "A", "id": "x", "question": {"stem": "s", "choices": [{"label": "A"}]}}',
            "each choice needs a string",
        ),
    ],
)
def test_malformed_commonsenseqa_rows_are_refused(tmp_path, row, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(row + "\n")
    with pytest.raises(DataError, match=message):
        load_problems(str(f), csqa_row)


def test_missing_file_and_split():
    with pytest.raises(DataError, match="file not found"):
        load_problems("/nonexistent/x.jsonl", gsm8k_row)
    rows = [{"id": str(i)} for i in range(10)]
    train, held = split(rows, 0, None, 3)
    assert (
        len(held) == 3
        and len(train) == 7
        and not {r["id"] for r in train} & {r["id"] for r in held}
    )
    assert split(rows, 0, 2, 3)[0] == train[:2]
    with pytest.raises(DataError):
        split(rows, 0, None, 10)


def test_tasks_are_registered_by_name():
    assert get("gsm8k").parse("#### 5", "") == "5"
    assert get("commonsenseqa").gold(" b ") == "B"
