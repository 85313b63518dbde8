"""The promises of docs/security.md: nothing in a spec runs code but the operators it names,
the store holds no pickle and stardag loads none, no remote code by default, no name
reaches outside the store, and a Ray started here listens on 127.0.0.1."""

from __future__ import annotations

import ast
import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stardag import spec as spec_module
from stardag.cli import main
from stardag.errors import InputError, SpecError, StoreError
from stardag.spec import STAGE_NAME, load_spec
from stardag.store import Store

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "stardag").rglob("*.py")) + sorted((REPO / "operators").rglob("*.py"))


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _calls(tree: ast.AST):
    """(dotted name of the callee, call node) for every call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, f = [], node.func
            while isinstance(f, ast.Attribute):
                parts.append(f.attr)
                f = f.value
            parts.append(f.id if isinstance(f, ast.Name) else "<expr>")
            yield ".".join(reversed(parts)), node


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def invoke(*argv: str):
    return CliRunner().invoke(main, [str(a) for a in argv])


# --- a spec runs no code but the operators it names -------------------------------------

PAYLOADS = [
    # a stage's body, a param, the spec name, a merged alias, an `op`, the whole document
    'name: t\nstages:\n  nums: !!python/object/apply:os.system ["touch {flag}"]\n',
    (
        "name: t\nstages:\n  nums:\n    op: engine_ops:Numbers\n"
        '    params: {{n: !!python/object/apply:os.system ["touch {flag}"]}}\n'
    ),
    'name: !!python/object/apply:os.system ["touch {flag}"]\nstages: {{}}\n',
    (
        'name: t\nx: &x !!python/object/new:os.system ["touch {flag}"]\nstages:\n  nums:\n'
        "    <<: *x\n"
    ),
    "name: t\nstages:\n  nums:\n    op: !!python/name:os.system\n",
    '!!python/object/apply:os.system ["touch {flag}"]\n',
]


@pytest.mark.parametrize("text", PAYLOADS)
def test_python_yaml_tags_in_a_spec_are_refused_and_run_nothing(tmp_path, text):
    flag = tmp_path / "pwned"
    spec = tmp_path / "spec.yaml"
    spec.write_text(text.format(flag=flag))
    with pytest.raises(SpecError) as e:
        load_spec(spec)
    assert e.value.file == str(spec.resolve()) and e.value.line
    r = invoke("run", spec, "--store", tmp_path / "store", "--executor", "local", "-q")
    assert r.exit_code == 2, r.output
    assert not flag.exists() and not (tmp_path / "store").exists()


def test_python_yaml_tags_in_an_extended_spec_and_in_set_run_nothing(tmp_path):
    flag = tmp_path / "pwned"
    (tmp_path / "base.yaml").write_text(
        f'name: b\nstages:\n  n: !!python/object/apply:os.system ["touch {flag}"]\n'
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text("extends: base.yaml\nname: t\n")
    with pytest.raises(SpecError, match="python/object/apply"):
        load_spec(spec)
    spec.write_text("name: t\nstages:\n  nums:\n    op: engine_ops:Numbers\n")
    with pytest.raises(SpecError, match="could not determine a constructor"):
        load_spec(spec, [f"stages.nums.params=!!python/object/apply:os.system [touch {flag}]"])
    assert not flag.exists()


def test_exemplar_files_are_read_with_the_safe_loader(tmp_path):
    from operators.fewshot_prompt import read_exemplars

    flag = tmp_path / "pwned"
    ex = tmp_path / "ex.yaml"
    ex.write_text(f'exemplars:\n  - !!python/object/apply:os.system ["touch {flag}"]\n')
    with pytest.raises(InputError, match="ex.yaml:2: invalid YAML"):
        read_exemplars(str(ex), 1, {"question"}, {"answer"})
    assert not flag.exists()


def test_every_yaml_load_in_the_code_uses_a_safe_loader():
    assert issubclass(spec_module._Loader, yaml.SafeLoader)
    for path in SOURCES:
        for name, call in _calls(_tree(path)):
            if name in (
                "yaml.load",
                "yaml.load_all",
                "yaml.compose",
                "yaml.compose_all",
            ):
                loader = _keyword(call, "Loader")
                assert isinstance(loader, (ast.Name, ast.Attribute)), f"{path}: {name}"
                text = ast.unparse(loader)
                assert text in ("_Loader", "yaml.SafeLoader"), f"{path}: {name}(Loader={text})"
            assert name not in (
                "yaml.unsafe_load",
                "yaml.full_load",
                "yaml.unsafe_load_all",
                "yaml.full_load_all",
            ), f"{path}: {name}"


def test_planning_imports_only_the_operator_modules_a_spec_names(tmp_path):
    """An operator reference is code the user chose: a module beside the spec is imported
    when it is named, and not otherwise."""
    flag = tmp_path / "imported"
    module = f"sidecar_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(f"open({str(flag)!r}, 'w').close()\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\nstages:\n  nums:\n    op: engine_ops:Numbers\n")
    assert invoke("plan", spec, "--store", tmp_path / "store").exit_code == 0
    assert not flag.exists() and module not in sys.modules


# --- no pickle --------------------------------------------------------------------------

PICKLE_MODULES = {
    "pickle",
    "_pickle",
    "cloudpickle",
    "dill",
    "marshal",
    "shelve",
    "joblib",
}


def test_no_engine_or_operator_module_imports_a_pickle_library():
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in PICKLE_MODULES, f"{path}: imports {name}"


def test_no_code_loads_or_saves_pickles():
    for path in SOURCES:
        for name, call in _calls(_tree(path)):
            last = name.rsplit(".", 1)[-1]
            if name == "torch.load":
                weights_only = _keyword(call, "weights_only")
                assert isinstance(weights_only, ast.Constant) and weights_only.value is True, (
                    f"{path}:{call.lineno}: torch.load without weights_only=True"
                )
            assert name not in ("torch.save", "np.save", "numpy.save"), f"{path}:{call.lineno}"
            assert last not in ("read_pickle", "to_pickle"), f"{path}:{call.lineno}: {name}"
            allow = _keyword(call, "allow_pickle")
            assert not (isinstance(allow, ast.Constant) and allow.value), f"{path}:{call.lineno}"
            if last in ("save_pretrained",) and _keyword(call, "safe_serialization") is not None:
                assert _keyword(call, "safe_serialization").value is True, f"{path}:{call.lineno}"


def test_no_code_evaluates_strings():
    for path in SOURCES:
        for name, call in _calls(_tree(path)):
            assert name not in (
                "eval",
                "exec",
                "compile",
                "__import__",
                "os.system",
                "os.popen",
            ), f"{path}:{call.lineno}: {name}"


MALICIOUS_PICKLE_OPS = """\
import os
import pickle

import polars as pl

from stardag.operator import Dataset, Model, Operator


class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["STARDAG_TEST_FLAG"],))


class PickleModel(Operator):
    outputs = {"model": Model()}

    def run(self, ctx):
        out = ctx.output_dir("model")
        (out / "config.json").write_text('{"model_type": "gpt2"}')
        (out / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))


class Prompts(Operator):
    outputs = {"prompts": Dataset({"id": "string", "prompt": "string"})}

    def run(self, ctx):
        return pl.DataFrame({"id": ["a"], "prompt": ["1+1="]})
"""


def test_a_model_in_the_store_with_only_pickle_weights_is_refused_not_loaded(tmp_path, monkeypatch):
    """A model artifact whose weights are a pickle (here one that would run a command when
    loaded) is refused by the stage that would load it: exit 2, the command never runs."""
    module = f"pickle_ops_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(MALICIOUS_PICKLE_OPS)
    flag = tmp_path / "pwned"
    monkeypatch.setenv("STARDAG_TEST_FLAG", str(flag))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(f"""\
        name: t
        stages:
          model:
            op: {module}:PickleModel
          prompts:
            op: {module}:Prompts
          samples:
            op: sample
            inputs: {{model: model, prompts: prompts}}
        """)
    )
    r = invoke("run", spec, "--store", tmp_path / "store", "--executor", "local", "-q")
    assert r.exit_code == 2, r.output
    assert "stage 'samples' (op sample): invalid input: " in r.stderr
    assert (
        "no safetensors weights (it has pytorch_model.bin: pickle files, never loaded)" in r.stderr
    )
    assert not flag.exists()
    assert not any(m.get("stage") == "samples" for m in Store(tmp_path / "store").artifacts())


def test_models_load_only_from_safetensors(tmp_path):
    from operators import hf_common
    from operators.hf_model import check_model_path

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(InputError, match="no safetensors weights"):
        hf_common.load(str(model))
    with pytest.raises(InputError, match="no safetensors weights"):
        check_model_path(model)
    # transformers is told so too, in case a directory holds both
    for path in (REPO / "operators" / "hf_common.py", REPO / "operators" / "hf_model.py"):
        source = path.read_text()
        assert "use_safetensors=True" in source or '"use_safetensors"] = ' in source, path


# --- no remote code by default ----------------------------------------------------------


def test_no_code_passes_trust_remote_code_true():
    for path in SOURCES:
        for name, call in _calls(_tree(path)):
            value = _keyword(call, "trust_remote_code")
            assert not (isinstance(value, ast.Constant) and value.value is True), (
                f"{path}:{call.lineno}: {name}(trust_remote_code=True)"
            )


def test_operator_params_default_to_no_remote_code():
    from stardag.registry import known_names, resolve

    found = 0
    for name in known_names():
        field = resolve(name).Params.model_fields.get("trust_remote_code")
        if field is not None:
            found += 1
            assert field.default is False, name
    assert found >= 1  # hf_model has it: a spec must ask for remote code by name


# --- no name reaches outside the store --------------------------------------------------

BAD_NAMES = [
    "..",
    ".",
    "../x",
    "a/b",
    "/etc/passwd",
    "a\\b",
    "",
    "x\0y",
    "../../../../tmp/x",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_store_paths_refuse_names_that_would_leave_the_root(tmp_path, name):
    store = Store(tmp_path / "store")
    for call in (
        lambda: store.write_ref(name, "node", {}),
        lambda: store.write_ref("spec", name, {}),
        lambda: store.read_ref(name, "node"),
        lambda: store.read_ref("spec", name),
        lambda: store.write_run(name, {}),
    ):
        with pytest.raises(StoreError, match="unsafe name"):
            call()
    assert not (tmp_path / "store").exists() or not any(
        p.is_file() for p in (tmp_path / "store").rglob("*")
    )


@pytest.mark.parametrize(
    "key",
    [
        "../../../tmp/x",
        "abc",
        "ABCDEF0123",
        "0123456789abcdeg",
        "/etc/passwd",
        "0123abcd/../x",
        "",
    ],
)
def test_store_paths_refuse_keys_that_are_not_hex(tmp_path, key):
    store = Store(tmp_path / "store")
    for call in (
        lambda: store.manifest(key),
        lambda: store.begin(key),
        lambda: store.delete(key),
        lambda: store.acquire_lease(key, "me", 1.0),
        lambda: store.shards(key, "x"),
    ):
        with pytest.raises(StoreError, match="not an artifact key"):
            call()
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    assert not (tmp_path / "tmp").exists()


@pytest.mark.parametrize(
    "name", ["..", "../x", "a/b", "/abs", "a\\b", "x.y", "x y", "é", "-x", "a@1", ""]
)
def test_stage_and_spec_names_that_could_be_paths_are_refused_at_compile_time(tmp_path, name):
    assert not STAGE_NAME.match(name)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: t\nstages:\n  {yaml.safe_dump(name).splitlines()[0]}:\n    op: engine_ops:Numbers\n"
    )
    with pytest.raises(SpecError, match="stage names must be"):
        load_spec(spec)
    spec.write_text(f"name: {yaml.safe_dump(name).splitlines()[0]}\nstages: {{}}\n")
    with pytest.raises(SpecError, match="the spec name must be"):
        load_spec(spec)


def test_every_accepted_name_is_one_path_component(tmp_path):
    """What STAGE_NAME accepts, and node ids made from it (`stage@N`), stay one component
    under refs/<spec>/."""
    store = Store(tmp_path / "store")
    for name in ["a", "_", "A-b_9", "x" * 200, "a-", "_-_"]:
        assert STAGE_NAME.match(name)
        for node in (name, f"{name}@3"):
            path = Path(store._named("refs", name, node)).resolve()
            assert path.parent.parent == (tmp_path / "store" / "refs").resolve()


# --- Ray listens on 127.0.0.1 -----------------------------------------------------------


def test_a_ray_started_here_serves_its_dashboard_on_localhost_only():
    from stardag.executor import ray_init_kwargs

    kwargs = ray_init_kwargs(None)
    assert kwargs["dashboard_host"] == "127.0.0.1" and kwargs["address"] is None
    joined = ray_init_kwargs("ray://head:10001")
    assert "dashboard_host" not in joined and "include_dashboard" not in joined


def test_the_ray_runner_passes_those_settings_to_ray_init(monkeypatch):
    """RayRunner with a stand-in `ray` module: what it would start, without starting it."""
    import types

    from stardag.executor import RayRunner

    seen = {}
    fake = types.SimpleNamespace(
        is_initialized=lambda: False,
        init=lambda **kw: seen.update(kw),
        remote=lambda fn: fn,
        shutdown=lambda: None,
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    runner = RayRunner(None, [])
    assert seen["dashboard_host"] == "127.0.0.1"
    runner.close()
