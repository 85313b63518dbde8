"""Cache invalidation, one test per case: what must make a stage re-run (and the cause that
`stardag plan` gives for it), and what must not.

Every case runs the real `stardag` command in fresh processes, as a user would after editing
a file, on a small project written into a temporary directory: a package `proj` whose
operators live in separate modules (so that editing one module concerns one stage), a
helper module that one operator calls, an input text file, and a stand-in for a base model
(a directory with a safetensors file, or a single `.gguf` file) given as a path param.

    words (proj.source:Words, file: words.txt) -> loud (proj.loud:Shout, calls proj.text)
    base (proj.source:Base, path: model/ or tiny.gguf)  -> probe (proj.probe:Probe) <- loud
"""

import json
import os
import textwrap

import pytest
from support import Calls, cli, write

SOURCE = '''
import shutil
from pathlib import Path

import polars as pl

from stardag.operator import Dataset, FilePath, Model, Operator, Params

from .record import record


class Words(Operator):
    outputs = {"table": Dataset({"word": "string"})}

    class Params(Params):
        file: FilePath
        more: list[FilePath] = []
        repeat: int = 1

    def run(self, ctx):
        record(ctx)
        files = [ctx.params.file, *ctx.params.more]
        words = [w for f in files for w in Path(f).read_text().split()]
        return pl.DataFrame({"word": words * ctx.params.repeat})


class Base(Operator):
    """Brings a model (a directory, or one .gguf file) into the store, like hf_model."""

    outputs = {"model": Model()}

    class Params(Params):
        path: FilePath

    def run(self, ctx):
        record(ctx)
        src, out = Path(ctx.params.path), ctx.output_dir("model")
        if src.is_dir():
            shutil.copytree(src, out, dirs_exist_ok=True)
        else:
            shutil.copy(src, out / src.name)
'''

LOUD = """
import polars as pl

from stardag.operator import Dataset, Operator, Params

from .record import record
from .text import shout


class Shout(Operator):
    inputs = {"table": Dataset({"word": "string"})}
    outputs = {"table": Dataset({"word": "string"})}

    class Params(Params):
        suffix: str = "!"
        times: int = 1

    def run(self, ctx, table):
        record(ctx)
        words = [shout(w, ctx.params.suffix * ctx.params.times) for w in table["word"]]
        return pl.DataFrame({"word": words})
"""

TEXT = """
def shout(word, suffix):
    return word.upper() + suffix
"""

PROBE = """
import polars as pl

from stardag.operator import Dataset, Model, Operator

from .record import record


class Probe(Operator):
    inputs = {"model": Model(), "table": Dataset({"word": "string"})}
    outputs = {"table": Dataset({"word": "string", "bytes": "int64"})}

    def run(self, ctx, model, table):
        record(ctx)
        size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
        return table.with_columns(pl.lit(size, dtype=pl.Int64).alias("bytes"))
"""

RECORD = """
import os


def record(ctx):
    with open(os.environ["STARDAG_TEST_CALLS"], "a") as f:
        f.write(ctx.stage + "\\n")
"""

SPEC = """
name: invalidation
stages:
  words:
    op: proj.source:Words
    params: {file: words.txt, repeat: 2}
  loud:
    op: proj.loud:Shout
    inputs: {table: words}
    params: {suffix: "!", times: 1}
    resources: {cpus: 1}
  base:
    op: proj.source:Base
    params: {path: model}
  probe:
    op: proj.probe:Probe
    inputs: {model: base, table: loud}
"""

ALL = ["base", "loud", "probe", "words"]


class Project:
    """The project on disk, and the `stardag` command run on it."""

    def __init__(self, root, calls: Calls):
        self.root, self.calls = root, calls
        pkg = root / "proj"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        for name, text in [
            ("source", SOURCE),
            ("loud", LOUD),
            ("text", TEXT),
            ("probe", PROBE),
            ("record", RECORD),
        ]:
            (pkg / f"{name}.py").write_text(text.lstrip())
        (root / "words.txt").write_text("alpha\nbeta\ngamma\n")
        model = root / "model"
        model.mkdir()
        (model / "config.json").write_text('{"model_type": "tiny", "hidden_size": 4}')
        header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
        (model / "model.safetensors").write_bytes(
            len(header).to_bytes(8, "little") + header + bytes(range(16))
        )
        (root / "tiny.gguf").write_bytes(b"GGUF" + bytes(range(60)))
        self.spec = write(root / "pipeline.yaml", SPEC)

    def path(self, rel: str):
        return self.root / rel

    def edit(self, rel: str, old: str, new: str):
        """Replace text in a file; the replacement must happen."""
        p = self.path(rel)
        text = p.read_text()
        assert old in text, (rel, old)
        p.write_text(text.replace(old, new))

    def plan(self) -> dict[str, dict]:
        out = cli("plan", self.spec, "--json", cwd=self.root)
        assert out.returncode == 0, out.stderr
        return {e["node"]: e for e in json.loads(out.stdout)}

    def run(self) -> list[str]:
        """Run the spec; the stages whose operator was called."""
        out = cli("run", self.spec, "--executor", "local", cwd=self.root)
        assert out.returncode == 0, out.stderr
        return sorted(self.calls.take())

    def rerun(self) -> tuple[dict[str, dict], list[str]]:
        """What the plan says, then what the run does."""
        return self.plan(), self.run()


@pytest.fixture
def project(tmp_path):
    p = Project(tmp_path, Calls(tmp_path / "calls.txt"))
    assert p.run() == ALL
    assert p.run() == []
    return p


def reruns(plan: dict[str, dict]) -> dict[str, list[str]]:
    """node -> causes, for the nodes the plan would run."""
    return {n: e["causes"] for n, e in plan.items() if e["status"] == "run"}


def assert_all_cached(project: Project):
    plan, ran = project.rerun()
    assert reruns(plan) == {}
    assert ran == []


# --- changes that must re-run a stage ---------------------------------------------------


def test_a_changed_param_reruns_the_stage_with_cause_params(project):
    project.edit("pipeline.yaml", "times: 1", "times: 2")
    plan, ran = project.rerun()
    assert reruns(plan) == {"loud": ["params"], "probe": ["inputs"]}
    assert plan["loud"]["details"] == ["times: 1 -> 2"]
    assert ran == ["loud", "probe"]


def test_changed_operator_code_reruns_the_stage_with_cause_code(project):
    project.edit(
        "proj/loud.py",
        "ctx.params.suffix * ctx.params.times",
        "ctx.params.suffix * (ctx.params.times + 1)",
    )
    plan, ran = project.rerun()
    assert reruns(plan) == {"loud": ["code"], "probe": ["inputs"]}
    assert plan["loud"]["details"] == ["code: proj/loud.py:Shout changed"]
    assert ran == ["loud", "probe"]


def test_a_changed_helper_in_another_module_of_the_package_reruns_the_stage(project):
    # proj/loud.py is untouched; the function it calls, in proj/text.py, changes
    project.edit("proj/text.py", "word.upper() + suffix", "word.upper() + suffix + suffix")
    plan, ran = project.rerun()
    assert reruns(plan) == {"loud": ["code"], "probe": ["inputs"]}
    assert ran == ["loud", "probe"]


def test_a_changed_input_file_reruns_the_stage_with_cause_params(project):
    words = project.path("words.txt")
    words.write_text(words.read_text())  # rewritten with the same content: nothing to do
    assert_all_cached(project)
    words.write_text("alpha\nbeta\ndelta\n")
    plan, ran = project.rerun()
    assert reruns(plan) == {
        "words": ["params"],
        "loud": ["inputs"],
        "probe": ["inputs"],
    }
    assert plan["words"]["details"] == ["file: content of words.txt changed"]
    assert ran == ["loud", "probe", "words"]


def test_a_changed_file_in_a_list_of_input_files_reruns_the_stage(project):
    project.path("more.txt").write_text("epsilon\n")
    project.path("other.txt").write_text("zeta\n")
    project.edit(
        "pipeline.yaml",
        "{file: words.txt,",
        "{file: words.txt, more: [more.txt, other.txt],",
    )
    assert project.run() == ["loud", "probe", "words"]
    project.path("other.txt").write_text("eta\n")
    plan, ran = project.rerun()
    assert reruns(plan) == {
        "words": ["params"],
        "loud": ["inputs"],
        "probe": ["inputs"],
    }
    assert plan["words"]["details"] == ["more: content of other.txt changed"]
    assert ran == ["loud", "probe", "words"]


def _flip_keeping_size_and_mtime(path):
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    "weights",
    ["model/model.safetensors", "tiny.gguf"],
    ids=["model-directory", "gguf-file"],
)
def test_changed_base_model_weights_rerun_the_stage_with_cause_params(project, weights):
    given = weights.split("/")[0]
    if given != "model":
        project.edit("pipeline.yaml", "{path: model}", f"{{path: {given}}}")
        assert project.run() == ["base", "probe"]
    # one bit of the weights, with the file's size and modification time kept: the key
    # follows the content, not the file's metadata
    _flip_keeping_size_and_mtime(project.path(weights))
    plan, ran = project.rerun()
    assert reruns(plan) == {"base": ["params"], "probe": ["inputs"]}
    assert plan["base"]["details"] == [f"path: content of {given} changed"]
    assert ran == ["base", "probe"]
    # the same weights under another directory: the same key
    project.path("elsewhere").mkdir()
    project.path(given).rename(project.path("elsewhere") / given)
    project.edit("pipeline.yaml", f"{{path: {given}}}", f"{{path: elsewhere/{given}}}")
    assert_all_cached(project)


def test_files_of_a_model_directory_count_one_by_one(project):
    # the same bytes in the same order, laid out in other files: another model
    config, weights = (
        project.path("model/config.json"),
        project.path("model/model.safetensors"),
    )
    config.write_bytes(config.read_bytes() + b"model.safetensors\0" + weights.read_bytes())
    weights.unlink()
    plan, ran = project.rerun()
    assert reruns(plan) == {"base": ["params"], "probe": ["inputs"]}
    assert ran == ["base", "probe"]


def test_the_builtin_hf_model_stage_is_keyed_by_the_content_of_the_weights(project):
    # hf_model itself would load the weights with transformers: only its keys are compared
    spec = write(
        project.path("hf.yaml"),
        """
        name: hf
        stages:
          dir:
            op: hf_model
            params: {path: model}
          gguf:
            op: hf_model
            params: {path: tiny.gguf}
        """,
    )

    def keys():
        out = cli("plan", spec, "--json", cwd=project.root)
        assert out.returncode == 0, out.stderr
        return {e["node"]: e["key"] for e in json.loads(out.stdout)}

    before = keys()
    _flip_keeping_size_and_mtime(project.path("model/model.safetensors"))
    after_dir = keys()
    assert after_dir["dir"] != before["dir"] and after_dir["gguf"] == before["gguf"]
    _flip_keeping_size_and_mtime(project.path("tiny.gguf"))
    assert keys()["gguf"] != before["gguf"]
    _flip_keeping_size_and_mtime(project.path("model/model.safetensors"))  # flipped back
    assert keys()["dir"] == before["dir"]


# --- changes that must not re-run anything ----------------------------------------------


def test_comments_in_the_operator_and_its_helper_do_not_rerun(project):
    project.edit(
        "proj/loud.py",
        "class Shout(Operator):",
        "# shouts every word\nclass Shout(Operator):  # the operator",
    )
    project.edit(
        "proj/loud.py",
        "        record(ctx)\n",
        "        record(ctx)\n        # one word at a time\n",
    )
    project.edit("proj/text.py", "def shout", "# helper\ndef shout")
    assert_all_cached(project)


def test_reformatting_the_operator_source_does_not_rerun(project):
    loud = project.path("proj/loud.py")
    text = loud.read_text()
    text = text.replace("    ", "  ")  # two-space indentation
    text = text.replace('"!"', "'!'")  # other quotes
    text = text.replace(
        '[shout(w, ctx.params.suffix * ctx.params.times) for w in table["word"]]',
        "[\n      shout(\n        w,\n        ctx.params.suffix\n"
        "        * ctx.params.times,\n      )\n      for w in table['word']\n    ]",
    )
    text = text.replace("\n\n\nclass", "\n\n\n\n\nclass")
    loud.write_text(text)
    assert "  words = [\n" in loud.read_text()
    assert_all_cached(project)


def test_docstrings_do_not_rerun(project):
    project.edit("proj/loud.py", "import polars", '"""Shouting."""\n\nimport polars')
    project.edit(
        "proj/loud.py",
        "class Shout(Operator):\n",
        'class Shout(Operator):\n    """Upper-cases every word."""\n\n',
    )
    project.edit("proj/loud.py", "table):\n", 'table):\n        """One word at a time."""\n')
    project.edit("proj/text.py", "suffix):\n", 'suffix):\n    """The word, louder."""\n')
    assert_all_cached(project)
    project.edit("proj/loud.py", '"""Upper-cases every word."""', '"""Upper-cases words."""')
    assert_all_cached(project)


def test_the_order_of_params_in_the_spec_does_not_rerun(project):
    project.edit(
        "pipeline.yaml",
        'params: {suffix: "!", times: 1}',
        'params: {times: 1, suffix: "!"}',
    )
    project.edit(
        "pipeline.yaml",
        "params: {file: words.txt, repeat: 2}",
        "params: {repeat: 2, file: words.txt}",
    )
    assert_all_cached(project)


def test_formatting_and_comments_in_the_spec_do_not_rerun(project):
    project.spec.write_text(
        textwrap.dedent("""\
        # the same pipeline, written in block style, with comments
        name: "invalidation"
        stages:
            words:              # the input words
                op: 'proj.source:Words'
                params:
                    file: "words.txt"
                    repeat: 2
            loud: {op: proj.loud:Shout, inputs: {table: words}, params: {suffix: '!', times: 1},
                   resources: {cpus: 1}}

            base:
                op: proj.source:Base
                params:
                    path: model    # a model directory
            probe:
                op: proj.probe:Probe
                inputs:
                    table: loud
                    model: base
        """)
    )
    assert_all_cached(project)


@pytest.mark.parametrize(
    "resources",
    ["{cpus: 2}", "{memory: 2GB}", "{cpus: 0.5, memory: 512MB, gpus: 0}"],
    ids=["cpus", "memory", "several"],
)
def test_a_changed_resource_setting_does_not_rerun(project, resources):
    project.edit("pipeline.yaml", "resources: {cpus: 1}", f"resources: {resources}")
    assert_all_cached(project)
