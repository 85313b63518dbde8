"""Properties of the spec parser and of `--set` overrides, on generated inputs: any text
either loads or is one SpecError that names the file (and a line within it); any override
either applies or is a SpecError; a scalar set with `--set` reads back as the value set."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stardag.errors import SpecError
from stardag.graph import compile_spec
from stardag.spec import LoadedSpec, load_spec, parse_override

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NUMS = """\
name: t
stages:
  nums:
    op: engine_ops:Numbers
    params: {n: 3, start: 0}
  scaled:
    op: engine_ops:Scale
    inputs: {table: nums}
    resources: {cpus: 1, memory: 1GB}
loop:
  iterations: 2
  stages:
    step:
      op: engine_ops:Step
      inputs:
        table: {previous: step, initial: scaled}
"""

# the messages that have no line to name: the file as a whole
WHOLE_FILE = ("spec is empty", "missing required key 'name'", "spec file not found")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("props") / "spec.yaml"


def load_or_error(path: Path, overrides=(), compile_it=False):
    """The loaded spec (and graph), or the SpecError; any other exception fails the test."""
    try:
        loaded = load_spec(path, overrides)
        return compile_spec(loaded) if compile_it else loaded
    except SpecError as e:
        return e


def check_error(e: SpecError, path: Path, text: str):
    """A spec file's error names that file and, unless it is about the whole file, a line
    that exists in it."""
    assert e.message and "\n" not in str(e)
    if e.file and e.file.startswith("--set"):
        assert e.line is None
        return
    assert e.file == str(path.resolve()), (e.file, str(e))
    if e.line is None:
        assert e.message.startswith(WHOLE_FILE), str(e)
    else:
        assert 1 <= e.line <= max(1, len(text.splitlines()) + 1), (e.line, str(e))


# --- any text ---------------------------------------------------------------------------

YAMLISH = st.text(
    alphabet=st.sampled_from(
        list("abnmeopstgi:{}[]-,&*!|>'\"#@%\n\n\n  \t.0123456789<=?~\\") + ["é", "\x85", "\ufeff"]
    ),
    max_size=120,
)


@SETTINGS
@given(text=YAMLISH)
@example(text="")
@example(text="name: t\nstages: &a\n  x: *a\n")
@example(text="name: t\n\tstages: {}\n")
@example(text="<<: [1]\n")
@example(text="!!python/object/apply:os.system [ls]\n")
@example(text="name: t\nstages:\n  nums: {op: engine_ops:Numbers, params: {n: !!binary aGk=}}\n")
def test_any_text_loads_or_is_one_spec_error_naming_the_file_and_line(spec_file, text):
    spec_file.write_text(text, encoding="utf-8")
    out = load_or_error(spec_file, compile_it=True)
    if isinstance(out, SpecError):
        check_error(out, spec_file, text)


@st.composite
def edited_spec(draw):
    """The good spec with a few random edits: characters deleted, inserted or replaced,
    lines duplicated or dropped, indentation shifted."""
    lines = NUMS.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "dup", "drop", "indent"]))
        line = lines[i]
        j = draw(st.integers(0, len(line)))
        token = draw(
            st.sampled_from(
                [
                    ":",
                    "-",
                    "{",
                    "}",
                    "[",
                    "]",
                    "  ",
                    "\t",
                    "'",
                    '"',
                    "&x",
                    "*x",
                    "!!str",
                    "@",
                    "nums",
                    "step",
                    "op",
                    ",",
                    "#",
                    ".",
                ]
            )
        )
        if kind == "delete":
            lines[i] = line[:j] + line[j + 1 :]
        elif kind == "insert":
            lines[i] = line[:j] + token + line[j:]
        elif kind == "replace":
            lines[i] = line[:j] + token + line[j + len(token) :]
        elif kind == "dup":
            lines.insert(i, line)
        elif kind == "drop" and len(lines) > 1:
            lines.pop(i)
        elif kind == "indent":
            lines[i] = draw(st.sampled_from(["", " ", "  ", "    "])) + line.lstrip(" ")
    return "".join(lines)


@SETTINGS
@given(text=edited_spec())
def test_an_edited_spec_loads_or_is_one_spec_error_naming_the_file_and_line(spec_file, text):
    spec_file.write_text(text, encoding="utf-8")
    out = load_or_error(spec_file, compile_it=True)
    if isinstance(out, SpecError):
        check_error(out, spec_file, text)


KEYS = [
    "name",
    "stages",
    "loop",
    "iterations",
    "op",
    "params",
    "inputs",
    "resources",
    "previous",
    "initial",
    "n",
    "start",
    "factor",
    "table",
    "nums",
    "step",
    "cpus",
    "gpus",
    "memory",
    "custom",
    "extends",
    "store",
    "description",
    "x",
    "1",
    "<<",
]
OPS = [
    "engine_ops:Numbers",
    "engine_ops:Scale",
    "engine_ops:Step",
    "engine_ops:Sum",
    "engine_ops:Nope",
    "no_such_module_xyz:Op",
    "numbers",
    "engine_ops:record",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 10**20)
    | st.floats(allow_nan=True)
    | st.sampled_from(OPS + ["nums", "nums.table", "step@1", "step@last", "1GB", ""])
    | st.text(max_size=8)
)
TREES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(data=st.dictionaries(st.sampled_from(KEYS), TREES, max_size=5))
def test_generated_yaml_structures_load_or_give_one_spec_error(spec_file, data):
    text = yaml.safe_dump(data, allow_unicode=True)
    spec_file.write_text(text, encoding="utf-8")
    out = load_or_error(spec_file, compile_it=True)
    if isinstance(out, SpecError):
        check_error(out, spec_file, text)


# --- overrides ----------------------------------------------------------------------------

OVERRIDE_TEXT = st.text(
    alphabet=st.sampled_from(list("abcnmopstgu.=:{}[]!'\" 0123456789-_@#&*\n\t,") + ["é"]),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(text=OVERRIDE_TEXT)
@example(text="=")
@example(text="a..b=1")
@example(text="a=!!python/object/apply:os.system [ls]")
@example(text="a=[1")
def test_parse_override_gives_a_key_path_and_a_value_or_a_spec_error(text):
    try:
        parts, _ = parse_override(text)
    except SpecError as e:
        assert e.file == "--set" and e.line is None
        assert repr(text) in e.message or repr(text.partition("=")[0].strip()) in e.message
        return
    key = text.partition("=")[0].strip()
    assert "=" in text and parts == tuple(key.split(".")) and all(parts)


KEY_PATHS = st.lists(st.sampled_from(KEYS), min_size=1, max_size=5).map(".".join)


@SETTINGS
@given(
    key=KEY_PATHS,
    value=OVERRIDE_TEXT,
    prefix=st.sampled_from(
        [
            "",
            "stages.",
            "stages.nums.",
            "stages.nums.params.",
            "loop.",
            "loop.stages.step.",
            "stages.scaled.resources.",
        ]
    ),
)
def test_any_override_applies_or_is_a_spec_error(spec_file, key, value, prefix):
    spec_file.write_text(NUMS)
    text = f"{prefix}{key}={value}"
    out = load_or_error(spec_file, [text], compile_it=True)
    if isinstance(out, SpecError):
        check_error(out, spec_file, NUMS)
        assert out.file in (str(spec_file.resolve()), "--set", f"--set {text}"), str(out)


PARAM_NAMES = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12)
BMP_TEXT = st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)),
    max_size=30,
)
VALUES = (
    st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | BMP_TEXT
)


@SETTINGS
@given(name=PARAM_NAMES, value=VALUES)
@example(name="lr", value=1e-05)
@example(name="lr", value=2e-3)
@example(name="s", value="1e3")
@example(name="s", value="yes")
@example(name="s", value="\u2028")
def test_a_scalar_set_reads_back_as_the_value_set(spec_file, name, value):
    spec_file.write_text(NUMS)
    text = f"stages.nums.params.{name}={json.dumps(value)}"
    loaded = load_spec(spec_file, [text])
    got = loaded.raw["stages"]["nums"]["params"][name]
    assert type(got) is type(value) and (got == value or (math.isnan(got) and math.isnan(value)))
    assert loaded.spec.stages["nums"].params[name] == value
    assert loaded.where(("stages", "nums", "params", name)) == (f"--set {text}", None)
    # the other params are as the file gave them
    assert {k: v for k, v in loaded.raw["stages"]["nums"]["params"].items() if k != name} == {
        k: v for k, v in {"n": 3, "start": 0}.items() if k != name
    }


@SETTINGS
@given(n=st.integers(-(10**6), 10**6) | st.booleans() | st.floats(allow_nan=False))
def test_an_integer_param_takes_any_integer_and_nothing_else(spec_file, n):
    spec_file.write_text(NUMS)
    text = f"stages.nums.params.n={json.dumps(n)}"
    out = load_or_error(spec_file, [text], compile_it=True)
    if isinstance(n, int) and not isinstance(n, bool):
        assert not isinstance(out, SpecError), str(out)
        assert out.nodes["nums"].params.n == n
    else:
        assert isinstance(out, SpecError) and out.file == f"--set {text}"
        assert out.stage == "nums" and "param 'n'" in out.message


@SETTINGS
@given(seconds=st.integers(0, 10**9) | st.floats(0, 1e9, allow_nan=False))
def test_a_float_param_takes_integers_and_floats(spec_file, seconds):
    slow = "  slow:\n    op: engine_ops:Sleep\n    inputs: {table: nums}\n"
    spec_file.write_text(NUMS.replace("loop:", slow + "loop:"))
    graph = compile_spec(load_spec(spec_file, [f"stages.slow.params.seconds={seconds!r}"]))
    assert graph.nodes["slow"].params.seconds == float(seconds)


@SETTINGS
@given(values=st.lists(st.integers(1, 1000), min_size=1, max_size=4))
def test_the_last_override_of_a_key_wins(spec_file, values):
    spec_file.write_text(NUMS)
    loaded = load_spec(spec_file, [f"loop.iterations={v}" for v in values])
    assert loaded.spec.loop.iterations == values[-1]


@SETTINGS
@given(n=st.integers(-5, 2000))
def test_iterations_in_range_apply_others_are_refused(spec_file, n):
    spec_file.write_text(NUMS)
    out = load_or_error(spec_file, [f"loop.iterations={n}"])
    if 1 <= n <= 1000:
        assert isinstance(out, LoadedSpec) and out.spec.loop.iterations == n
    else:
        assert isinstance(out, SpecError) and out.file == f"--set loop.iterations={n}"


@SETTINGS
@given(name=st.sampled_from(["n", "start"]))
def test_null_deletes_a_param(spec_file, name):
    spec_file.write_text(NUMS)
    loaded = load_spec(spec_file, [f"stages.nums.params.{name}=null"])
    assert name not in loaded.spec.stages["nums"].params


# --- sizes: nesting and aliases -------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(depth=st.integers(1, 3000), flow=st.booleans())
def test_any_nesting_depth_loads_or_is_a_spec_error(spec_file, depth, flow):
    if flow:
        value = "[" * depth + "1" + "]" * depth
        text = NUMS.replace("{n: 3, start: 0}", "{n: 3, start: 0, deep: " + value + "}")
    else:
        block = "".join("      " + "  " * i + "- \n" for i in range(depth))
        text = NUMS.replace(
            "    params: {n: 3, start: 0}\n",
            "    params:\n      deep:\n" + block.replace("- \n", "-\n"),
        )
    spec_file.write_text(text)
    out = load_or_error(spec_file)
    if isinstance(out, SpecError):
        check_error(out, spec_file, text)
    assert not isinstance(out, LoadedSpec) or depth <= 64


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(width=st.integers(1, 12), levels=st.integers(1, 12))
def test_aliases_of_aliases_load_or_are_refused_quickly(spec_file, width, levels):
    lines = ["name: t", "stages: {}", "description: &x0 d"]
    lines += [
        f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]" for i in range(1, levels + 1)
    ]
    text = "\n".join(lines) + "\n"
    spec_file.write_text(text)
    out = load_or_error(spec_file)
    assert isinstance(out, SpecError)  # x1.. are unknown keys, or the expansion is refused
    check_error(out, spec_file, text)
    if width**levels > 200_000:
        assert "expands to more than" in out.message
