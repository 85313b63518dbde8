"""Held-out problems from the official evaluation files or hub splits, used whole; a seeded
split of the training file as the fallback; every held-out row says which it was."""

import sys
import types
from pathlib import Path

import pytest
from pydantic import ValidationError

from operators.commonsenseqa import CommonsenseQA
from operators.datafiles import DataError, read_jsonl
from operators.gsm8k import GSM8K
from stardag.operator import Context, DefaultResources

FIX = Path(__file__).parent / "fixtures"


def run(op, **params):
    return op().run(Context(op.Params(**params), "problems", {}, DefaultResources()))


def test_a_heldout_file_is_used_whole():
    out = run(
        GSM8K, path=str(FIX / "gsm8k_small.jsonl"), heldout_path=str(FIX / "gsm8k_test_small.jsonl")
    )
    test_questions = [row["question"] for _, row in read_jsonl(FIX / "gsm8k_test_small.jsonl")]
    assert out["heldout"]["question"].to_list() == test_questions  # all of it, in file order
    assert out["heldout"]["answer"].to_list() == ["3", "24", "30"]
    assert out["heldout"]["split"].unique().to_list() == ["gsm8k_test_small.jsonl, whole"]
    assert out["train"].height == 4 and "split" not in out["train"].columns
    also_whole = run(
        GSM8K,
        path=str(FIX / "gsm8k_small.jsonl"),
        heldout_size="all",
        heldout_path=str(FIX / "gsm8k_test_small.jsonl"),
    )
    assert also_whole["heldout"].equals(out["heldout"])

    dev = run(
        CommonsenseQA,
        path=str(FIX / "commonsenseqa_small.jsonl"),
        heldout_path=str(FIX / "commonsenseqa_dev_small.jsonl"),
        train_size=2,
    )
    assert dev["heldout"]["id"].to_list() == ["dev1", "dev2"] and dev["train"].height == 2


def test_a_seeded_sample_of_a_heldout_file_when_asked():
    out = run(
        GSM8K,
        path=str(FIX / "gsm8k_small.jsonl"),
        heldout_path=str(FIX / "gsm8k_test_small.jsonl"),
        heldout_size=2,
        seed=1,
    )
    again = run(
        GSM8K,
        path=str(FIX / "gsm8k_small.jsonl"),
        heldout_path=str(FIX / "gsm8k_test_small.jsonl"),
        heldout_size=2,
        seed=1,
    )
    assert out["heldout"].height == 2 and out["heldout"].equals(again["heldout"])
    assert out["heldout"]["split"][0] == "gsm8k_test_small.jsonl, 2 sampled (seed 1)"
    with pytest.raises(
        DataError, match="heldout_size 5 is more than the 3 problems in gsm8k_test_small"
    ):
        run(
            GSM8K,
            path=str(FIX / "gsm8k_small.jsonl"),
            heldout_path=str(FIX / "gsm8k_test_small.jsonl"),
            heldout_size=5,
        )


def test_heldout_size_all_holds_out_the_whole_source():
    out = run(GSM8K, path=str(FIX / "gsm8k_test_small.jsonl"), heldout_size="all")
    assert sorted(out["heldout"]["answer"].to_list()) == ["24", "3", "30"]
    assert out["train"].height == 0 and out["train"].columns == ["id", "question", "answer", "meta"]
    assert out["heldout"]["split"][0] == "gsm8k_test_small.jsonl, whole"


def test_the_seeded_split_of_the_training_file_is_the_fallback_and_says_so():
    out = run(GSM8K, path=str(FIX / "gsm8k_small.jsonl"), heldout_size=1, seed=0)
    assert out["heldout"].height == 1 and out["train"].height == 3
    assert out["heldout"]["split"][0] == "gsm8k_small.jsonl, seeded split (seed 0, 1 held out)"
    assert not set(out["heldout"]["id"]) & set(out["train"]["id"])


@pytest.mark.parametrize(
    "params,message",
    [
        (dict(heldout_split="test"), "`heldout_split` needs `hf_dataset`"),
        (dict(heldout_size="some"), "heldout_size"),
        (dict(heldout_size=0), "heldout_size"),
    ],
)
def test_contradictory_heldout_params_are_one_clear_error(params, message):
    with pytest.raises(ValidationError, match=message):
        GSM8K.Params(path=str(FIX / "gsm8k_small.jsonl"), **params)


@pytest.fixture
def hub(monkeypatch):
    """A stand-in for the `datasets` package: records what was asked, serves rows in each
    hub dataset's own format."""
    asked = []
    rows = {
        ("openai/gsm8k", "train"): [{"question": "1 + 1?", "answer": "1 + 1 = 2\n#### 2"}] * 3,
        ("openai/gsm8k", "test"): [{"question": "2 + 2?", "answer": "2 + 2 = 4\n#### 4"}] * 2,
        ("tau/commonsense_qa", "validation"): [
            {
                "id": "v1",
                "question": "Where do fish live?",
                "question_concept": "fish",
                "choices": {
                    "label": ["A", "B", "C", "D", "E"],
                    "text": ["tree", "water", "sky", "desk", "road"],
                },
                "answerKey": "B",
            }
        ],
    }

    def load_dataset(name, config=None, split=None):
        asked.append((name, config, split))
        return rows[(name, split)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return asked


def test_hub_sources_read_the_named_splits_with_each_dataset_s_own_config(hub):
    out = run(GSM8K, hf_dataset="openai/gsm8k", heldout_split="test")
    assert hub == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]
    assert out["heldout"]["answer"].to_list() == ["4", "4"] and out["train"].height == 3
    assert out["heldout"]["split"][0] == "openai/gsm8k[test], whole"

    hub.clear()
    dev = run(
        CommonsenseQA, hf_dataset="tau/commonsense_qa", split="validation", heldout_size="all"
    )
    assert hub == [("tau/commonsense_qa", None, "validation")]  # not GSM8K's "main"
    row = dev["heldout"].row(0, named=True)
    assert row["answer"] == "B" and "(b) water" in row["question"]
