"""The code identity of an operator: exactly the definitions its code reaches, followed
through imports, module attributes, base classes, decorators, defaults and registries; more
(never less) where the code is dynamic. Each test writes a small package, takes the identity,
edits one definition, and takes it again."""

import itertools
import textwrap

import pytest

from stardag.code_identity import changes, identity_of

_names = itertools.count()


class Package:
    """A package of modules on disk, importable by name (each test its own name)."""

    def __init__(self, root, monkeypatch):
        self.name = f"ci_pkg{next(_names)}"
        self.root = root
        (root / self.name).mkdir()
        (root / self.name / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setenv("STARDAG_CACHE_DIR", str(root / "cache"))

    def write(self, module: str, text: str):
        (self.root / self.name / f"{module}.py").write_text(textwrap.dedent(text).lstrip())

    def edit(self, module: str, old: str, new: str):
        path = self.root / self.name / f"{module}.py"
        text = path.read_text()
        assert old in text, (module, old)
        path.write_text(text.replace(old, new))

    def append(self, module: str, text: str):
        path = self.root / self.name / f"{module}.py"
        path.write_text(path.read_text() + textwrap.dedent(text))

    def identity(self, module: str = "op", name: str = "Op"):
        return identity_of(f"{self.name}.{module}", name)

    def reached(self, module: str = "op", name: str = "Op") -> set[str]:
        prefix = f"{self.name}/"
        return {d.removeprefix(prefix) for d in self.identity(module, name).definitions}


@pytest.fixture
def pkg(tmp_path, monkeypatch):
    return Package(tmp_path, monkeypatch)


OP = """
from .helpers import shout
from . import util


class Op:
    def run(self, x):
        return util.double(shout(x))
"""

HELPERS = """
def shout(x):
    return x.upper()


def whisper(x):
    return x.lower()
"""

UTIL = """
def double(x):
    return x * 2


def triple(x):
    return x * 3
"""


@pytest.fixture
def basic(pkg):
    pkg.write("op", OP)
    pkg.write("helpers", HELPERS)
    pkg.write("util", UTIL)
    return pkg


def test_it_names_the_definitions_reached_through_imports_and_module_attributes(basic):
    assert basic.reached() == {"op.py:Op", "helpers.py:shout", "util.py:double"}


def test_an_unused_new_definition_changes_nothing(basic):
    before = basic.identity().digest
    basic.append("helpers", "\n\ndef unused():\n    return 1\n")
    basic.append("util", "\n\nUNUSED = 3\n")
    basic.append("op", "\n\nclass Other:\n    pass\n")
    assert basic.identity().digest == before


def test_editing_a_definition_the_operator_does_not_reach_changes_nothing(basic):
    before = basic.identity().digest
    basic.edit("helpers", "x.lower()", "x.lower() + '.'")
    basic.edit("util", "x * 3", "x * 4")
    assert basic.identity().digest == before


def test_editing_a_reached_helper_changes_it_and_says_which_definition(basic):
    old = basic.identity()
    basic.edit("util", "x * 2", "x * 20")
    new = basic.identity()
    assert new.digest != old.digest
    assert changes(old.definitions, new.definitions) == [
        f"code: {basic.name}/util.py:double changed"
    ]


def test_comments_docstrings_and_formatting_change_nothing(basic):
    before = basic.identity().digest
    basic.edit(
        "util",
        "def double(x):\n    return x * 2",
        'def double(x):  # twice\n    """Twice x."""\n\n    return (x *\n            2)',
    )
    assert basic.identity().digest == before


def test_a_method_edit_changes_the_class_and_a_new_method_too(basic):
    before = basic.identity().digest
    basic.edit("op", "return util.double(shout(x))", "return util.double(shout(x)) + '!'")
    after = basic.identity().digest
    assert after != before
    basic.append("op", "")
    basic.edit(
        "op",
        "    def run(self, x):",
        "    def other(self):\n        return 1\n\n    def run(self, x):",
    )
    assert basic.identity().digest != after


def test_a_constant_imported_from_another_operator_module_brings_only_itself(pkg):
    pkg.write(
        "schema",
        """
        COLUMNS = {"x": "int64"}
        OTHER = {"y": "string"}


        class Heavy:
            def run(self):
                return 1
    """,
    )
    pkg.write(
        "op",
        """
        from .schema import COLUMNS


        class Op:
            inputs = COLUMNS
    """,
    )
    assert pkg.reached() == {"op.py:Op", "schema.py:COLUMNS"}
    before = pkg.identity().digest
    pkg.edit("schema", "return 1", "return 2")
    pkg.edit("schema", '"string"', '"large_string"')
    assert pkg.identity().digest == before
    pkg.edit("schema", '"int64"', '"int32"')
    assert pkg.identity().digest != before


def test_base_classes_decorators_and_default_arguments_are_followed(pkg):
    pkg.write(
        "lib",
        """
        import functools

        DEFAULT = 3


        def traced(f):
            @functools.wraps(f)
            def wrapper(*a, **k):
                return f(*a, **k)
            return wrapper


        class Base:
            def helper(self):
                return 1
    """,
    )
    pkg.write(
        "op",
        """
        from .lib import DEFAULT, Base, traced


        class Op(Base):
            @traced
            def run(self, n=DEFAULT):
                return self.helper() + n
    """,
    )
    assert pkg.reached() == {"op.py:Op", "lib.py:Base", "lib.py:traced", "lib.py:DEFAULT"}
    for old, new in [
        ("return 1", "return 2"),
        ("return f(*a, **k)", "return f(*a)"),
        ("DEFAULT = 3", "DEFAULT = 4"),
    ]:
        before = pkg.identity().digest
        pkg.edit("lib", old, new)
        assert pkg.identity().digest != before, old


def test_import_forms_all_resolve(pkg):
    pkg.write("util", UTIL)
    pkg.write(
        "op",
        f"""
        import {pkg.name}.util
        import {pkg.name}.util as u
        from {pkg.name} import util as v


        class Op:
            def run(self, x):
                return {pkg.name}.util.double(x) + u.double(x) + v.double(x)
    """,
    )
    assert pkg.reached() == {"op.py:Op", "util.py:double"}


def test_a_registry_filled_by_module_level_calls_counts_for_its_readers_only(pkg):
    pkg.write(
        "tasks",
        """
        TASKS = {}


        def register(name, fn):
            TASKS[name] = fn


        def get(name):
            return TASKS[name]


        def add(a, b):
            return a + b


        SCHEMA = {"a": "int64"}

        register("add", add)
    """,
    )
    pkg.write(
        "reader",
        """
        from .tasks import get


        class Op:
            def run(self, a, b):
                return get("add")(a, b)
    """,
    )
    pkg.write(
        "schema_only",
        """
        from .tasks import SCHEMA


        class Op:
            inputs = SCHEMA
    """,
    )
    assert {"tasks.py:add", "tasks.py:<module-level statements>"} <= pkg.reached("reader")
    assert pkg.reached("schema_only") == {"schema_only.py:Op", "tasks.py:SCHEMA"}
    reader, schema_only = pkg.identity("reader").digest, pkg.identity("schema_only").digest
    pkg.edit("tasks", "return a + b", "return b + a")
    assert pkg.identity("reader").digest != reader
    assert pkg.identity("schema_only").digest == schema_only
    reader = pkg.identity("reader").digest
    pkg.edit("tasks", 'register("add", add)', 'register("plus", add)')
    assert pkg.identity("reader").digest != reader
    assert pkg.identity("schema_only").digest == schema_only


def test_a_registration_in_another_module_that_runs_on_import_counts(pkg):
    pkg.write(
        "registry",
        """
        TASKS = {}


        def register(name, fn):
            TASKS[name] = fn
    """,
    )
    pkg.write(
        "plugins",
        """
        from .registry import register

        register("neg", lambda x: -x)
    """,
    )
    pkg.write(
        "op",
        """
        from . import plugins  # noqa: F401  (registers its tasks)
        from .registry import TASKS


        class Op:
            def run(self, x):
                return TASKS["neg"](x)
    """,
    )
    before = pkg.identity().digest
    pkg.edit("plugins", "-x", "-2 * x")
    assert pkg.identity().digest != before


@pytest.mark.parametrize(
    "dynamic",
    [
        'getattr(util, "dou" + "ble")(x)',
        'globals()["util"].double(x)',
        'importlib.import_module(".".join([__package__, "util"])).double(x)',
        "call(util, x)",
    ],
)
def test_dynamic_code_takes_more_never_less(pkg, dynamic):
    pkg.write("util", UTIL)
    pkg.write(
        "op",
        f"""
        import importlib

        from . import util


        def call(module, x):
            return module.double(x)


        class Op:
            def run(self, x):
                return {dynamic}
    """,
    )
    before = pkg.identity().digest
    pkg.edit("util", "x * 3", "x * 4")  # triple: only a dynamic lookup could reach it
    assert pkg.identity().digest != before


def test_a_module_beside_the_spec_is_followed_and_named(tmp_path, monkeypatch):
    n = next(_names)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("STARDAG_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / f"helpers{n}.py").write_text("FACTOR = 2\nOTHER = 1\n")
    (tmp_path / f"myops{n}.py").write_text(
        f"from helpers{n} import FACTOR\n\n\nclass Op:\n    factor = FACTOR\n"
    )
    old = identity_of(f"myops{n}", "Op")
    (tmp_path / f"helpers{n}.py").write_text("FACTOR = 3\nOTHER = 1\n")
    new = identity_of(f"myops{n}", "Op")
    assert changes(old.definitions, new.definitions) == [f"code: helpers{n}.py:FACTOR changed"]


def test_string_annotations_are_followed(pkg):
    pkg.write("types_", "class Config:\n    size: int = 1\n")
    pkg.write(
        "op",
        """
        from .types_ import Config


        class Op:
            config: "Config"
    """,
    )
    assert "types_.py:Config" in pkg.reached()


def test_libraries_reached_are_recorded_with_their_versions_and_others_are_not(pkg):
    import yaml

    pkg.write(
        "op",
        """
        import json

        import yaml


        def unused():
            import pytest
            return pytest


        class Op:
            def run(self, text):
                return json.dumps(yaml.safe_load(text))
    """,
    )
    assert pkg.identity().libraries == {"yaml": yaml.__version__}


def test_a_main_guard_counts_for_nothing(basic):
    before = basic.identity().digest
    basic.append("util", '\n\nif __name__ == "__main__":\n    print(double(2))\n')
    assert basic.identity().digest == before


def test_a_damaged_parse_cache_is_parsed_again_not_trusted(basic, tmp_path):
    good = basic.identity()
    for f in (tmp_path / "cache" / "code").iterdir():
        f.write_text('{"format": 1, "defs": [}')
    assert basic.identity() == good
    for f in (tmp_path / "cache" / "code").iterdir():
        f.write_text("[]")
    assert basic.identity() == good


def test_a_new_definition_in_a_package_init_that_held_only_a_docstring_changes_nothing(pkg):
    (pkg.root / pkg.name / "__init__.py").write_text('"""The package."""\n')
    pkg.write("op", "class Op:\n    pass\n")
    before = pkg.identity().digest
    (pkg.root / pkg.name / "__init__.py").write_text(
        '"""The package."""\n\n\ndef unused():\n    return 1\n'
    )
    assert pkg.identity().digest == before


def test_a_name_bound_by_two_imports_in_two_branches_follows_both(pkg):
    pkg.write("fast", "def run(x):\n    return x\n")
    pkg.write("slow", "def run(x):\n    return x\n")
    pkg.write(
        "op",
        """
        class Op:
            def run(self, x, fast):
                if fast:
                    from .fast import run
                else:
                    from .slow import run
                return run(x)
    """,
    )
    assert {"fast.py:run", "slow.py:run"} <= pkg.reached()
    before = pkg.identity().digest
    pkg.edit("fast", "return x", "return -x")
    after = pkg.identity().digest
    assert after != before
    pkg.edit("slow", "return x", "return -x")
    assert pkg.identity().digest != after
