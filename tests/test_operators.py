"""The STaR operators, each on its own, on a tiny character-level model made here."""

import re
from pathlib import Path

import polars as pl
import pytest

from operators import addition, hf_common, tiny_gpt
from operators.dedupe import Dedupe
from operators.evaluate import Evaluate
from operators.fewshot_prompt import FewshotPrompt
from operators.hint_rationalize import HintRationalize
from operators.sample import Sample
from operators.shard_train import ShardTrain, step_budget
from operators.verify import Verify
from stardag.operator import Context, DefaultResources


def ctx(op, tmp_path=None, iteration=None, **params):
    if iteration is not None:
        params["iteration"] = iteration  # as the engine fills it in for loop stages
    outs = {n: (tmp_path / n) for n in op.outputs if tmp_path is not None}
    for d in outs.values():
        d.mkdir(parents=True, exist_ok=True)
    return Context(op.Params(**params), "test", outs, DefaultResources(cpus=1))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny char model, trained for a few steps on 1-digit additions."""
    import random

    out = tmp_path_factory.mktemp("model")
    hf_common.set_threads(1)
    tok = tiny_gpt.make_tokenizer()
    model = tiny_gpt.make_model(tok, n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=0)
    corpus = addition.pretrain_examples(random.Random(0), 2000, {1: 1.0}, 0.2)
    tiny_gpt.pretrain(model, tok, corpus, steps=60, batch_size=32, lr=3e-3, warmup=5)
    hf_common.save(model, tok, out)
    return out


def problems(n=6, digits=(1, 2)):
    rows = addition.make_problems(0, digits, n // len(digits))
    return pl.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "question": [r["question"] for r in rows],
            "answer": [r["answer"] for r in rows],
            "meta": [{"digits": r["digits"]} for r in rows],
        }
    )


def prompts(n=6, digits=(1, 2)):
    op = FewshotPrompt
    return op().run(
        ctx(op, template="{question}\n", hint_template="{question}|{hint}\n"), problems(n, digits)
    )


def test_fewshot_prompt_builds_k_exemplars_and_a_hinted_twin(tmp_path):
    ex = tmp_path / "ex.yaml"
    ex.write_text(
        "exemplars:\n- {question: '1+1', rationale: 'one and one', answer: '2'}\n"
        "- {question: '2+2', rationale: 'two and two', answer: '4'}\n"
    )
    out = FewshotPrompt().run(ctx(FewshotPrompt, exemplars=str(ex), k=2), problems())
    first = out.row(0, named=True)
    assert first["prompt"].startswith("Q: 1+1\nA: one and one\n\nQ: 2+2\nA: two and two\n\nQ: ")
    assert first["prompt"].endswith(f"Q: {first['question']}\nA:")
    assert f"(answer: {first['answer']})" in first["hint_prompt"]
    assert f"answer: {first['answer']}" not in first["prompt"]
    assert out["meta"].to_list() == problems()["meta"].to_list()  # problem columns pass through
    with pytest.raises(ValueError, match="has 2 exemplars, k is 3"):
        FewshotPrompt().run(ctx(FewshotPrompt, exemplars=str(ex), k=3), problems())
    with pytest.raises(ValueError, match="needs the `model` input"):
        FewshotPrompt().run(ctx(FewshotPrompt, format="chat"), problems())


def test_sample_is_batched_reproducible_and_counts_tokens(model_dir):
    p = prompts()
    greedy = Sample().run(ctx(Sample, max_new_tokens=20, batch_size=4), model_dir, p)
    one_by_one = Sample().run(ctx(Sample, max_new_tokens=20, batch_size=1), model_dir, p)
    assert greedy["completion"].to_list() == one_by_one["completion"].to_list()
    assert greedy.columns[:4] == ["id", "question", "answer", "meta"]
    assert (greedy["prompt_tokens"] == greedy["prompt"].str.len_chars()).all()
    assert (greedy["completion_tokens"] >= greedy["completion"].str.len_chars()).all()
    hot = dict(max_new_tokens=20, n=3, temperature=1.5, seed=7)
    a = Sample().run(ctx(Sample, **hot), model_dir, p)
    b = Sample().run(ctx(Sample, **hot), model_dir, p)
    assert a.height == 3 * p.height and a["sample_index"].to_list()[:3] == [0, 1, 2]
    assert a["completion"].to_list() == b["completion"].to_list()
    c = Sample().run(ctx(Sample, **{**hot, "seed": 8}), model_dir, p)
    assert a["completion"].to_list() != c["completion"].to_list()
    cut = Sample().run(ctx(Sample, max_new_tokens=20, stop=["+"]), model_dir, p)
    assert not cut["completion"].str.contains(r"\+", literal=False).any()


class _Log:
    """An in-memory shard log that 'crashes' after committing `crash_after` shards."""

    def __init__(self, crash_after=None):
        self.shards, self.crash_after, self.computed = {}, crash_after, []

    def get(self, i):
        return self.shards.get(i)

    def put(self, i, table):
        self.shards[i] = table
        self.computed.append(i)
        if self.crash_after is not None and len(self.shards) >= self.crash_after:
            raise KeyboardInterrupt("killed")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampling_in_shards_resumes_after_a_crash_with_the_same_result(model_dir, temperature):
    lm, tok = hf_common.load(str(model_dir))
    texts = [f"{a}+{b}\n" for a in range(7) for b in range(3)]
    kw = dict(n=2, temperature=temperature, max_new_tokens=12, batch_size=4, seed=5)
    whole = hf_common.generate(lm, tok, texts, **kw)
    log = _Log(crash_after=3)
    with pytest.raises(KeyboardInterrupt):
        hf_common.generate(lm, tok, texts, **kw, shards=log, shard_batches=2)
    assert sorted(log.shards) == [0, 1, 2]
    log.crash_after, log.computed = None, []
    messages = []
    resumed = hf_common.generate(
        lm, tok, texts, **kw, shards=log, shard_batches=2, log=messages.append
    )
    assert resumed == whole
    assert log.computed == [3, 4, 5]  # 42 samples / 4 per batch = 11 batches = 6 shards
    assert messages == ["resumed 3 of 6 shards committed by an interrupted run"]


@pytest.mark.parametrize("pad", [0, 9])
def test_a_completion_counts_its_end_token_and_not_the_padding(pad):
    from types import SimpleNamespace

    from operators.hf_common import generated

    tok = SimpleNamespace(eos_token_id=0, pad_token_id=pad)  # 0: padded with the end token
    assert generated([5, 6, 0, pad, pad], "eos", tok) == 3
    assert generated([5, 6, 7, pad, pad], "stop", tok) == 3
    assert generated([5, 6, 7, 8, 4], "length", tok) == 5


@pytest.mark.parametrize(
    "params,reason",
    [
        (dict(max_new_tokens=3), "length"),  # cut off mid-scratchpad
        (dict(max_new_tokens=40), "eos"),  # the model ended it
        (dict(max_new_tokens=40, stop=["="]), "stop"),  # a stop string ended it
    ],
)
def test_every_sample_records_why_it_ended(model_dir, params, reason):
    out = Sample().run(ctx(Sample, **params), model_dir, prompts())
    assert out["finish_reason"].unique().to_list() == [reason]
    if reason == "length":
        assert (out["completion_tokens"] == 3).all()
    if reason == "eos":  # a token a character, and the end token counted
        assert (out["completion_tokens"] == out["completion"].str.len_chars() + 1).all()
    if reason == "stop":
        assert not out["completion"].str.contains("=").any()


def test_verify_by_answer_and_by_steps():
    s = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "question": ["12+34", "12+34", "12+34", "5+5"],
            "answer": ["46", "46", "46", "10"],
            "prompt": [""] * 4,
            "sample_index": [0] * 4,
            "completion": [addition.scratchpad(12, 34), "2+4+0=09\n1+3+0=04\n=46", "=47", "=010"],
            "prompt_tokens": [0] * 4,
            "completion_tokens": [0] * 4,
            "finish_reason": ["eos"] * 4,
        }
    )
    by_answer = Verify().run(ctx(Verify), s)
    assert by_answer["pred"].to_list() == ["46", "46", "47", "10"]
    assert by_answer["correct"].to_list() == [True, True, False, True]
    by_steps = Verify().run(ctx(Verify, mode="steps"), s)
    assert by_steps["correct"].to_list() == [True, False, False, False]
    with pytest.raises(ValueError, match="unknown task"):
        Verify().run(ctx(Verify, task="nope"), s)


def test_hint_rationalize_samples_only_failures_and_removes_the_hint(model_dir):
    p = prompts()
    samples = Sample().run(ctx(Sample, max_new_tokens=20), model_dir, p)
    verified = Verify().run(ctx(Verify), samples)
    # pretend the first problem was solved: it must not be rationalized
    verified = verified.with_columns((pl.col("id") == p["id"][0]).alias("correct"))
    out = HintRationalize().run(
        ctx(HintRationalize, max_new_tokens=20, n=4, temperature=1.0), model_dir, p, verified
    )
    assert p["id"][0] not in out["id"].to_list()
    assert out["rationalized"].all() and out["correct"].all()
    for row in out.iter_rows(named=True):
        assert addition.HINT_SEP not in row["prompt"]
        assert row["prompt"] == f"{row['question']}\n"
        assert addition.parse_answer(row["completion"]) == row["answer"]


def test_a_rationale_written_with_a_restated_hint_is_stored_in_the_plain_format(
    model_dir, monkeypatch
):
    """A model pretrained with `hint_format: restated` writes the hint into its lines; the
    stored rationale is what is left once they are deleted, and the step verifier judges
    that: a rationale that copies the hinted answer after a wrong step is not kept."""
    from operators import hint_rationalize

    p = prompts()
    samples = Sample().run(ctx(Sample, max_new_tokens=20), model_dir, p)
    verified = Verify().run(ctx(Verify), samples).with_columns(pl.lit(False).alias("correct"))
    real = hint_rationalize.sample_table
    wrong_step = set(p["question"].to_list()[::2])

    def written_with_the_hint(ctx_, model, failed, params, column, shards="samples"):
        out = real(ctx_, model, failed, params, column, shards=shards)
        texts = []
        for q in out["question"]:
            text = addition.hinted_scratchpad(*addition.parse_question(q))
            if q in wrong_step:  # a wrong carry in on the first line, the hinted answer kept
                text = text.replace("+0=", "+1=", 1)
            texts.append(text)
        return out.with_columns(pl.Series("completion", texts))

    monkeypatch.setattr(hint_rationalize, "sample_table", written_with_the_hint)
    by_answer = HintRationalize().run(
        ctx(HintRationalize, max_new_tokens=20), model_dir, p, verified
    )
    assert sorted(by_answer["question"]) == sorted(p["question"])
    for row in by_answer.iter_rows(named=True):
        assert addition.HINT_SEP not in row["completion"]
        a, b = addition.parse_question(row["question"])
        # what the model saw and wrote is kept beside the rationale as stored
        assert row["hint_prompt"] == addition.prompt(row["question"], str(a + b))
        assert addition.unhint(row["hinted_completion"]) == row["completion"]
        assert row["hinted_completion"].count(addition.HINT_SEP) == len(str(max(a, b)))
        assert (row["completion"] == addition.scratchpad(a, b)) == (
            row["question"] not in wrong_step
        )
    by_steps = HintRationalize().run(
        ctx(HintRationalize, max_new_tokens=20, mode="steps"), model_dir, p, verified
    )
    assert sorted(by_steps["question"]) == sorted(set(p["question"]) - wrong_step)


def test_hint_rationalize_resumes_from_its_shards_with_the_same_output(model_dir):
    p = prompts()
    verified = Verify().run(ctx(Verify), Sample().run(ctx(Sample, max_new_tokens=20), model_dir, p))
    params = dict(max_new_tokens=20, n=4, temperature=1.0, batch_size=4, shard_size=4)

    def rationalize(log):
        c = ctx(HintRationalize, **params)
        c._shards = lambda name: log
        return HintRationalize().run(c, model_dir, p, verified)

    whole = rationalize(_Log())
    log = _Log(crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        rationalize(log)
    log.crash_after, log.computed = None, []
    resumed = rationalize(log)
    assert resumed.equals(whole)
    assert log.computed and 0 not in log.computed and 1 not in log.computed


def _verified(rows):
    return pl.DataFrame(
        [
            {
                "id": i,
                "question": "1+1",
                "answer": "2",
                "prompt": "1+1\n",
                "sample_index": k,
                "completion": c,
                "prompt_tokens": 4,
                "completion_tokens": 4,
                "finish_reason": "eos",
                "pred": "2",
                "correct": ok,
            }
            for i, k, c, ok in rows
        ]
    )


def test_dedupe_removes_exact_and_normalized_duplicates_and_keeps_k_per_problem():
    gen = _verified(
        [
            ("a", 0, "x =2", True),
            ("a", 1, "x =2", True),
            ("a", 2, "X  =2 ", True),
            ("a", 3, "y =2", True),
            ("b", 0, "z =2", False),
        ]
    )
    rat = _verified([("a", 0, "w =2", True), ("b", 0, "v =2", True)])
    out = Dedupe().run(ctx(Dedupe, max_per_problem=2), gen, rat)
    assert out.select("id", "completion", "source").rows() == [
        ("a", "x =2", "generation"),
        ("a", "y =2", "generation"),
        ("b", "v =2", "rationalization"),
    ]
    exact_only = Dedupe().run(ctx(Dedupe, max_per_problem=5, normalize=False), gen)
    assert exact_only["completion"].to_list() == ["x =2", "X  =2 ", "y =2"]


def test_dedupe_keeps_a_hinted_copy_of_each_rationalized_example_it_keeps_when_asked():
    gen = _verified([("a", 0, "x =2", True), ("b", 0, "z =2", False), ("c", 0, "q =3", False)])
    rat = _verified(
        [("a", 0, "w =2", True), ("b", 0, "v =2", True), ("b", 1, "u =2", True)]
        + [("c", 0, "t =3", False)]
    ).with_columns(
        rationalized=pl.lit(True),
        hint_prompt=pl.col("question") + "|2\n",
        hinted_completion=pl.col("completion").str.replace(" ", "|2 "),
    )
    plain = Dedupe().run(ctx(Dedupe), gen, rat)
    assert plain.select("id", "completion", "source").rows() == [
        ("a", "x =2", "generation"),
        ("b", "v =2", "rationalization"),
    ]
    out = Dedupe().run(ctx(Dedupe, hinted_copies=True), gen, rat)
    assert out.select("id", "prompt", "completion", "source").rows() == [
        ("a", "1+1\n", "x =2", "generation"),
        ("b", "1+1\n", "v =2", "rationalization"),
        ("b", "1+1|2\n", "v|2 =2", "hinted"),  # only the one kept; none for an incorrect one
    ]
    assert Dedupe().run(ctx(Dedupe, hinted_copies=True), gen).equals(Dedupe().run(ctx(Dedupe), gen))


def test_dedupe_can_train_on_the_question_alone_instead_of_the_few_shot_prompt():
    gen = _verified([("a", 0, "x =2", True), ("b", 0, "z =2", False)])
    rat = _verified([("b", 0, "v =2", True)])
    out = Dedupe().run(ctx(Dedupe, prompt_template="Q: What is {question}?\nA:"), gen, rat)
    assert out.select("id", "prompt", "completion", "source").rows() == [
        ("a", "Q: What is 1+1?\nA:", "x =2", "generation"),
        ("b", "Q: What is 1+1?\nA:", "v =2", "rationalization"),
    ]
    assert Dedupe().run(ctx(Dedupe, prompt_template="{question}"), gen.head(0)).height == 0
    for bad, why in [
        ({"prompt_template": "Q: {question} ({answer})"}, "only {question}"),
        ({"prompt_template": "Q: {}"}, "name the fields"),
        ({"prompt_template": "Q: {question}", "hinted_copies": True}, "use one of them"),
    ]:
        with pytest.raises(ValueError, match=re.escape(why)):
            Dedupe.Params(**bad)


def test_the_step_budget_grows_as_in_the_paper():
    assert [step_budget(40, 1.2, i) for i in (1, 2, 3, 4)] == [40, 48, 58, 69]
    assert step_budget(150, 1.0, 9) == 150


def _examples():
    rows = [(f"e{i}", f"{i}+{i}", addition.scratchpad(i, i)) for i in range(10)]
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "question": [r[1] for r in rows],
            "answer": [str(2 * i) for i in range(10)],
            "prompt": [f"{r[1]}\n" for r in rows],
            "completion": [r[2] for r in rows],
            "source": ["generation"] * 10,
        }
    )


def _weights(d: Path):
    from safetensors.numpy import load_file

    return load_file(str(d / "model.safetensors"))


def test_shard_train_starts_from_base_by_default_or_from_previous(model_dir, tmp_path):
    import numpy as np

    params = dict(steps=2, lr=1e-2, warmup=0, batch_size=4, trainer="torch", max_length=64)
    c1 = ctx(ShardTrain, tmp_path / "one", iteration=1, **params)
    ShardTrain().run(c1, model_dir, _examples())
    first = c1.output_dir("model")
    assert (first / "config.json").exists() and (first / "tokenizer.json").exists()
    c2 = ctx(ShardTrain, tmp_path / "two", iteration=1, **params)
    ShardTrain().run(c2, model_dir, _examples(), previous=first)  # start: base ignores previous
    a, b = _weights(first), _weights(c2.output_dir("model"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c3 = ctx(ShardTrain, tmp_path / "three", iteration=1, start="previous", **params)
    ShardTrain().run(c3, model_dir, _examples(), previous=first)
    c = _weights(c3.output_dir("model"))
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    base = _weights(model_dir)
    assert not all(np.array_equal(a[k], base[k]) for k in a)
    with pytest.raises(ValueError, match="no training examples"):
        ShardTrain().run(
            ctx(ShardTrain, tmp_path / "four", **params), model_dir, _examples().clear()
        )


def test_shard_train_with_lora_trains_adapters_only_and_saves_a_merged_model(model_dir, tmp_path):
    import numpy as np
    from transformers import AutoModelForCausalLM

    params = dict(
        steps=3,
        lr=5e-2,
        warmup=0,
        batch_size=4,
        trainer="torch",
        max_length=64,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
    )
    c = ctx(ShardTrain, tmp_path, iteration=1, **params)
    ShardTrain().run(c, model_dir, _examples())
    out = c.output_dir("model")
    # a plain model directory: no adapter files, the same tensor names as the base
    assert not (out / "adapter_config.json").exists()
    base, tuned = _weights(model_dir), _weights(out)
    assert set(tuned) == set(base)
    changed = {k for k in base if not np.array_equal(base[k], tuned[k])}
    # the adapters sit on the attention projection only (peft's default for GPT-2): merged
    # into it, everything else (embeddings, MLP, norms) stays as it was
    assert changed and all("attn.c_attn" in k for k in changed), changed
    AutoModelForCausalLM.from_pretrained(out)
    with pytest.raises(ValueError):
        ShardTrain.Params(lora={"r": 0})


def test_evaluate_reports_accuracy_by_slice_and_train_data_used(model_dir):
    p = prompts(8, digits=(1, 2))
    ex = (
        _examples()
        .head(3)
        .with_columns(
            pl.Series("id", p["id"][:3]),
            pl.Series("source", ["generation", "generation", "rationalization"]),
        )
    )
    out = Evaluate().run(
        ctx(Evaluate, slice_field="digits", max_new_tokens=20), model_dir, p, ex, p
    )
    m = {(r["kind"], r["slice"]): r for r in out["metrics"].iter_rows(named=True)}
    assert set(m) >= {
        ("accuracy", "all"),
        ("accuracy", "1"),
        ("accuracy", "2"),
        ("train_used", "generation"),
        ("train_used", "rationalization"),
        ("faithful", "generation"),
    }
    assert m[("accuracy", "1")]["n"] == 4
    assert m[("accuracy", "all")]["value"] == pytest.approx(out["predictions"]["correct"].mean())
    assert m[("train_used", "generation")]["value"] == pytest.approx(2 / 8)
    assert m[("faithful", "generation")]["value"] == 1.0


def test_the_builtin_operators_register_through_the_entry_point_group_third_parties_use():
    from importlib.metadata import entry_points

    from stardag.registry import ENTRY_POINT_GROUP, resolve

    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"sample", "verify", "shard_train", "evaluate"} <= set(names)
    assert names["sample"] == "operators.sample:Sample"
    for name in names:
        assert resolve(name).__module__.startswith("operators.")


def test_operators_import_neither_ray_nor_the_engine_beyond_the_operator_contract():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "operators"
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top == "ray":
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
                if top == "stardag" and name != "stardag.operator":
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


def test_evaluate_reports_truncated_completions_and_where_the_heldout_problems_came_from(model_dir):
    p = prompts(6).with_columns(pl.lit("test.jsonl, whole").alias("split"))
    out = Evaluate().run(ctx(Evaluate, max_new_tokens=3), model_dir, p)
    m = {(r["kind"], r["slice"]): r for r in out["metrics"].iter_rows(named=True)}
    # 3 tokens cut every scratchpad short: all truncated, none correct
    assert out["predictions"]["finish_reason"].unique().to_list() == ["length"]
    assert m[("truncated", "all")]["value"] == 1.0 and m[("accuracy", "all")]["value"] == 0.0
    assert (
        m[("heldout", "test.jsonl, whole")]["value"],
        m[("heldout", "test.jsonl, whole")]["n"],
    ) == (1.0, 6)


def test_shard_train_logs_loss_lr_and_tokens_per_second_and_keeps_every_step(
    model_dir, tmp_path, capfd
):
    import json

    params = dict(
        steps=5, lr=1e-2, warmup=2, batch_size=4, trainer="torch", max_length=64, log_every=2
    )
    c = ctx(ShardTrain, tmp_path, iteration=1, **params)
    ShardTrain().run(c, model_dir, _examples())
    lines = [line for line in capfd.readouterr().err.splitlines() if "tokens/s" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["step 2/5", "step 4/5", "step 5/5"]
    assert all("loss " in line and "lr " in line for line in lines)
    log = json.loads((c.output_dir("model") / "training_log.json").read_text())["steps"]
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5]
    assert [e["lr"] for e in log][:2] == pytest.approx([5e-3, 1e-2])  # the warmup
    assert log[-1]["loss"] < log[0]["loss"]


@pytest.mark.parametrize("option", ["gradient_checkpointing", "packing"])
def test_memory_options_train_to_the_same_losses(model_dir, tmp_path, option):
    import json

    params = dict(steps=4, lr=1e-2, warmup=0, batch_size=4, trainer="torch", max_length=64)
    losses = []
    for on in (False, True):
        c = ctx(ShardTrain, tmp_path / str(on), iteration=1, **{option: on}, **params)
        ShardTrain().run(c, model_dir, _examples())
        log = json.loads((c.output_dir("model") / "training_log.json").read_text())["steps"]
        losses.append([e["loss"] for e in log])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_packing_lays_examples_end_to_end_with_the_padded_batch_s_loss(model_dir):
    import torch

    lm, tok = hf_common.load(str(model_dir))
    rows = _examples()
    data = hf_common.encode_examples(tok, list(zip(rows["prompt"], rows["completion"])), 64)
    ids, att, lab = hf_common.collate(data, tok.pad_token_id)
    packed_ids, pos, packed_lab = hf_common.pack(data, 64, tok.pad_token_id)
    assert packed_ids.shape[0] < ids.shape[0] and packed_ids.shape[1] <= 64
    assert int((packed_lab != -100).sum()) == int((lab[:, 1:] != -100).sum())
    with torch.no_grad():
        padded = lm(input_ids=ids, attention_mask=att, labels=lab).loss
        packed = lm(input_ids=packed_ids, position_ids=pos, labels=packed_lab, use_cache=False).loss
    assert packed.item() == pytest.approx(padded.item(), rel=1e-5)
