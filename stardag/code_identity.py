"""A stage's code identity: the definitions its operator can reach, and nothing else.

Starting from the operator class, every name its code uses is looked up where Python would
find it: a function, class or module-level value of the same module, or an import, followed
into the imported module (attribute access on modules too: `hf.load` is `load` of
`operators/hf_common.py`). Each definition counts as the normalized AST of the statements that bind
its name (docstrings, comments and formatting do not count); a class counts whole, with its
methods, bases and decorators. Installed third-party packages and the standard library are
not followed: the versions of the third-party ones reached are recorded instead. The engine
(`stardag`) is not followed either: its changes are covered by the store's format version.

Soundness first: where the analysis cannot tell what a piece of code uses, it takes more,
never less.
  - A module's own top-level statements that bind no name (`register(Task(...))`) run when
    it is imported, so they count for every user of the module, with what they reference,
    and so do those of the project modules it imports at top level.
  - `globals()`, `vars()`, `locals()`, `eval` and `exec` take the whole module; `getattr` with
    a computed name on a module takes that module whole; `importlib.import_module` or
    `__import__` with a computed name takes every module of the package.
  - A module used as a value (passed, stored, returned) counts whole, and so does a name
    looked up in a project module that does not define it (a module `__getattr__`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import xxhash

EFFECTS = "<module-level statements>"
_DYNAMIC_SCOPE = {"globals", "vars", "locals", "eval", "exec"}


@dataclass(frozen=True)
class CodeIdentity:
    """What a stage's code key is made of: one digest over `definitions` (each reached
    definition, shown as `path.py:name`, with the hash of its normalized source), and the
    versions of the third-party libraries the reached code imports."""

    digest: str
    definitions: dict[str, str] = field(hash=False)
    libraries: dict[str, str] = field(hash=False)


# --- one module, parsed ----------------------------------------------------------------


@dataclass
class _Module:
    name: str
    display: str  # path relative to its import root, e.g. operators/tasks.py
    is_package: bool
    defs: dict[str, str]  # name -> hash of the statements binding it
    refs: dict[str, set[tuple]]  # name -> the names it uses (dotted chains)
    effects: str  # hash of the statements binding nothing
    effect_refs: set[tuple]
    imports: dict[str, list[tuple]]  # bound name -> [("module", M) | ("from", M, attr)]
    top_imports: set[str]  # modules imported at top level (they run on import)
    star: list[str]  # modules of `from M import *`
    dynamic: set[str]  # defs (or EFFECTS) that take the whole module
    dyn_getattr: dict[str, set[tuple]]  # def -> chains passed to getattr with a computed name
    dyn_import: set[str]  # defs importing a computed module name
    const_imports: dict[str, set[str]]  # def -> modules named by import_module("...")


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]


def _hash(stmts: Iterable[ast.AST]) -> str:
    h = hashlib.sha256()
    for s in stmts:
        h.update(ast.dump(s, annotate_fields=False, include_attributes=False).encode() + b"\0")
    return h.hexdigest()[:16]


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds in the module (not inside functions or classes
    it defines)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    names: set[str] = set()

    def targets(t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            names.add(t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                targets(e)
        elif isinstance(t, ast.Starred):
            targets(t.value)

    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Assign,)):
            for t in node.targets:
                targets(t)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets(node.target)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            targets(node.target)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    targets(item.optional_vars)
        elif isinstance(node, ast.NamedExpr):
            targets(node.target)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            continue  # bindings to other modules: followed, not hashed
        stack.extend(ast.iter_child_nodes(node))
    return names


class _Uses(ast.NodeVisitor):
    """The names a piece of code uses, as dotted chains (`hf.load` -> ("hf", "load")), and
    the dynamic features that make it take more."""

    def __init__(self) -> None:
        self.chains: set[tuple] = set()
        self.dynamic = False
        self.getattr_chains: set[tuple] = set()
        self.dyn_import = False
        self.const_imports: set[str] = set()

    def _chain(self, node: ast.AST) -> tuple | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            return (node.id, *reversed(parts))
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = self._chain(node)
        if chain is not None:
            self.chains.add(chain)
        else:
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self.chains.add((node.id,))

    def _annotation(self, node: ast.AST | None) -> None:
        # a string annotation ("Task") names things too (pydantic and dataclasses read them)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                self.visit(ast.parse(node.value, mode="eval"))
            except SyntaxError:
                pass

    def visit_arg(self, node: ast.arg) -> None:
        self._annotation(node.annotation)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._annotation(node.returns)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        chain = self._chain(node.func)
        if chain and len(chain) == 1 and chain[0] in _DYNAMIC_SCOPE:
            self.dynamic = True
        if (
            chain == ("getattr",)
            and len(node.args) >= 2
            and not isinstance(node.args[1], ast.Constant)
        ):
            target = self._chain(node.args[0])
            if target:
                self.getattr_chains.add(target)
        if chain and chain[-1] in ("import_module", "__import__"):
            arg = node.args[0] if node.args else None
            if (
                isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and not arg.value.startswith(".")
            ):
                self.const_imports.add(arg.value)
            else:
                self.dyn_import = True
        self.generic_visit(node)


def _imports(tree: ast.AST, module: str, is_package: bool) -> tuple[dict, set, list]:
    """Every import anywhere in the module (a function's own imports included: treating them
    as the module's takes more, never less)."""
    bound: dict[str, list[tuple]] = {}
    top: set[str] = set()

    def bind(name: str, target: tuple) -> None:
        # one name may be bound by several imports (in different functions or branches):
        # every one of them counts
        if target not in bound.setdefault(name, []):
            bound[name].append(target)

    star: list[str] = []
    package = module if is_package else module.rpartition(".")[0]
    top_level = set(map(id, getattr(tree, "body", [])))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    bind(a.asname, ("module", a.name))
                else:
                    head = a.name.split(".")[0]
                    bind(head, ("module", head))
                if id(node) in top_level:
                    top.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            for a in node.names:
                if a.name == "*":
                    star.append(base)
                else:
                    bind(a.asname or a.name, ("from", base, a.name))
            if id(node) in top_level:
                top.add(base)
                top.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return bound, top, star


def _parse(name: str, path: str, display: str, is_package: bool, source: bytes) -> _Module:
    tree = ast.parse(source, filename=path)
    _strip_docstrings(tree)
    imports, top_imports, star = _imports(tree, name, is_package)
    binding: dict[str, list[ast.stmt]] = {}
    effects: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if _is_main_guard(stmt):
            continue  # does not run on import
        names = _bound_names(stmt)
        if not names:
            # a bare constant or `pass` (what an emptied docstring-only body becomes) does nothing
            if not (
                isinstance(stmt, ast.Pass)
                or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
            ):
                effects.append(stmt)
            continue
        for n in names:
            binding.setdefault(n, []).append(stmt)
    defs, refs, dynamic, dyn_getattr, dyn_import, const_imports = {}, {}, set(), {}, set(), {}

    def uses(label: str, stmts: list[ast.stmt]) -> set[tuple]:
        u = _Uses()
        for s in stmts:
            u.visit(s)
        if u.dynamic:
            dynamic.add(label)
        if u.getattr_chains:
            dyn_getattr[label] = u.getattr_chains
        if u.dyn_import:
            dyn_import.add(label)
        if u.const_imports:
            const_imports[label] = u.const_imports
        return u.chains

    for n, stmts in binding.items():
        defs[n] = _hash(stmts)
        refs[n] = uses(n, stmts)
    effect_refs = uses(EFFECTS, effects)
    return _Module(
        name,
        display,
        is_package,
        defs,
        refs,
        _hash(effects),
        effect_refs,
        imports,
        top_imports,
        star,
        dynamic,
        dyn_getattr,
        dyn_import,
        const_imports,
    )


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    parts = [stmt.test.left, *stmt.test.comparators]
    return any(isinstance(p, ast.Name) and p.id == "__name__" for p in parts) and any(
        isinstance(p, ast.Constant) and p.value == "__main__" for p in parts
    )


# --- finding modules --------------------------------------------------------------------

_PARSED: dict[tuple[str, str], _Module] = {}  # (path, xxh3 of its bytes) -> parsed
_LOCATIONS: dict[str, tuple[str, bool] | None] = {}  # module -> (source path, is package)
_KINDS: dict[str, str] = {}
_VERSIONS: dict[str, str] = {}
# import names whose distribution has another name (the general lookup reads every installed
# package's metadata: a quarter of a second)
_DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "PIL": "Pillow",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "google": "protobuf",
    "attr": "attrs",
}


def _location(name: str) -> tuple[str, bool] | None:
    """The source file of a module, without running it where that can be helped (a
    submodule's parent packages are imported to find it, as Python would)."""
    if name in _LOCATIONS:
        return _LOCATIONS[name]
    found = None
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin and origin.endswith(".py"):
        found = (origin, hasattr(module, "__path__"))
    else:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            spec = None
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            found = (spec.origin, spec.submodule_search_locations is not None)
    if found is not None:  # an absent module may appear later (a file written meanwhile)
        _LOCATIONS[name] = found
    return found


def _display(name: str, path: str, is_package: bool) -> str:
    rel = name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
    return rel if path.replace(os.sep, "/").endswith(rel) else path


def kind(name: str, own: str | None = None) -> str:
    """stdlib, engine, library (an installed third-party package) or project."""
    top = name.partition(".")[0]
    if top == own:
        return "project"
    if top in _KINDS:
        return _KINDS[top]
    if top in sys.stdlib_module_names or top in ("__future__", "__main__"):
        k = "stdlib"
    elif top == "stardag":
        k = "engine"
    else:
        loc = _location(top)
        if loc is None:
            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                spec = None
            k = "library" if spec is not None else "missing"
        else:
            parts = set(loc[0].replace(os.sep, "/").split("/"))
            k = "library" if parts & {"site-packages", "dist-packages"} else "project"
    if k != "missing":
        _KINDS[top] = k
    return k


def library_version(top: str) -> str:
    if top not in _VERSIONS:
        from importlib import metadata

        try:
            v = metadata.version(_DISTRIBUTIONS.get(top, top))
        except metadata.PackageNotFoundError:
            dists = metadata.packages_distributions().get(top) or []
            try:
                v = metadata.version(dists[0]) if dists else "?"
            except metadata.PackageNotFoundError:
                v = "?"
        _VERSIONS[top] = v
    return _VERSIONS[top]


def _module(name: str) -> _Module | None:
    loc = _location(name)
    if loc is None:
        return None
    path, is_package = loc
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError:
        return None
    ident = (path, xxhash.xxh3_128_hexdigest(source + name.encode()))
    parsed = _PARSED.get(ident)
    if parsed is None:
        parsed = _PARSED[ident] = _cached_parse(ident[1], name, path, is_package, source)
    return parsed


def _cache_dir() -> str:
    return os.environ.get("STARDAG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "stardag",
    )


_CACHE_FORMAT = 3


def _cached_parse(digest: str, name: str, path: str, is_package: bool, source: bytes) -> _Module:
    """Parsing is most of the cost of planning a cached pipeline: the parsed form of a file
    is kept on disk under the hash of its bytes (and module name), so it is exact."""
    import json

    cache = os.path.join(_cache_dir(), "code", f"{digest}.json")
    display = _display(name, path, is_package)
    try:
        with open(cache, encoding="utf-8") as f:
            d = json.load(f)
        if d.pop("format") == _CACHE_FORMAT:
            d["refs"] = {k: set(map(tuple, v)) for k, v in d["refs"].items()}
            d["effect_refs"] = set(map(tuple, d["effect_refs"]))
            d["imports"] = {k: [tuple(b) for b in v] for k, v in d["imports"].items()}
            d["top_imports"], d["dynamic"] = set(d["top_imports"]), set(d["dynamic"])
            d["dyn_getattr"] = {k: set(map(tuple, v)) for k, v in d["dyn_getattr"].items()}
            d["dyn_import"] = set(d["dyn_import"])
            d["const_imports"] = {k: set(v) for k, v in d["const_imports"].items()}
            return _Module(**{**d, "display": display})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # absent or unreadable: parse again
    m = _parse(name, path, display, is_package, source)
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        d = {
            k: (
                sorted(map(list, v))
                if isinstance(v, set) and v and isinstance(next(iter(v)), tuple)
                else sorted(v)
                if isinstance(v, set)
                else v
            )
            for k, v in vars(m).items()
        }
        d["refs"] = {k: sorted(map(list, v)) for k, v in m.refs.items()}
        d["dyn_getattr"] = {k: sorted(map(list, v)) for k, v in m.dyn_getattr.items()}
        d["const_imports"] = {k: sorted(v) for k, v in m.const_imports.items()}
        d["format"] = _CACHE_FORMAT
        tmp = f"{cache}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(d, f)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home: parse every time
    return m


def _package_modules(top: str) -> list[str]:
    """Every module of a package (or the one module), found on disk without importing them."""
    import pkgutil

    loc = _location(top)
    if loc is None or not loc[1]:
        return [top]
    return [top] + [i.name for i in pkgutil.walk_packages([os.path.dirname(loc[0])], f"{top}.")]


def _submodule(parent: str, attr: str) -> str | None:
    name = f"{parent}.{attr}"
    return name if _location(name) is not None else None


# --- the closure ------------------------------------------------------------------------


class _Closure:
    def __init__(self, own: str) -> None:
        self.own = own  # the operator's top-level package: project code even if installed
        self.defs: dict[str, str] = {}
        self.libraries: set[str] = set()
        self.imported: set[str] = set()  # project modules that run when the operator loads
        self.done: set[tuple] = set()
        self.todo: list[tuple] = []

    def add(self, *item: str) -> None:
        if item not in self.done:
            self.done.add(item)
            self.todo.append(item)

    def run(self) -> None:
        while self.todo:
            item = self.todo.pop()
            getattr(self, f"_{item[0]}")(*item[1:])

    def _kind(self, module: str) -> str:
        return kind(module, self.own)

    def loads(self, module: str) -> None:
        """`module` runs on import, and with it its packages and its top-level imports."""
        if module in self.imported or self._kind(module) != "project":
            return
        m = _module(module)
        if m is None:
            return
        self.imported.add(module)
        parent = module.rpartition(".")[0]
        if parent:
            self.loads(parent)
        for name in m.top_imports:
            self.loads(name)

    def _def(self, module: str, name: str) -> None:
        m = _module(module)
        if m is None or name not in m.defs:
            return
        self.defs[f"{m.display}:{name}"] = m.defs[name]
        self.loads(module)
        self._follow(m, name, m.refs[name])

    def _effects(self, module: str) -> None:
        m = _module(module)
        if m is None:
            return
        self.loads(module)
        if m.effects != _NO_EFFECTS:
            self.defs[f"{m.display}:{EFFECTS}"] = m.effects
        self._follow(m, EFFECTS, m.effect_refs)

    def _whole(self, module: str) -> None:
        m = _module(module)
        if m is None:
            return
        for name in m.defs:
            self.add("def", module, name)
        self.add("effects", module)
        for star in m.star:
            self.add("whole", star)
        for name in m.imports:  # any name of the module can be looked up, imported ones too
            self._resolve_chain(m, (name,), value=True)

    def _follow(self, m: _Module, label: str, chains: set[tuple]) -> None:
        if label in m.dynamic:
            self.add("whole", m.name)
        for chain in m.dyn_getattr.get(label, ()):
            target = self._resolve_chain(m, chain, value=False)
            if target and target[0] == "module":
                self.add("whole", target[1])
        if label in m.dyn_import:
            for name in _package_modules(m.name.partition(".")[0]):
                self.add("whole", name)
        for name in m.const_imports.get(label, ()):
            self._resolve_module(name, (), value=True)
        for chain in chains:
            self._resolve_chain(m, chain, value=True)

    def _resolve_chain(self, m: _Module, chain: tuple, value: bool) -> tuple | None:
        """Follow every binding of the chain's head: a definition of the module, and each
        import of that name (a builtin, a local name or an attribute of something else
        resolves to nothing)."""
        head, rest = chain[0], chain[1:]
        found = []
        if head in m.defs:
            self.add("def", m.name, head)
            found.append(("def", m.name, head))
        for bound in m.imports.get(head, ()):
            got = self._resolve_binding(bound, rest, value)
            if got:
                found.append(got)
        return next((f for f in found if f[0] == "module"), found[0] if found else None)

    def _resolve_binding(self, bound: tuple, rest: tuple, value: bool) -> tuple | None:
        if bound[0] == "module":
            return self._resolve_module(bound[1], rest, value)
        _, base, attr = bound
        sub = _submodule(base, attr) if self._kind(base) == "project" else None
        if sub is not None:
            return self._resolve_module(sub, rest, value)
        return self._resolve_name(base, attr)

    def _outside(self, module: str) -> tuple | None:
        """Not project code: a library (its version recorded), the engine or the standard
        library (nothing to follow)."""
        k = self._kind(module)
        if k == "library":
            self.libraries.add(module.partition(".")[0])
            return ("library", module)
        return None if k == "project" else ("outside", module)

    def _resolve_module(self, module: str, rest: tuple, value: bool) -> tuple | None:
        if self._outside(module):
            return self._outside(module)
        # `import a.b` then `a.b.c`: walk the attributes while they name modules
        while rest and _submodule(module, rest[0]) is not None:
            module, rest = f"{module}.{rest[0]}", rest[1:]
        self.loads(module)
        if not rest:
            if value:  # the module itself is used as a value: all of it counts
                self.add("whole", module)
            return ("module", module)
        return self._resolve_name(module, rest[0])

    def _resolve_name(self, module: str, name: str) -> tuple | None:
        if self._outside(module):
            return self._outside(module)
        m = _module(module)
        if m is None:
            return None
        self.loads(module)
        if name in m.defs or name in m.imports:  # defined here, or re-exported
            return self._resolve_chain(m, (name,), value=True)
        sub = _submodule(module, name)
        if sub is not None:
            return self._resolve_module(sub, (), value=True)
        for star in m.star:
            found = self._resolve_name(star, name)
            if found:
                return found
        self.add("whole", module)  # defined some other way (a module __getattr__, setattr)
        return ("module", module)


_NO_EFFECTS = _hash([])


def _with_effects(closure: _Closure) -> None:
    """Add the module-level statements that can change what the reached code sees: those of
    every module that runs when the operator loads whose own reach (what they call, and what
    that touches) meets the reached code or its libraries, or that touch nothing of the
    project at all (`os.environ[...] = ...`). A registry filled by `register(...)` calls
    counts for the code that reads the registry, not for every importer of its module."""
    changed = True
    while changed:
        changed = False
        for module in sorted(closure.imported):
            if ("effects", module) in closure.done:
                continue
            m = _module(module)
            if m is None or m.effects == _NO_EFFECTS:
                continue
            probe = _Closure(closure.own)
            probe.add("effects", module)
            probe.run()
            reach = set(probe.defs) - {f"{m.display}:{EFFECTS}"}
            if (
                reach & set(closure.defs)
                or probe.libraries & closure.libraries
                or not (reach or probe.libraries)
            ):
                closure.add("effects", module)
                closure.run()
                changed = True


def code_identity(op: type) -> CodeIdentity:
    """The code identity of an operator class (see the module's docstring)."""
    return identity_of(op.__module__, op.__qualname__.split(".")[0])


def identity_of(module: str, qualname: str) -> CodeIdentity:
    """The code identity of the top-level definition `qualname` of `module`."""
    closure = _Closure(module.partition(".")[0])
    m = _module(module)
    if m is None or qualname not in m.defs:
        # no source to read (a class made at run time): only its name is known
        closure.defs[f"{module}:{qualname}"] = "no-source"
    else:
        closure.add("def", module, qualname)
        closure.run()
        _with_effects(closure)
    digest = hashlib.sha256()
    for name in sorted(closure.defs):
        digest.update(name.encode() + b"\0" + closure.defs[name].encode() + b"\0")
    libraries = {lib: library_version(lib) for lib in sorted(closure.libraries)}
    return CodeIdentity(digest.hexdigest()[:32], dict(sorted(closure.defs.items())), libraries)


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """What changed between two recorded definition maps, one line each."""
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            out.append(f"code: {name} added")
        elif name not in new:
            out.append(f"code: {name} removed")
        elif old[name] != new[name]:
            out.append(f"code: {name} changed")
    return out
