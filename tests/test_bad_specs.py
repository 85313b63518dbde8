"""Invalid specs: each gives ONE error naming the file, the line and the stage, exits with
status 2 from the CLI, runs nothing and leaves the store as it was. Plus a few positive
checks of the spec features these errors rely on (extends, --set, memory sizes)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from stardag.cli import main
from stardag.spec import Resources, load_spec

NUMS = """\
name: t
stages:
  nums:
    op: engine_ops:Numbers
"""
# a loop of three `step`s after `nums`; `step` is on line 8, its input `table` on line 11
LOOP = (
    NUMS
    + """\
loop:
  iterations: 3
  stages:
    step:
      op: engine_ops:Step
      inputs:
        table: {previous: step, initial: nums}
"""
)


@pytest.fixture(autouse=True)
def _no_operator_runs(tmp_path, monkeypatch):
    """Every test operator records its call here: a bad spec must run none of them."""
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("STARDAG_TEST_CALLS", str(calls))
    monkeypatch.delenv("STARDAG_STORE", raising=False)
    yield
    assert not calls.exists(), f"operators ran: {calls.read_text().split()}"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def listing(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*")) if store.exists() else []


def invoke(tmp_path: Path, command: str, spec: Path, *args: str):
    argv = [command, str(spec), "--store", str(tmp_path / "store"), *args]
    if command == "run":
        argv += ["--executor", "local", "-q"]
    return CliRunner().invoke(main, argv)


def fails(tmp_path: Path, text: str | None, *args: str, spec: Path | None = None) -> str:
    """Write `text` as spec.yaml (unless None), then `plan` and `run --executor local` it:
    both must exit 2 with the same single error line and leave the store unchanged.
    Returns that error without its `error: ` prefix."""
    spec = spec or tmp_path / "spec.yaml"
    if text is not None:
        write(spec, text)
    store = tmp_path / "store"
    before = listing(store)
    messages = []
    for command in ("plan", "run"):
        r = invoke(tmp_path, command, spec, *args)
        assert isinstance(r.exception, SystemExit), r.exc_info
        assert r.exit_code == 2, r.output
        assert r.stdout == "", r.stdout
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr
        messages.append(lines[0].removeprefix("error: "))
    assert messages[0] == messages[1], messages
    assert listing(store) == before
    return messages[0]


def expect(message: str, where: str, *words: str):
    """`where` is the exact start of the message ("FILE:LINE: stage 'x': "); every word
    must appear after it."""
    assert message.startswith(where), f"{message!r} does not start with {where!r}"
    for w in words:
        assert w in message[len(where) :], f"{w!r} not in {message!r}"


def at(tmp_path: Path, line: int | None, stage: str | None = None, name: str = "spec.yaml") -> str:
    file = (tmp_path / name).resolve()
    return (f"{file}:{line}: " if line else f"{file}: ") + (f"stage '{stage}': " if stage else "")


# --- YAML -------------------------------------------------------------------------------


def test_yaml_syntax_error_names_the_line_of_the_problem(tmp_path):
    msg = fails(
        tmp_path,
        """\
        name: t
        stages:
          nums:
            op: engine_ops:Numbers
           params: {n: 1}
        """,
    )
    expect(msg, at(tmp_path, 5), "invalid YAML", "expected <block end>")


def test_yaml_mapping_value_on_the_same_line_is_a_syntax_error_at_that_line(tmp_path):
    msg = fails(tmp_path, NUMS + "    params: n: 3\n")
    expect(msg, at(tmp_path, 5), "invalid YAML", "mapping values are not allowed here")


def test_yaml_unclosed_bracket_points_at_the_line_that_opened_it(tmp_path):
    # PyYAML finds the problem at the end of the file; the line to fix is the open bracket
    msg = fails(tmp_path, NUMS + "    params: {n: [1, 2\n\n\n")
    expect(msg, at(tmp_path, 5), "invalid YAML", "expected ',' or ']'", "flow sequence from line 5")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_spec_file_is_an_error(tmp_path, text):
    expect(fails(tmp_path, text), at(tmp_path, None), "spec is empty")


@pytest.mark.parametrize("text", ["- nums\n- step\n", "just a string\n", "42\n"])
def test_spec_whose_top_level_is_not_a_mapping_is_an_error(tmp_path, text):
    expect(fails(tmp_path, text), at(tmp_path, 1), "a spec must be a mapping")


def test_duplicate_stage_name_names_the_second_occurrence(tmp_path):
    msg = fails(tmp_path, NUMS + "  nums:\n    op: engine_ops:Words\n")
    expect(msg, at(tmp_path, 5), "duplicate key 'nums'")


def test_duplicate_param_names_the_second_occurrence(tmp_path):
    msg = fails(tmp_path, NUMS + "    params:\n      n: 1\n      start: 2\n      n: 3\n")
    expect(msg, at(tmp_path, 8), "duplicate key 'n'")


def test_spec_that_is_not_utf8_names_the_line(tmp_path):
    (tmp_path / "spec.yaml").write_bytes(NUMS.encode() + b"    params: {n: \xff}\n")
    expect(fails(tmp_path, None), at(tmp_path, 5), "spec is not UTF-8 text", "0xff")


def test_recursive_yaml_alias_is_an_error_not_a_crash(tmp_path):
    msg = fails(tmp_path, "name: t\nstages: &all\n  nums: *all\n")
    expect(msg, at(tmp_path, 3), "a YAML alias refers to a mapping or list that contains it")


@pytest.mark.parametrize(
    "value, line", [("!!python/object:os.system {}", 3), ("{op: !!python/name:os.system x}", 3)]
)
def test_python_yaml_tags_are_refused(tmp_path, value, line):
    msg = fails(tmp_path, f"name: t\nstages:\n  nums: {value}\n")
    expect(msg, at(tmp_path, line), "python/")
    assert "not supported" in msg or "could not determine a constructor" in msg


def test_yaml_aliases_can_share_a_stage_body(tmp_path):
    spec = write(
        tmp_path / "spec.yaml",
        """\
        name: t
        stages:
          a: &body {op: engine_ops:Numbers, params: {n: 2}}
          b: *body
        """,
    )
    loaded = load_spec(spec)
    assert loaded.spec.stages["a"] == loaded.spec.stages["b"]


# --- unknown keys -----------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_known_key(tmp_path):
    msg = fails(tmp_path, "name: t\nstagse:\n  nums:\n    op: engine_ops:Numbers\n")
    expect(msg, at(tmp_path, 2), "unknown key 'stagse'", "did you mean 'stages'?")


def test_misspelt_required_top_level_key_is_reported_as_the_typo(tmp_path):
    msg = fails(tmp_path, "nme: t\nstages:\n  nums:\n    op: engine_ops:Numbers\n")
    expect(msg, at(tmp_path, 1), "unknown key 'nme'", "did you mean 'name'?")


def test_unknown_stage_key_suggests_params(tmp_path):
    msg = fails(tmp_path, NUMS + "    parms:\n      n: 3\n")
    expect(msg, at(tmp_path, 5, "nums"), "unknown key 'parms'", "did you mean 'params'?")


def test_misspelt_op_key_is_reported_as_the_typo_not_as_missing_op(tmp_path):
    msg = fails(tmp_path, "name: t\nstages:\n  nums:\n    opp: engine_ops:Numbers\n")
    expect(msg, at(tmp_path, 4, "nums"), "unknown key 'opp'", "did you mean 'op'?")


def test_stage_without_op_is_an_error(tmp_path):
    msg = fails(tmp_path, "name: t\nstages:\n  nums:\n    params: {n: 3}\n")
    expect(msg, at(tmp_path, 3, "nums"), "missing required key 'op'")


def test_empty_stage_is_an_error(tmp_path):
    msg = fails(tmp_path, "name: t\nstages:\n  nums:\n")
    expect(msg, at(tmp_path, 3, "nums"), "the stage is empty", "`op:`")


def test_missing_spec_name_is_an_error(tmp_path):
    msg = fails(tmp_path, "stages:\n  nums:\n    op: engine_ops:Numbers\n")
    expect(msg, at(tmp_path, None), "missing required key 'name'")


# --- operators --------------------------------------------------------------------------


def test_operator_missing_from_its_module_suggests_close_operator_names(tmp_path):
    msg = fails(tmp_path, NUMS.replace("engine_ops:Numbers", "engine_ops:Number"))
    expect(
        msg,
        at(tmp_path, 4, "nums"),
        "operator 'engine_ops:Number'",
        "module 'engine_ops' has no 'Number'",
        "did you mean 'Numbers'?",
    )


def test_operator_missing_from_its_module_with_nothing_close(tmp_path):
    msg = fails(tmp_path, NUMS.replace("engine_ops:Numbers", "engine_ops:Nope"))
    expect(msg, at(tmp_path, 4, "nums"), "module 'engine_ops' has no 'Nope'")
    assert "did you mean" not in msg


def test_operator_in_a_missing_module(tmp_path):
    msg = fails(tmp_path, NUMS.replace("engine_ops:Numbers", "no_such_module_xyz:Numbers"))
    expect(
        msg,
        at(tmp_path, 4, "nums"),
        "operator 'no_such_module_xyz:Numbers'",
        "cannot import module 'no_such_module_xyz'",
    )


def test_operator_module_typo_suggests_the_module(tmp_path):
    msg = fails(tmp_path, NUMS.replace("engine_ops:Numbers", "engine_op:Numbers"))
    expect(
        msg,
        at(tmp_path, 4, "nums"),
        "cannot import module 'engine_op'",
        "did you mean 'engine_ops'?",
    )


def test_unknown_short_operator_name(tmp_path):
    # the built-in library may be empty: the message still says how to name any operator
    msg = fails(tmp_path, NUMS.replace("engine_ops:Numbers", "Numbrs"))
    expect(msg, at(tmp_path, 4, "nums"), "unknown operator 'Numbrs'", "package.module:Name")


def test_operator_reference_to_something_that_is_not_an_operator(tmp_path):
    msg = fails(tmp_path, NUMS.replace("engine_ops:Numbers", "engine_ops:record"))
    expect(msg, at(tmp_path, 4, "nums"), "'record' is not a stardag Operator subclass")


def test_operator_module_that_fails_to_import_is_a_spec_error(tmp_path):
    module = f"broken_ops_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text("def broken(:\n")
    msg = fails(tmp_path, NUMS.replace("engine_ops:Numbers", f"{module}:Numbers"))
    expect(msg, at(tmp_path, 4, "nums"), f"operator '{module}:Numbers'", "SyntaxError")


# --- inputs -----------------------------------------------------------------------------


def test_missing_required_input(tmp_path):
    msg = fails(tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n")
    expect(msg, at(tmp_path, 5, "s"), "missing input 'table'", "dataset(x: int64)")


def test_unknown_input_name_suggests_the_input(tmp_path):
    msg = fails(tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n    inputs:\n      tabel: nums\n")
    expect(msg, at(tmp_path, 8, "s"), "has no input 'tabel'", "did you mean 'table'?")


def test_dangling_input_suggests_an_existing_stage(tmp_path):
    msg = fails(tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n    inputs:\n      table: numz\n")
    expect(
        msg,
        at(tmp_path, 8, "s"),
        "names a stage that does not exist: 'numz'",
        "did you mean 'nums'?",
    )


def test_reference_to_an_output_that_does_not_exist(tmp_path):
    msg = fails(
        tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n    inputs:\n      table: nums.tabel\n"
    )
    expect(msg, at(tmp_path, 8, "s"), "stage 'nums' has no output 'tabel'", "its outputs: table")


def test_stage_with_several_outputs_must_be_referenced_with_one(tmp_path):
    msg = fails(
        tmp_path,
        NUMS
        + """\
  slow:
    op: engine_ops:Sleep
    inputs: {table: nums}
  s:
    op: engine_ops:Scale
    inputs:
      table: slow
""",
    )
    expect(
        msg,
        at(tmp_path, 11, "s"),
        "stage 'slow' has outputs table, blob",
        "name one",
        "slow.<output>",
    )


def test_input_reference_that_is_not_a_reference(tmp_path):
    msg = fails(tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n    inputs:\n      table: 3\n")
    expect(msg, at(tmp_path, 8, "s"), "inputs.table", "expected an input reference", "got 3")


def test_malformed_input_reference(tmp_path):
    msg = fails(
        tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n    inputs:\n      table: nums@\n"
    )
    expect(msg, at(tmp_path, 8, "s"), "'nums@' is not of the form stage[.output][@N|@last]")


def test_cycle_between_two_stages_is_refused(tmp_path):
    msg = fails(
        tmp_path,
        """\
        name: t
        stages:
          a:
            op: engine_ops:Scale
            inputs: {table: b}
          b:
            op: engine_ops:Scale
            inputs: {table: a}
        """,
    )
    assert "inputs form a cycle: " in msg
    assert msg.split("inputs form a cycle: ")[1] in ("a -> b -> a", "b -> a -> b")
    assert msg.startswith(at(tmp_path, 5, "a")) or msg.startswith(at(tmp_path, 8, "b"))


def test_stage_taking_its_own_output_is_refused(tmp_path):
    msg = fails(tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n    inputs: {table: s}\n")
    expect(msg, at(tmp_path, 7, "s"), "a stage cannot take its own output")
    assert "previous" not in msg  # that advice is for loop stages only


def test_loop_stage_taking_its_own_output_is_pointed_to_previous(tmp_path):
    msg = fails(tmp_path, LOOP.replace("{previous: step, initial: nums}", "step"))
    expect(msg, at(tmp_path, 11, "step"), "a stage cannot take its own output", "`previous:`")


# --- kinds and schemas, found before anything runs ----------------------------------------


def test_model_port_fed_a_dataset_is_refused(tmp_path):
    msg = fails(
        tmp_path, NUMS + "  r:\n    op: engine_ops:ReadWeights\n    inputs:\n      model: nums\n"
    )
    expect(
        msg,
        at(tmp_path, 8, "r"),
        "input 'model' expects a model directory",
        "nums.table is a dataset(x: int64)",
    )


def test_dataset_port_fed_a_model_is_refused(tmp_path):
    msg = fails(
        tmp_path,
        NUMS
        + """\
  w:
    op: engine_ops:Weights
    inputs: {table: nums}
  s:
    op: engine_ops:Scale
    inputs: {table: w}
""",
    )
    expect(
        msg,
        at(tmp_path, 10, "s"),
        "input 'table' expects a dataset(x: int64)",
        "w.model is a model directory",
    )


def test_missing_column_is_found_before_anything_runs(tmp_path):
    msg = fails(
        tmp_path,
        """\
        name: t
        stages:
          words:
            op: engine_ops:Words
          s:
            op: engine_ops:Scale
            inputs: {table: words}
        """,
    )
    expect(
        msg,
        at(tmp_path, 7, "s"),
        "input 'table' needs column 'x' (int64)",
        "words.table does not produce",
        "it produces word",
    )


def test_column_of_the_wrong_type_is_found_before_anything_runs(tmp_path):
    module = f"typed_ops_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent("""\
        import polars as pl
        from stardag.operator import Dataset, Operator

        class StringX(Operator):
            outputs = {"table": Dataset({"x": "string"})}

            def run(self, ctx):
                raise AssertionError("must not run")
        """)
    )
    msg = fails(
        tmp_path,
        f"""\
        name: t
        stages:
          strings:
            op: {module}:StringX
          s:
            op: engine_ops:Scale
            inputs:
              table: strings
        """,
    )
    expect(
        msg,
        at(tmp_path, 8, "s"),
        "input 'table' needs column 'x' of type int64",
        "strings.table produces string",
    )


# --- params -----------------------------------------------------------------------------


def test_unknown_param_suggests_a_close_param(tmp_path):
    msg = fails(tmp_path, NUMS + "    params:\n      strat: 3\n")
    expect(
        msg,
        at(tmp_path, 6, "nums"),
        "unknown param 'strat' for operator 'engine_ops:Numbers'",
        "did you mean 'start'?",
    )


def test_unknown_param_lists_the_params_when_none_is_close(tmp_path):
    msg = fails(tmp_path, NUMS + "    params:\n      m: 3\n")
    expect(msg, at(tmp_path, 6, "nums"), "unknown param 'm'", "its params: n, start")


def test_param_of_the_wrong_type(tmp_path):
    msg = fails(tmp_path, NUMS + '    params:\n      start: 1\n      n: "abc"\n')
    expect(msg, at(tmp_path, 7, "nums"), "param 'n'", "valid integer", "'abc'")


def test_nan_float_param_is_refused(tmp_path):
    msg = fails(
        tmp_path,
        NUMS
        + """\
  slow:
    op: engine_ops:Sleep
    inputs: {table: nums}
    params:
      seconds: .nan
""",
    )
    expect(msg, at(tmp_path, 9, "slow"), "param 'seconds' is nan", "no canonical form")


# --- the loop ---------------------------------------------------------------------------


def test_previous_outside_the_loop_is_refused(tmp_path):
    msg = fails(
        tmp_path,
        NUMS + "  s:\n    op: engine_ops:Scale\n    inputs:\n"
        "      table: {previous: s, initial: nums}\n",
    )
    expect(msg, at(tmp_path, 8, "s"), "`previous` inputs are only for stages inside the loop")


def test_previous_naming_a_stage_outside_the_loop_is_refused(tmp_path):
    msg = fails(tmp_path, LOOP.replace("previous: step", "previous: nums"))
    expect(
        msg, at(tmp_path, 11, "step"), "`previous` must name a stage inside the loop", "not 'nums'"
    )


def test_previous_without_initial_is_refused(tmp_path):
    msg = fails(tmp_path, LOOP.replace(", initial: nums", ""))
    expect(msg, at(tmp_path, 11, "step"), "missing required key 'inputs.table.initial'")


def test_top_level_stage_referencing_a_loop_stage_needs_last_or_n(tmp_path):
    text = (
        NUMS
        + "  total:\n    op: engine_ops:Sum\n    inputs:\n      table: step\n"
        + LOOP[len(NUMS) :]
    )
    msg = fails(tmp_path, text)
    expect(msg, at(tmp_path, 8, "total"), "stage 'step' is inside the loop", "step@last or step@N")


@pytest.mark.parametrize("ref", ["step@4", "step@0"])
def test_iteration_out_of_range_is_refused(tmp_path, ref):
    text = (
        NUMS
        + f"  total:\n    op: engine_ops:Sum\n    inputs:\n      table: {ref}\n"
        + LOOP[len(NUMS) :]
    )
    msg = fails(tmp_path, text)
    expect(msg, at(tmp_path, 8, "total"), f"iteration {ref[5:]} of 'step' does not exist (1..3)")


def test_iteration_of_a_stage_outside_the_loop_is_refused(tmp_path):
    msg = fails(tmp_path, NUMS + "  s:\n    op: engine_ops:Scale\n    inputs: {table: nums@2}\n")
    expect(msg, at(tmp_path, 7, "s"), "stage 'nums' is not in the loop")


def test_zero_iterations_is_refused(tmp_path):
    msg = fails(tmp_path, LOOP.replace("iterations: 3", "iterations: 0"))
    expect(msg, at(tmp_path, 6), "loop.iterations", "greater than or equal to 1", "got 0")


def test_stage_both_inside_and_outside_the_loop_is_refused(tmp_path):
    msg = fails(
        tmp_path,
        LOOP.replace("    step:\n", "    nums:\n").replace("previous: step", "previous: nums"),
    )
    assert "used both inside and outside the loop" in msg
    assert "stage 'nums'" in msg


# --- files: extends and the spec itself ---------------------------------------------------


def test_extends_naming_a_missing_file(tmp_path):
    msg = fails(tmp_path, "name: t\nextends: base.yaml\n")
    expect(msg, at(tmp_path, 2), "`extends` names a missing file: base.yaml")


def test_extends_of_itself_is_a_cycle(tmp_path):
    msg = fails(tmp_path, "extends: spec.yaml\nname: t\n")
    expect(msg, at(tmp_path, 1), "`extends` forms a cycle: spec.yaml -> spec.yaml")


def test_extends_cycle_through_two_files_points_at_the_closing_extends(tmp_path):
    write(tmp_path / "base.yaml", "name: base\nstages: {}\nextends: spec.yaml\n")
    msg = fails(tmp_path, "extends: base.yaml\nname: t\n")
    expect(
        msg,
        at(tmp_path, 3, name="base.yaml"),
        "`extends` forms a cycle: spec.yaml -> base.yaml -> spec.yaml",
    )


def test_error_inherited_from_the_base_spec_names_the_base_file_and_line(tmp_path):
    write(tmp_path / "base.yaml", NUMS.replace("engine_ops:Numbers", "engine_ops:Number"))
    msg = fails(tmp_path, "extends: base.yaml\nname: child\n")
    expect(msg, at(tmp_path, 4, "nums", name="base.yaml"), "did you mean 'Numbers'?")


def test_error_in_an_extending_spec_names_that_file(tmp_path):
    write(tmp_path / "base.yaml", NUMS)
    msg = fails(tmp_path, "extends: base.yaml\nstages:\n  nums:\n    params: {n: abc}\n")
    expect(msg, at(tmp_path, 4, "nums"), "param 'n'", "'abc'")


def test_extends_naming_a_directory(tmp_path):
    msg = fails(tmp_path, "name: t\nextends: .\n")
    expect(msg, at(tmp_path, 2), "`extends` names a directory, not a spec file")


def test_missing_spec_file(tmp_path):
    msg = fails(tmp_path, None, spec=tmp_path / "nope.yaml")
    expect(msg, at(tmp_path, None, name="nope.yaml"), "spec file not found")


# --- --set overrides --------------------------------------------------------------------


def test_override_without_equals_sign(tmp_path):
    msg = fails(tmp_path, NUMS, "--set", "stages.nums.params.n")
    expect(msg, "--set: ", "'stages.nums.params.n' is not of the form key.path=value")


def test_override_whose_value_is_not_yaml_is_one_line(tmp_path):
    msg = fails(tmp_path, NUMS, "--set", "stages.nums.params.n=[1")
    expect(
        msg,
        "--set: ",
        "override 'stages.nums.params.n=[1': value is not valid YAML",
        "expected ',' or ']'",
    )


def test_override_of_an_unknown_stage_suggests_the_stage(tmp_path):
    msg = fails(tmp_path, NUMS, "--set", "stages.numz.params.n=3")
    expect(msg, "--set stages.numz.params.n=3: ", "unknown stage 'numz'", "did you mean 'nums'?")


def test_override_of_an_unknown_loop_stage_suggests_the_stage(tmp_path):
    msg = fails(tmp_path, LOOP, "--set", "loop.stages.stp.params.iteration=3")
    expect(
        msg,
        "--set loop.stages.stp.params.iteration=3: ",
        "unknown stage 'stp'",
        "did you mean 'step'?",
    )


def test_override_with_a_misspelt_key_suggests_the_key(tmp_path):
    msg = fails(tmp_path, NUMS, "--set", "stages.nums.parms.n=3")
    expect(
        msg, "--set stages.nums.parms.n=3: ", "no key 'stages.nums.parms'", "did you mean 'params'?"
    )


def test_override_with_a_misspelt_top_level_key_suggests_the_key(tmp_path):
    msg = fails(tmp_path, NUMS, "--set", "stagse.nums.params.n=3")
    expect(msg, "--set stagse.nums.params.n=3: ", "no key 'stagse'", "did you mean 'stages'?")


def test_override_with_a_value_of_the_wrong_type_points_at_the_override(tmp_path):
    msg = fails(tmp_path, NUMS, "--set", "stages.nums.params.n=abc")
    expect(
        msg, "--set stages.nums.params.n=abc: stage 'nums': ", "param 'n'", "valid integer", "'abc'"
    )


def test_override_creating_an_unknown_param_is_refused(tmp_path):
    msg = fails(tmp_path, NUMS, "--set", "stages.nums.params.strat=1")
    expect(
        msg,
        "--set stages.nums.params.strat=1: stage 'nums': ",
        "unknown param 'strat'",
        "did you mean 'start'?",
    )


# --- resources --------------------------------------------------------------------------


def test_negative_cpus_is_refused(tmp_path):
    msg = fails(tmp_path, NUMS + "    resources:\n      cpus: -1\n")
    expect(msg, at(tmp_path, 6, "nums"), "resources.cpus", "greater than or equal to 0", "got -1")


@pytest.mark.parametrize("memory", ["lots", "2XB", "1.2.3GB", "GB"])
def test_unparsable_memory_is_refused(tmp_path, memory):
    msg = fails(tmp_path, NUMS + f"    resources:\n      memory: {memory}\n")
    expect(
        msg,
        at(tmp_path, 6, "nums"),
        "resources.memory",
        f"cannot read memory size '{memory}'",
        "4GB",
    )


@pytest.mark.parametrize(
    "resources, words",
    [
        ("{gpus: .inf}", ("resources.gpus", "finite number", "got inf")),
        ("{cpus: .nan}", ("resources.cpus", "finite number", "got nan")),
        ("{custom: {tpu: -1}}", ("resources.custom.tpu", "greater than or equal to 0", "got -1")),
    ],
)
def test_other_impossible_resources_are_refused(tmp_path, resources, words):
    msg = fails(tmp_path, NUMS + f"    resources: {resources}\n")
    expect(msg, at(tmp_path, 5, "nums"), *words)


def test_unknown_resource_suggests_the_resource(tmp_path):
    msg = fails(tmp_path, NUMS + "    resources:\n      gpu: 1\n")
    expect(msg, at(tmp_path, 6, "nums"), "unknown key 'gpu'", "did you mean 'gpus'?")


# --- the store is left as it was ----------------------------------------------------------


def test_bad_specs_after_a_run_leave_the_store_unchanged(tmp_path):
    spec = write(
        tmp_path / "spec.yaml", NUMS + "  s:\n    op: engine_ops:Scale\n    inputs: {table: nums}\n"
    )
    r = invoke(tmp_path, "run", spec)
    assert r.exit_code == 0, r.output
    (tmp_path / "calls.txt").unlink()
    assert listing(tmp_path / "store")
    # fails() compares the store listing before and after each of these
    fails(tmp_path, None, "--set", "stages.nums.params.n=abc")
    fails(tmp_path, None, "--set", "stages.s.inputs.table=s")
    fails(tmp_path, None, "--set", "stages.s.op=engine_ops:ReadWeights")
    fails(
        tmp_path,
        NUMS + "  s:\n    op: engine_ops:Scale\n    inputs: {table: nums}\n"
        "  w:\n    op: engine_ops:Words\n  bad:\n    op: engine_ops:Scale\n"
        "    inputs: {table: w}\n",
    )


# --- spec features the errors rely on ---------------------------------------------------


def test_extends_with_null_deletes_a_key(tmp_path):
    write(tmp_path / "base.yaml", NUMS + "    params: {n: 3, start: 10}\n")
    spec = write(
        tmp_path / "spec.yaml",
        """\
        extends: base.yaml
        name: child
        stages:
          nums:
            params:
              start: null
        """,
    )
    loaded = load_spec(spec)
    assert loaded.spec.name == "child"
    assert dict(loaded.spec.stages["nums"].params) == {"n": 3}
    assert loaded.spec.stages["nums"].op == "engine_ops:Numbers"
    # a value from the base still points at the base file, an overridden one at the child
    assert loaded.where(("stages", "nums", "params", "n")) == (str(tmp_path / "base.yaml"), 5)
    assert loaded.where(("name",)) == (str(spec.resolve()), 2)


def test_set_creates_a_new_param(tmp_path):
    spec = write(tmp_path / "spec.yaml", NUMS)
    loaded = load_spec(spec, ["stages.nums.params.n=3"])
    assert dict(loaded.spec.stages["nums"].params) == {"n": 3}
    assert loaded.where(("stages", "nums", "params", "n")) == ("--set stages.nums.params.n=3", None)
    r = invoke(tmp_path, "run", spec, "--set", "stages.nums.params.n=3")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "calls.txt").read_text().split() == ["nums"]
    (tmp_path / "calls.txt").unlink()
    r = invoke(tmp_path, "plan", spec, "--set", "stages.nums.params.n=3")
    assert r.exit_code == 0 and "nums  cached" in r.stdout, r.output


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2GB", 2 * 1024**3),
        ("2 GiB", 2 * 1024**3),
        ("512MB", 512 * 1024**2),
        ("1.5G", int(1.5 * 1024**3)),
        ("64KB", 64 * 1024),
        ("100", 100),
        ("100B", 100),
        (4096, 4096),
    ],
)
def test_memory_sizes_are_parsed_to_bytes(text, expected):
    assert Resources(memory=text).memory == expected


def test_memory_from_a_spec_is_parsed_to_bytes(tmp_path):
    spec = write(tmp_path / "spec.yaml", NUMS + "    resources: {memory: 2GB, cpus: 0.5}\n")
    loaded = load_spec(spec)
    assert loaded.spec.stages["nums"].resources.memory == 2 * 1024**3
