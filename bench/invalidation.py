"""The edit matrix: for every top-level definition of `operators/`, a code-changing edit,
and which stages of the default pipeline (CI size) `stardag plan` then re-runs for code.

Compared for the module-level fingerprint stardag used before (a stage's key covered its
operator's module and every module of the package it imports, whole) and for the code
identity it uses now (the definitions its operator reaches). The reference is what each
stage really executed: the pipeline runs once in this process under a profiler that records,
per stage, every function of `operators/` that ran and every module-level name that code
looked up. A stage that executed or read a definition and does not re-run when it changes is
a *missed* re-run (stale results: must be 0); a stage that re-runs for a definition it never
touched is a *false* re-run (work wasted; a static analysis has some: it cannot know which
branch a param will pick).

The edit appends `NAME = NAME` at the end of the definition's module: the module's AST
changes, its behaviour does not. A new unused definition is the edit that must re-run
nothing. Runs on a copy of `operators/`; the checkout is never touched.

    python bench/invalidation.py [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "pipelines" / "star.yaml"
# The default pipeline at sizes CI affords: SMALL end to end on Ray
# (tests/test_pipeline_e2e.py, bench/cluster.py); CI with the trainer in-process and fewer
# base steps (tests/test_kill_loop.py and this edit matrix).
SMALL = [
    "stages.problems.params.digits=[1, 2]",
    "stages.problems.params.train_per_digit=8",
    "stages.problems.params.heldout_per_digit=8",
    "stages.base.params.steps=400",
    "stages.base.params.n_layer=1",
    "stages.base.params.n_embd=64",
    "stages.base.params.corpus_size=5000",
    "stages.base.params.mix={1: 0.5, 2: 0.5}",
    "loop.iterations=2",
    "loop.stages.train.params.steps=4",
]
CI = [
    *SMALL,
    "stages.base.params.steps=200",
    "stages.base.params.checkpoint_every=50",
    "loop.stages.train.params.trainer=torch",
]


# --- the fingerprint of before: modules, whole -----------------------------------------

_DUMPS: dict = {}


def module_fingerprint(module_name: str) -> str:
    """The operator's module and every module of the same top-level package it imports,
    transitively, each normalized (stardag's code key until the code identity)."""
    from stardag.code_identity import _imports, _strip_docstrings

    top = module_name.split(".")[0]
    parts: dict[str, str] = {}
    stack = [module_name]
    while stack:
        name = stack.pop()
        if name in parts:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            continue
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        source = Path(spec.origin).read_bytes()
        if (spec.origin, source) not in _DUMPS:
            tree = ast.parse(source)
            _strip_docstrings(tree)
            _DUMPS[spec.origin, source] = (
                ast.dump(tree, annotate_fields=False, include_attributes=False),
                _imports(tree, name, spec.submodule_search_locations is not None),
            )
        parts[name], (bound, _, star) = _DUMPS[spec.origin, source]
        targets = [v for vs in bound.values() for v in vs]
        deps = (
            {v[1] for v in targets}
            | {f"{v[1]}.{v[2]}" for v in targets if v[0] == "from"}
            | set(star)
        )
        stack += [d for d in deps if d.split(".")[0] == top and d not in parts]
    digest = hashlib.sha256()
    for name in sorted(parts):
        digest.update(name.encode() + b"\0" + parts[name].encode() + b"\0")
    return digest.hexdigest()[:32]


# --- what each stage really touched ---------------------------------------------------


def top_level_defs(path: Path) -> dict[int, set[str]]:
    """Line -> names bound by the top-level statement covering that line."""
    from stardag.code_identity import _bound_names

    lines: dict[int, set[str]] = {}
    for stmt in ast.parse(path.read_bytes()).body:
        names = _bound_names(stmt)
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        for line in range(first, (stmt.end_lineno or stmt.lineno) + 1):
            lines[line] = names
    return lines


def traced_run(ops_dir: Path, store: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Run the CI-size pipeline in this process; per node, the definitions (`file:name`) of
    `operators/` that it touched: whose code ran, whose name the running code looked up, and
    what the class bodies of the classes it touched looked up when they were defined (a
    port's schema constant, a Params base class). Also: node -> its operator's module.
    Memoized functions are cleared before each stage, so that a cache hit does not hide a
    call."""
    import stardag
    import stardag.executor as ex

    prefix = str(ops_dir) + os.sep
    files: dict[str, dict[int, set[str]]] = {}
    seen_code: set = set()
    current: list[str] = []
    touched: dict[str, set[str]] = {}
    class_reads: dict[str, set[str]] = {}
    imports: dict[str, dict] = {}

    def rel(filename: str) -> str:
        return "operators/" + filename[len(prefix) :].replace(os.sep, "/")

    def defs_of(filename: str) -> dict[int, set[str]]:
        if filename not in files:
            files[filename] = top_level_defs(Path(filename))
        return files[filename]

    def imports_of(filename: str) -> dict:
        if filename not in imports:
            from stardag.code_identity import _imports

            name = "operators." + Path(filename).stem
            imports[filename] = _imports(ast.parse(Path(filename).read_bytes()), name, False)[0]
        return imports[filename]

    def defines(filename: str, name: str) -> bool:
        return any(name in names for names in defs_of(filename).values())

    def reads(frame) -> set[str]:
        """Module-level names of `operators/` that this code looks up: global names (read
        from the bytecode, so that `model.generate` is not taken for `hf_common.generate`), and
        attributes read from a project module bound to a global name (`addition.scratchpad`)."""
        code, g = frame.f_code, frame.f_globals
        out = set()
        names, attrs = global_loads(code)
        imported = imports_of(code.co_filename)
        for name in names:
            if defines(code.co_filename, name):
                out.add(f"{rel(code.co_filename)}:{name}")
            for bound in imported.get(name, ()):
                if bound[0] == "from" and bound[1].startswith("operators"):
                    source = ops_dir / (bound[1].partition(".")[2].replace(".", os.sep) + ".py")
                    if source.exists() and defines(str(source), bound[2]):
                        out.add(f"{rel(str(source))}:{bound[2]}")
            value = g.get(name)
            vfile = getattr(getattr(value, "__code__", None), "co_filename", None) or getattr(
                sys.modules.get(getattr(value, "__module__", ""), None), "__file__", None
            )
            if vfile and str(vfile).startswith(prefix) and defines(vfile, name):
                out.add(f"{rel(vfile)}:{name}")
        for owner, attr in attrs:
            module = g.get(owner)
            mfile = str(getattr(module, "__file__", "") or "")
            if isinstance(module, type(os)) and mfile.startswith(prefix) and defines(mfile, attr):
                out.add(f"{rel(mfile)}:{attr}")
        return out

    def profiler(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        if not code.co_filename.startswith(prefix):
            return
        key = (current[-1] if current else None, code)
        if key in seen_code:
            return
        seen_code.add(key)
        names = defs_of(code.co_filename).get(code.co_firstlineno, set())
        if not current:  # importing: a class body runs
            if code.co_name in names:
                class_reads.setdefault(f"{rel(code.co_filename)}:{code.co_name}", set()).update(
                    reads(frame)
                )
            return
        out = touched.setdefault(current[-1], set())
        out.update(f"{rel(code.co_filename)}:{n}" for n in names)
        out.update(reads(frame))

    real = ex.run_stage

    def run_stage(payload):
        for name, module in list(sys.modules.items()):
            if name.startswith("operators"):
                for value in list(vars(module).values()):
                    if callable(getattr(value, "cache_clear", None)):
                        value.cache_clear()
        current.append(payload.node)
        try:
            return real(payload)
        finally:
            current.pop()

    ex.run_stage = run_stage
    sys.setprofile(profiler)
    try:
        result = stardag.run(SPEC, overrides=CI, store=str(store), executor="local", progress=False)
    finally:
        sys.setprofile(None)
        ex.run_stage = real
    graph = stardag.api.load(SPEC, CI, str(store)).graph
    ops = {n.id: n.op.__module__ for n in graph.nodes.values()}
    assert set(result.computed()) == set(ops), "the traced run must compute every stage"
    for defs in touched.values():  # what the class bodies of touched classes read
        todo = list(defs)
        while todo:
            for d in class_reads.get(todo.pop(), ()):
                if d not in defs:
                    defs.add(d)
                    todo.append(d)
    return touched, ops


def global_loads(code) -> tuple[set[str], set[tuple[str, str]]]:
    """The global names a code object loads, and (global name, attribute) pairs read off
    them, from its bytecode."""
    import dis

    names: set[str] = set()
    attrs: set[tuple[str, str]] = set()
    prev = None
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            names.add(ins.argval)
            prev = ins.argval
            continue
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and prev is not None:
            attrs.add((prev, ins.argval))
        prev = None
    return names, attrs


# --- the matrix -----------------------------------------------------------------------


def definitions(ops_dir: Path) -> list[tuple[Path, str]]:
    from stardag.code_identity import _bound_names

    out = []
    for path in sorted(ops_dir.glob("*.py")):
        for stmt in ast.parse(path.read_bytes()).body:
            for name in sorted(_bound_names(stmt)):
                out.append((path, name))
    return out


def code_reruns(store: Path) -> set[str]:
    import stardag

    return {
        e.node
        for e in stardag.plan(SPEC, overrides=CI, store=str(store))
        if e.status == "run" and "code" in e.causes
    }


def matrix(ops_dir: Path, store: Path) -> dict:
    touched, ops = traced_run(ops_dir, store)
    assert code_reruns(store) == set(), "the run left stages to run"
    before = {m: module_fingerprint(m) for m in set(ops.values())}
    rows = []
    t0 = time.perf_counter()
    edits = definitions(ops_dir) + [(p, None) for p in sorted(ops_dir.glob("*.py"))]
    for path, name in edits:
        original = path.read_bytes()
        label = f"operators/{path.name}:{name}" if name else f"operators/{path.name}:<new unused>"
        extra = (
            f"\n{name} = {name}\n" if name else "\n\ndef _unused_new_definition():\n    return 1\n"
        )
        path.write_bytes(original + extra.encode())
        try:
            new = code_reruns(store)
            old = {n for n, m in ops.items() if module_fingerprint(m) != before[m]}
        finally:
            path.write_bytes(original)
        used = {n for n, defs in touched.items() if name and label in defs}
        rows.append(
            {
                "definition": label,
                "used_by": sorted(used),
                "module_level": sorted(old),
                "definition_level": sorted(new),
            }
        )
    seconds = time.perf_counter() - t0

    def score(kind: str) -> dict:
        return {
            "reruns": sum(len(r[kind]) for r in rows),
            "false": sum(len(set(r[kind]) - set(r["used_by"])) for r in rows),
            "missed": sum(len(set(r["used_by"]) - set(r[kind])) for r in rows),
            "unused_definition_reruns": sum(
                len(r[kind]) for r in rows if r["definition"].endswith("<new unused>")
            ),
        }

    return {
        "stages": len(ops),
        "definitions_edited": len(edits),
        "plan_seconds": seconds,
        "module_level": score("module_level"),
        "definition_level": score("definition_level"),
        "rows": rows,
    }


def _child(args):
    out = matrix(Path(args.ops_dir), Path(args.store))
    Path(args.out).write_text(json.dumps(out))


def run_matrix(work: Path) -> dict:
    """The matrix in a fresh process whose `operators` is a copy under `work`."""
    shutil.copytree(
        ROOT / "operators", work / "operators", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")]),
        "STARDAG_CACHE_DIR": str(work / "cache"),
    }
    out = work / "matrix.json"
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--ops-dir",
            str(work / "operators"),
            "--store",
            str(work / "store"),
            "--out",
            str(out),
        ],
        env=env,
        check=True,
    )
    return json.loads(out.read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ops-dir", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)
    t0 = time.perf_counter()
    res = run_matrix(Path(tempfile.mkdtemp(prefix="stardag-invalidation-")))
    res["machine"] = f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}"
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    print(
        f"{res['definitions_edited']} edits ({res['definitions_edited'] - 1 - len(list((ROOT / 'operators').glob('*.py'))) + 1} "
        f"definitions + one new unused definition per module), {res['stages']} stages"
    )
    print(f"{'':<18}{'re-runs':>9}{'false':>8}{'missed':>8}{'unused def':>12}")
    for kind in ("module_level", "definition_level"):
        s = res[kind]
        print(
            f"{kind:<18}{s['reruns']:>9}{s['false']:>8}{s['missed']:>8}"
            f"{s['unused_definition_reruns']:>12}"
        )
    false_rows = [
        (r["definition"], sorted(set(r["definition_level"]) - set(r["used_by"])))
        for r in res["rows"]
        if set(r["definition_level"]) - set(r["used_by"])
    ]
    if false_rows:
        print("false re-runs of the code identity (definition: stages):")
        for d, nodes in false_rows:
            print(f"  {d}: {', '.join(nodes)}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
