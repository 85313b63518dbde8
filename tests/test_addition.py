"""The arithmetic task helpers (operators.addition) and the character-level model (operators.tiny_gpt)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from operators import addition as A


# --------------------------------------------------------------------------- addition
def test_import_is_light():
    code = (
        "import sys, operators.addition, operators.tiny_gpt; "
        "bad = [m for m in ('torch', 'transformers', 'tokenizers', 'ray') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_scratchpad_format():
    s = A.scratchpad(12345, 67890)
    assert s == (
        "12345+67890:5+0+0=05 5\n1234+6789:4+9+0=13 35\n123+678:3+8+1=12 235\n"
        "12+67:2+7+1=10 0235\n1+6:1+6+1=08 80235\n=80235"
    )
    assert A.scratchpad(9, 9) == "9+9:9+9+0=18 8\n=18"
    assert A.scratchpad(0, 0) == "0+0:0+0+0=00 0\n=0"
    # a 5-digit problem with its hint fits the model's 160 positions
    worst = A.prompt("99999+99999", "199998") + A.scratchpad(99999, 99999)
    assert len(worst) + 1 <= 160


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("5+0+0=05\n=80235", "80235"),
        ("=007", "7"),
        ("=0", "0"),
        ("=000", "0"),
        ("1+1+0=02\n=2\n", "2"),
        ("  =42  \n\n", "42"),
        ("", None),
        ("1+1+0=02", None),  # no answer line
        ("=", None),  # empty answer
        ("=12a", None),  # malformed
        ("=1 2", None),
        ("=-3", None),
        ("=42\n1+1+0=02", None),  # answer not last
        ("42", None),
    ],
)
def test_parse_answer(completion, expected):
    assert A.parse_answer(completion) == expected


def test_check_steps_accepts_truth():
    rng = random.Random(0)
    for n in range(1, 7):
        for _ in range(20):
            a, b = rng.randint(10 ** (n - 1), 10**n - 1), rng.randint(10 ** (n - 1), 10**n - 1)
            s = A.scratchpad(a, b)
            assert A.check_steps(f"{a}+{b}", s)
            assert A.check_steps(f"{a}+{b}", s + "\n")
            assert A.parse_answer(s) == str(a + b)


def _lines(s):
    return s.split("\n")


def test_check_steps_rejects_wrong_steps():
    q, good = "478+356", A.scratchpad(478, 356)
    assert good == "478+356:8+6+0=14 4\n47+35:7+5+1=13 34\n4+3:4+3+1=08 834\n=834"
    L = _lines(good)
    wrong_digit = "\n".join([L[0], "47+35:7+4+1=12 24", *L[2:]])  # wrong operand digit
    wrong_rest = "\n".join([L[0], "48+35:7+5+1=13 34", *L[2:]])  # operands not restated right
    wrong_sum = "\n".join([L[0], "47+35:7+5+1=12 24", *L[2:]])  # wrong result digit
    wrong_carry_out = "\n".join(["478+356:8+6+0=04 4", *L[1:]])  # carry dropped
    wrong_carry_in = "\n".join([L[0], "47+35:7+5+0=13 34", *L[2:]])  # carry not taken in
    wrong_partial = "\n".join([L[0], "47+35:7+5+1=13 43", *L[2:]])  # result so far misordered
    missing_line = "\n".join([L[0], L[2], L[3]])
    extra_line = "\n".join([*L[:3], "0+0:0+0+0=00 0834", L[3]])
    swapped = "\n".join([L[1], L[0], *L[2:]])
    wrong_answer = "\n".join([*L[:3], "=835"])
    no_answer = "\n".join(L[:3])
    garbage = "\n".join([L[0], "47+35:7+5+1=1", *L[2:]])
    for bad in [
        wrong_digit,
        wrong_rest,
        wrong_sum,
        wrong_carry_out,
        wrong_carry_in,
        wrong_partial,
        missing_line,
        extra_line,
        swapped,
        wrong_answer,
        no_answer,
        garbage,
    ]:
        assert not A.check_steps(q, bad), bad
    # the right answer after wrong steps: the answer checker accepts it, the step checker not
    assert A.parse_answer(wrong_sum) == "834"
    assert not A.check_steps(q, wrong_sum)
    assert A.check_steps(q, good)
    assert not A.check_steps("not a question", good)


def test_prompt_and_hint():
    p = A.prompt("12+34")
    h = A.prompt("12+34", hint="46")
    assert "46" not in p
    assert "46" in h
    assert A.strip_hint(h) == p
    assert A.strip_hint(p) == p
    assert p.endswith("\n") and h.endswith("\n")


def test_make_problems_deterministic_and_disjoint():
    a = A.make_problems(3, range(1, 6), 150)
    b = A.make_problems(3, range(1, 6), 150)
    assert a == b
    assert a != A.make_problems(4, range(1, 6), 150)
    h = A.make_problems(3, range(1, 6), 150, split="heldout")
    h_other_seed = A.make_problems(99, range(1, 6), 150, split="heldout")
    train_q = {r["question"] for r in a}
    assert not train_q & {r["question"] for r in h}
    assert not train_q & {r["question"] for r in h_other_seed}
    ids = [r["id"] for r in a + h]
    assert len(ids) == len(set(ids))
    for r in a + h:
        x, y = A.parse_question(r["question"])
        n = r["digits"]
        assert len(str(x)) == n and len(str(y)) == n
        assert r["answer"] == str(x + y)
    counts = {n: sum(r["digits"] == n for r in a) for n in range(1, 6)}
    assert counts[3] == counts[5] == 150
    assert len({r["question"] for r in a}) == len(a)


def test_pretrain_examples_mix_and_hints():
    ex = A.pretrain_examples(
        random.Random(0), 2000, {2: 0.5, 4: 0.5}, hint_share=0.25, exclude={"10+10"}
    )
    assert len(ex) == 2000
    hinted = [p for p, _ in ex if A.HINT_SEP in p]
    assert 350 < len(hinted) < 650
    for p, c in ex[:200]:
        q = A.strip_hint(p).strip()
        assert q != "10+10"
        assert A.check_steps(q, c)
        assert len(A.parse_question(q)[0].__str__()) in (2, 4)
    assert ex == A.pretrain_examples(random.Random(0), 2000, {2: 0.5, 4: 0.5}, 0.25, {"10+10"})


# --------------------------------------------------------------------------- tiny_gpt
@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("transformers")
    from operators import tiny_gpt as C

    return C.make_tokenizer()


def test_tokenizer_round_trip(tok, tmp_path):
    from transformers import AutoTokenizer

    text = A.prompt("12345+67890", "80235") + A.scratchpad(12345, 67890) + " \n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    ids2 = tok2(text, add_special_tokens=False)["input_ids"]
    assert ids2 == ids
    assert tok2.decode(ids2) == text
    assert tok2.decode(ids2 + [tok2.eos_token_id], skip_special_tokens=True) == text
    assert (tok2.pad_token_id, tok2.eos_token_id, tok2.bos_token_id) == (
        tok.pad_token_id,
        tok.eos_token_id,
        tok.bos_token_id,
    )


def test_loss_masks_prompt(tok):
    from operators import tiny_gpt as C

    ((ids, labels),) = C.encode_examples(tok, [("1+2\n", "=3")], None)
    assert len(ids) == len("1+2\n=3") + 1
    assert labels[:4] == [-100] * 4
    assert labels[4:] == ids[4:]
    assert ids[-1] == tok.eos_token_id
    assert C.lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert C.lr_at(99, 100, 1.0, 10) < 0.2


def test_the_first_wrong_field_of_a_scratchpad_is_named_with_its_line():
    gold = A.scratchpad(457, 968)  # 457+968:7+8+0=15 5 / 45+96:5+6+1=12 25 / 4+9:4+9+1=14 425
    lines = gold.split("\n")
    assert A.first_wrong_field("457+968", gold) == ("right", None)

    def edit(i, line):
        return "\n".join(lines[:i] + [line] + lines[i + 1 :])

    assert A.first_wrong_field("457+968", edit(1, "45+95:5+6+1=12 25")) == ("operands", 2)
    assert A.first_wrong_field("457+968", edit(1, "45+96:5+5+1=11 15")) == ("digit pair", 2)
    assert A.first_wrong_field("457+968", edit(1, "45+96:5+6+0=11 15")) == ("carry in", 2)
    assert A.first_wrong_field("457+968", edit(2, "4+9:4+9+1=13 325")) == ("sum", 3)
    assert A.first_wrong_field("457+968", edit(2, "4+9:4+9+1=14 415")) == ("result so far", 3)
    assert A.first_wrong_field("457+968", edit(0, "457+968 7+8")) == ("line does not parse", 1)
    assert A.first_wrong_field("457+968", "\n".join(lines[:2])) == ("missing line", 3)
    assert A.first_wrong_field("457+968", edit(3, "=1424")) == ("answer line", 4)
    assert A.first_wrong_field("457+968", edit(3, "0+0:0+0+1=01 1425")) == ("extra line", 4)
    assert A.first_wrong_field("457+968", gold + "\n=1425") == ("extra line", 5)


def test_a_restated_hint_is_read_next_to_the_operands_and_deleting_it_gives_the_scratchpad():
    assert A.hinted_scratchpad(457, 968) == (
        "457+968|1425:7+8+0=15 5\n45+96|142:5+6+1=12 25\n4+9|14:4+9+1=14 425\n=1425"
    )
    rng = random.Random(0)
    for n in (1, 2, 3, 5, 8):
        for _ in range(50):
            a, b = rng.randint(0, 10**n - 1), rng.randint(0, 10**n - 1)
            hinted = A.hinted_scratchpad(a, b)
            assert A.unhint(hinted) == A.scratchpad(a, b)
            for line in hinted.split("\n")[:-1]:  # a line's digit ends its restated hint
                restated, steps = line.split(A.HINT_SEP)[1].split(":")
                assert restated[-1] == steps.split("=")[1][1]
    plain = A.scratchpad(12345, 67890)
    assert A.unhint(plain) == plain


def test_pretraining_teaches_the_hint_in_the_format_asked_for():
    rng_a, rng_b = random.Random(0), random.Random(0)
    prompt_format = A.pretrain_examples(rng_a, 400, {3: 1.0}, 0.5)
    restated = A.pretrain_examples(rng_b, 400, {3: 1.0}, 0.5, hint_format="restated")
    assert [p for p, _ in prompt_format] == [p for p, _ in restated]  # the same draws
    hinted = [(p, c) for p, c in restated if A.HINT_SEP in p]
    assert 150 < len(hinted) < 250
    for p, c in restated:
        assert (A.HINT_SEP in c) == (A.HINT_SEP in p)
        assert c == (A.hinted_scratchpad if A.HINT_SEP in p else A.scratchpad)(
            *A.parse_question(p.split(A.HINT_SEP)[0])
        )
    assert all(A.HINT_SEP not in c for _, c in prompt_format)
    per_length = A.pretrain_examples(random.Random(0), 600, {2: 0.5, 3: 0.5}, {3: 1.0})
    assert {len(p.split("+")[0]) for p, _ in per_length} == {2, 3}
    assert all(
        (A.HINT_SEP in p) == (len(p.split("+")[0]) == 3) for p, _ in per_length
    )  # 3 digits always hinted, 2 digits never
    with pytest.raises(ValueError, match="hint_format"):
        A.pretrain_examples(random.Random(0), 1, {1: 1.0}, 0.5, hint_format="inline")


def test_an_inline_prompt_is_the_first_line_and_the_completion_continues_it():
    line = A.pretrain_examples(random.Random(0), 300, {2: 0.5, 5: 0.5}, {5: 1.0}, None, "restated")
    inline = A.pretrain_examples(
        random.Random(0), 300, {2: 0.5, 5: 0.5}, {5: 1.0}, None, "restated", layout="inline"
    )
    assert [p.strip() for p, _ in line] == [p for p, _ in inline]  # the same draws
    for (_, c_line), (p, c) in zip(line, inline):
        assert not p.endswith("\n") and c.startswith(":")
        assert p + c == c_line  # the completion of the line layout, its first line the prompt
        q = A.strip_hint(p)
        a, b = A.parse_question(q)
        # the stored rationale, its hints deleted, is judged as the continuation of q's line
        assert A.check_steps(q, A.unhint(c))
        assert A.first_wrong_field(q, A.unhint(c)) == ("right", None)
        assert A.parse_answer(c) == str(a + b)
    q, c = "457+968", ":7+8+0=15 5\n45+96:5+6+1=12 25\n4+9:4+9+1=14 425\n=1425"
    assert A.check_steps(q, c)
    assert not A.check_steps("457+969", c)  # read with the wrong operands in front
    assert A.first_wrong_field(q, c.replace("7+8+0", "7+9+0")) == ("digit pair", 1)
    assert A.first_wrong_field(q, c.replace("45+96:", "45+97:")) == ("operands", 2)
    assert A.prompt("457+968", layout="inline") == q
    assert A.prompt("457+968", "1425", "inline") == "457+968|1425"
    assert A.strip_hint(A.prompt("457+968", "1425", "inline")) == q
    with pytest.raises(ValueError, match="layout"):
        A.pretrain_examples(random.Random(0), 1, {1: 1.0}, 0.5, layout="after")
