"""Tests that guard the project's structure (issue 13).

- No import cycles among the project's modules: every `import` in the syntax tree is an edge, function bodies
  included, so an import inside a function cannot hide a cycle; so is every `__import__(...)` and
  `importlib.import_module(...)` and `importlib.util.spec_from_file_location(...)` (a module loaded from its file,
  without its package's __init__) whose module names can be read off the code (`_dynamic_names`: a string
  literal, a loop over a literal tuple of names, an f-string over such a loop, a module-level dict of names),
  and a dynamic import of any other form fails the test, so that none goes unseen.
- No import cycles among the project's folders: each module collapsed to its folder (its package directory:
  bench.runner.lifecycle -> bench.runner, bench.cli -> bench), so that each folder is one layer that imports
  only from the layers below it.
- A function-local import of a project module is there only to defer a heavy or optional package (HEAVY:
  torch, gymnasium, pandas, ...) that the importing module does not load itself, and says which in a
  `# lazy: <package>, ...` comment (on its line, or heading its block of imports), which the test checks
  against what the imported module loads when imported. A function-local import of anything else is of such a
  package itself, and one the module does not load anyway.
- Light modules stay light: `bench.cli` loads no HEAVY package when imported, the config models no torch.
- No method name in `bench/` or `analysis/` outside the task and method registries: the harness and the
  analysis read what they need from the declared contract and from sweep files.
- No import cycle through bench.data and bench.tasks, nor through analysis, which names no method and
  no component either.
(The method contract: tests/contract/test_method_contract.py.)
"""
from __future__ import annotations

import ast
import dataclasses
import io
import itertools
import re
import tokenize
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("bench", "methods", "results", "analysis")
# The optional or heavy dependencies: a function-local import may defer one of these, and nothing else. (A bare
# GPU machine lacks gymnasium, MuJoCo, mink, robosuite, Minari, optuna, submitit and rliable; the others cost
# import time that `import bench.cli` should not pay: pydantic's config models take a few hundred ms to build.)
HEAVY = ("torch", "gymnasium", "gymnasium_robotics", "mujoco", "mink", "robosuite", "minari", "h5py", "optuna",
         "submitit", "matplotlib", "seaborn", "rliable", "pandas", "pyarrow", "scipy", "pydantic")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _strings(node: ast.AST) -> list[str] | None:
    """The strings of a literal tuple or list of string literals, else None."""
    if isinstance(node, (ast.Tuple, ast.List)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    return None


DYNAMIC_IMPORTS = ("__import__", "import_module", "spec_from_file_location")


def _is_dynamic_import(func: ast.AST) -> bool:
    return (isinstance(func, ast.Name) and func.id in DYNAMIC_IMPORTS) or \
        (isinstance(func, ast.Attribute) and func.attr in DYNAMIC_IMPORTS[1:])


def _runs_parents(func: ast.AST) -> bool:
    """Whether the import runs the imported module's parent packages first (a module loaded from its file with
    spec_from_file_location does not)."""
    return (func.id if isinstance(func, ast.Name) else func.attr) != "spec_from_file_location"


@dataclasses.dataclass
class Import:
    """One import in a module's tree: an `import`/`from` statement or a dynamic import call."""

    node: ast.AST
    local: bool  # inside a function body that the module does not call when imported
    modules: set[str]  # the project modules it names
    packages: set[str]  # the third-party (or standard) top-level packages it names
    followed: bool = True  # False: a dynamic import whose argument is none of the forms followed
    dotted: set[str] = dataclasses.field(default_factory=set)  # the third-party modules it names, in full
    optional: bool = False  # in a `try:` that catches ImportError: where the package is missing, it is not loaded
    runs_parents: bool = True  # False: a module loaded from its file, without its parent packages' __init__


def _dynamic_names(call: ast.Call, env: dict[str, list[str]], dicts: dict[str, list[str]]) -> list[str] | None:
    """The module names a dynamic import call can load, or None where its argument is none of the forms followed:
      - a string literal: `__import__("bench.sweep")`, `importlib.import_module("methods.modip")`;
      - a name bound by an enclosing `for` loop over a literal tuple or list of strings
        (`for mod in ("a.b", "a.c"): __import__(mod)`), or an f-string whose placeholders are such names
        (`for m in ("bc_dp", "modip"): import_module(f"methods.{m}")`): every element is an edge;
      - a subscript of a module-level dict literal of strings (`import_module(_EXPORTS[name])`, PEP 562 lazy
        exports): every value is an edge;
      - an f-string of a package's name and a dot, then one placeholder that is none of the above
        (`import_module(f"methods.{folder}")`, package discovery): it can load any direct child of that
        package, so every one is an edge (the name ends in "*" here; imports_of expands it); or such an f-string
        followed by a dotted suffix (`spec_from_file_location(f"methods.{folder}.config", path)`): every module of
        that name under a direct child of the package is an edge (the "*" stands for the child).
    Comprehensions, variables assigned otherwise and relative names are not followed."""

    def resolve(arg: ast.AST) -> list[str] | None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return [arg.value]
        if isinstance(arg, ast.Name):
            return env.get(arg.id)
        if isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name):
            return dicts.get(arg.value.id)
        if isinstance(arg, ast.JoinedStr):
            vals = arg.values
            if len(vals) in (2, 3) and isinstance(vals[0], ast.Constant) and str(vals[0].value).endswith(".") \
                    and isinstance(vals[1], ast.FormattedValue) and resolve(vals[1].value) is None \
                    and (len(vals) == 2 or (isinstance(vals[2], ast.Constant) and str(vals[2].value).startswith(".")
                                            and "*" not in str(vals[2].value))):
                return [str(vals[0].value) + "*" + (str(vals[2].value) if len(vals) == 3 else "")]
            parts: list[list[str]] = []
            for v in arg.values:
                if isinstance(v, ast.Constant):
                    parts.append([str(v.value)])
                elif isinstance(v, ast.FormattedValue) and v.conversion == -1 and v.format_spec is None \
                        and (r := resolve(v.value)) is not None:
                    parts.append(r)
                else:
                    return None
            return ["".join(p) for p in itertools.product(*parts)]
        return None

    names = resolve(call.args[0]) if call.args else None
    return None if names is None or any(n.startswith(".") for n in names) else names


def _matches(module: str, prefix: str, suffix: str) -> bool:
    """`module` is prefix + one name + suffix (a package's direct child, or the module `suffix` names under one)."""
    if len(module) <= len(prefix) + len(suffix) or not (module.startswith(prefix) and module.endswith(suffix)):
        return False
    return "." not in module[len(prefix): len(module) - len(suffix)]


def imports_of(tree: ast.AST, module: str, is_pkg: bool, known: set[str]) -> list[Import]:
    """Every import in `module`'s tree (TYPE_CHECKING blocks excepted), function bodies included."""
    dicts: dict[str, list[str]] = {}
    for node in getattr(tree, "body", ()):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Dict) and (vals := _strings(ast.Tuple(node.value.values))):
            dicts[node.targets[0].id] = vals
    out: list[Import] = []

    roots = set(PACKAGES) | {k.split(".")[0] for k in known}

    def split(names: list[str]) -> tuple[set[str], set[str], set[str]]:
        """(the project modules, the other top-level packages, the other modules in full) among `names`."""
        ours = {n for n in names if n.split(".")[0] in roots}
        return ours & known, {n.split(".")[0] for n in names if n not in ours}, set(names) - ours

    def visit(node: ast.AST, local: bool, env: dict[str, list[str]]) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, local, env)
            return
        if isinstance(node, ast.Import):
            mods, pkgs, dotted = split([a.name for a in node.names])
            out.append(Import(node, local, mods, pkgs, dotted=dotted))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            mods, pkgs, dotted = split([target])
            if target.split(".")[0] in roots:
                subs = {f"{target}.{a.name}" for a in node.names} & known
                mods = subs | ({target} & known if len(subs) < len(node.names) else set())
            out.append(Import(node, local, mods, pkgs, dotted=dotted))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            names = _dynamic_names(node, env, dicts)
            if names is not None:  # a package's discovery: any direct child of it (or a module under each)
                names = [k for n in names for k in ((n,) if "*" not in n else sorted(
                    m for m in known if _matches(m, *n.split("*"))))]
            mods, pkgs, dotted = split(names or [])
            fromlist = next((_strings(k.value) or [] for k in node.keywords if k.arg == "fromlist"), [])
            mods |= {f"{n}.{f}" for n in names or () for f in fromlist} & known
            out.append(Import(node, local, mods, pkgs, followed=names is not None, dotted=dotted,
                              runs_parents=_runs_parents(node.func)))
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and \
                (vals := _strings(node.iter)) is not None:
            for child in node.body:
                visit(child, local, {**env, node.target.id: vals})
            for child in node.orelse:
                visit(child, local, env)
            return
        # A function body runs when called, unless the module calls it while it is imported (e.g. for a base class).
        inner = local or isinstance(node, ast.Lambda) or \
            (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in called)
        for child in ast.iter_child_nodes(node):
            visit(child, inner, env)

    # Imports in a `try:` whose handler catches a failed import (ImportError, ModuleNotFoundError, Exception).
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                h.type is None or any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError",
                                                                           "Exception", "BaseException")
                                      for n in ast.walk(h.type)) for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    # The module's own functions that it calls at import time (module level or class bodies, not in functions).
    called: set[str] = set()
    stack = list(getattr(tree, "body", ()))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
        stack.extend(ast.iter_child_nodes(node))
    visit(tree, False, {})
    for i in out:
        i.optional = id(i.node) in guarded
    return out


def _imports(tree: ast.AST, module: str, is_pkg: bool, known: set[str]) -> set[str]:
    """The project modules `module` imports anywhere in its tree (TYPE_CHECKING blocks excepted), dynamic
    imports of the forms `_dynamic_names` follows included."""
    out = set().union(*(i.modules for i in imports_of(tree, module, is_pkg, known)))
    out.discard(module)
    return out


@dataclasses.dataclass
class Project:
    paths: dict[str, Path]
    imports: dict[str, list[Import]]

    @property
    def packages(self) -> set[str]:
        return {m for m, p in self.paths.items() if p.name == "__init__.py"}


def project() -> Project:
    paths = _modules()
    return Project(paths, {m: imports_of(ast.parse(p.read_text(), str(p)), m, p.name == "__init__.py", set(paths))
                           for m, p in paths.items()})


def import_graph(proj: Project | None = None) -> dict[str, set[str]]:
    proj = proj or project()
    return {m: set().union(*(i.modules for i in imps)) - {m} for m, imps in proj.imports.items()}


def folder_of(module: str, packages: set[str]) -> str:
    """A module's folder (its package directory): bench.runner.lifecycle -> bench.runner, bench.cli -> bench,
    bench.runner (bench/runner/__init__.py) -> bench.runner."""
    return module if module in packages else module.rpartition(".")[0]


def folder_graph(graph: dict[str, set[str]], packages: set[str]) -> dict[str, set[str]]:
    """The module graph with each module collapsed to its folder (edges within a folder dropped)."""
    out: dict[str, set[str]] = {}
    for m, deps in graph.items():
        f = folder_of(m, packages)
        out.setdefault(f, set()).update(folder_of(d, packages) for d in deps)
        out[f].discard(f)
    return out


def loaded_at_import(imports: dict[str, list[Import]], surely: bool = False,
                     alone: bool = False) -> dict[str, set[str]]:
    """Module -> the third-party packages importing it loads (its own module-level imports, those of the project
    modules they load, transitively, and of every package a module is in, whose __init__ runs first). `surely`:
    only what it loads on every machine (not the imports it tolerates failing). `alone`: what the module loads
    when it is loaded from its file (spec_from_file_location), without its own parent packages' __init__."""
    imports = {m: [i for i in imps if not (surely and i.optional)] for m, imps in imports.items()}
    known = set(imports)

    def parents(m: str) -> set[str]:
        return {".".join(m.split(".")[:k]) for k in range(1, m.count(".") + 1)} & known

    # An import runs the imported module's parent packages first, except a load from the file.
    normal = {m: set().union(*(i.modules for i in imps if not i.local and i.runs_parents)) & known
              for m, imps in imports.items()}
    from_file = {m: set().union(*(i.modules for i in imps if not i.local and not i.runs_parents)) & known
                 for m, imps in imports.items()}
    own = {m: set().union(*(i.packages for i in imps if not i.local)) for m, imps in imports.items()}
    by_itself, full = {m: set(v) for m, v in own.items()}, {m: set(v) for m, v in own.items()}
    changed = True
    while changed:
        changed = False
        for m in imports:
            new_alone = own[m].union(*(full[d] for d in normal[m]), *(by_itself[d] for d in from_file[m]))
            new_full = new_alone.union(*(full[p] for p in parents(m)))
            if new_alone != by_itself[m] or new_full != full[m]:
                by_itself[m], full[m], changed = new_alone, new_full, True
    return by_itself if alone else full


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root, deps in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(deps)))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _graph_of(sources: dict[str, str]) -> dict[str, set[str]]:
    """The import graph of synthetic modules (name -> source; a name ending in `.__init__` is a package)."""
    names = {m.removesuffix(".__init__"): m.endswith(".__init__") for m in sources}
    return {m: _imports(ast.parse(s), m.removesuffix(".__init__"), m.endswith(".__init__"), set(names))
            for m, s in sources.items()}


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function_body():
    a = ast.parse("def f():\n    from pkg.b import thing\n")
    b = ast.parse("import pkg.a\n")
    known = {"pkg.a", "pkg.b"}
    graph = {"pkg.a": _imports(a, "pkg.a", False, known), "pkg.b": _imports(b, "pkg.b", False, known)}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_the_cycle_finder_follows_dynamic_imports():
    graph = _graph_of({
        "pkg.a": "import importlib\ndef f():\n    return importlib.import_module('pkg.b')\n",
        "pkg.b": "def g():\n    for mod in ('pkg.c', 'pkg.d'):\n        __import__(mod, fromlist=['x'])\n",
        "pkg.c": "from importlib import import_module\n"
                 "def h():\n    for name in ['a', 'e']:\n        import_module(f'pkg.{name}')\n",
        "pkg.d": "import importlib\n_EXPORTS = {'thing': 'pkg.e.x'}\n"
                 "def __getattr__(name):\n    return importlib.import_module(_EXPORTS[name])\n",
        "pkg.e.__init__": "", "pkg.e.x": "",
    })
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c", "pkg.d"}, "pkg.c": {"pkg.a", "pkg.e"},
                     "pkg.d": {"pkg.e.x"}, "pkg.e.__init__": set(), "pkg.e.x": set()}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    # A form that is not followed is reported, so that no dynamic import goes unseen.
    tree = ast.parse("import importlib\nname = 'pkg.b'\nimportlib.import_module(name)\n"
                     "[__import__(m) for m in ('pkg.a',)]\n__import__('.b')\n")
    assert [i.followed for i in imports_of(tree, "pkg.a", False, {"pkg.a", "pkg.b"}) if i.packages != {"importlib"}] \
        == [False, False, False]


def test_a_module_loaded_from_its_file_is_an_edge_that_runs_no_parent_package():
    """`spec_from_file_location(f"pkg.{folder}.config", path)` (methods/catalog) loads pkg.<any child>.config,
    each without its package's __init__: an edge to each, which loads what the module loads, not its package."""
    sources = {
        "pkg": "", "pkg.m": "import torch\nfrom pkg.m.config import X\n", "pkg.m.config": "import pydantic\nX = 1\n",
        "pkg.n": "import torch\n", "pkg.n.config": "import pydantic\n", "pkg.n.other": "",
        "pkg.cat": ("import importlib.util\n\ndef load():\n    for folder in sorted(FOLDERS):\n"
                    "        importlib.util.spec_from_file_location(f'pkg.{folder}.config', folder)\n\n"
                    "FOLDERS = ['m', 'n']\nload()\n"),
    }
    packages = {"pkg", "pkg.m", "pkg.n", "pkg.cat"}
    known = set(sources)
    imports = {m: imports_of(ast.parse(src), m, m in packages, known) for m, src in sources.items()}
    (load,) = [i for i in imports["pkg.cat"] if i.modules]
    assert load.modules == {"pkg.m.config", "pkg.n.config"} and load.followed and not load.local
    assert not load.runs_parents
    loads = loaded_at_import(imports)
    assert loads["pkg.cat"] == {"importlib", "pydantic"}  # not torch: no method package's __init__ runs
    assert loads["pkg.m.config"] == {"pydantic", "torch"}  # imported the usual way, its package runs first
    assert loaded_at_import(imports, alone=True)["pkg.m.config"] == {"pydantic"}


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_dynamic_import_is_followed():
    proj = project()
    bad = [f"{proj.paths[m].relative_to(ROOT)}:{i.node.lineno}: {ast.unparse(i.node)}"
           for m, imps in proj.imports.items() for i in imps if not i.followed]
    assert not bad, "dynamic imports whose module names the cycle check cannot see (use a literal, or a " \
                    "loop over a literal tuple):\n" + "\n".join(bad)


def test_the_folder_graph_finds_a_folder_cycle_of_acyclic_modules():
    graph = _graph_of({
        "pkg.__init__": "", "pkg.top": "from pkg.x import a\n",
        "pkg.x.__init__": "", "pkg.x.a": "from pkg.y.b import thing\n", "pkg.x.c": "",
        "pkg.y.__init__": "", "pkg.y.b": "def f():\n    import importlib\n    importlib.import_module('pkg.x.c')\n",
    })
    packages = {m.removesuffix(".__init__") for m in graph if m.endswith(".__init__")}
    graph = {m.removesuffix(".__init__"): deps for m, deps in graph.items()}
    assert cycles(graph) == []  # no module imports itself back ...
    folders = folder_graph(graph, packages)
    assert folders == {"pkg": {"pkg.x"}, "pkg.x": {"pkg.y"}, "pkg.y": {"pkg.x"}}
    assert cycles(folders) == [["pkg.x", "pkg.y"]]  # ... but pkg.x and pkg.y import each other
    assert folder_of("bench.runner.lifecycle", {"bench", "bench.runner"}) == "bench.runner"
    assert folder_of("bench.cli", {"bench", "bench.runner"}) == "bench"
    assert folder_of("bench.runner", {"bench", "bench.runner"}) == "bench.runner"


def test_no_folder_import_cycles():
    proj = project()
    graph = import_graph(proj)
    packages = proj.packages
    found = cycles(folder_graph(graph, packages))
    lines = []
    for comp in found:
        lines.append(" <-> ".join(comp) + ", through:")
        lines += [f"    {m} -> {d}" for m, deps in sorted(graph.items()) for d in sorted(deps)
                  if folder_of(m, packages) in comp and folder_of(d, packages) in comp
                  and folder_of(m, packages) != folder_of(d, packages)]
    assert not found, "folder import cycles:\n" + "\n".join(lines)


# ---- function-local imports: only for a heavy optional package, and saying which ---------------------------
LAZY_COMMENT = re.compile(r"#.*?\blazy:\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)")


def _lazy_comment(node: ast.AST, lines: list[str], comments: dict[int, str],
                  import_lines: set[int]) -> tuple[int, set[str]] | None:
    """(its line, the packages it names) of the `# lazy: a, b` comment on the import's own lines, or else on the
    comment lines and import statements directly above it (one comment may head a block of imports)."""
    candidates = list(range(node.lineno, node.end_lineno + 1))
    k = node.lineno - 1
    while k >= 1 and (lines[k - 1].strip().startswith("#") or k in import_lines):
        candidates.append(k)
        k -= 1
    for k in candidates:
        if k in comments and (m := LAZY_COMMENT.search(comments[k])):
            return k, {n.strip() for n in m.group(1).split(",")}
    return None


def lazy_import_problems(proj: Project, sources: dict[str, str] | None = None) -> list[str]:
    """Every function-local import that is not for a heavy optional package (see the module docstring)."""
    loads = loaded_at_import(proj.imports)
    alone = loaded_at_import(proj.imports, alone=True)
    surely = loaded_at_import(proj.imports, surely=True)
    out = []
    for m, imps in proj.imports.items():
        comment_uses: dict[int, tuple[str, set[str], set[str]]] = {}  # line -> (where, named, what its imports defer)
        src = sources[m] if sources is not None else proj.paths[m].read_text()
        lines = src.splitlines()
        comments = {t.start[0]: t.string for t in tokenize.generate_tokens(io.StringIO(src).readline)
                    if t.type == tokenize.COMMENT}
        import_lines = {k for i in imps if isinstance(i.node, (ast.Import, ast.ImportFrom))
                        for k in range(i.node.lineno, i.node.end_lineno + 1)}
        for i in imps:
            if not i.local:
                continue
            where = f"{m}:{i.node.lineno} ({ast.unparse(i.node)})"
            light = i.packages - set(HEAVY)
            if light:
                out.append(f"{where}: {', '.join(sorted(light))} is not a heavy optional package: import it at "
                           "module level")
            loaded = {n for n in i.dotted if "." not in n and n in surely[m]}
            if loaded:
                out.append(f"{where}: {m} loads {', '.join(sorted(loaded))} when imported already: import it at "
                           "module level")
            if not i.modules:
                continue
            found = _lazy_comment(i.node, lines, comments, import_lines)
            if found is None:
                out.append(f"{where}: a function-local import of the project needs a '# lazy: <package>' comment "
                           "naming the heavy package it defers, or belongs at module level")
                continue
            line, named = found
            if named - set(HEAVY):
                out.append(f"{where}: the comment names {', '.join(sorted(named - set(HEAVY)))}, not one of the "
                           f"heavy optional packages {HEAVY}")
            deferred = {t: (loads if i.runs_parents else alone)[t] - loads[m] for t in i.modules}
            for t, more in sorted(deferred.items()):
                if not more & named:
                    out.append(f"{where}: importing {t} at module level would load "
                               f"{', '.join(sorted(more)) or 'no package'} that {m} does not load already, and "
                               f"none of what the comment names: import it at module level")
            comment_uses.setdefault(line, (where, named, set()))[2].update(*deferred.values())
        for where, named, deferred in comment_uses.values():
            if (stale := (named & set(HEAVY)) - deferred):
                out.append(f"{where}: the comment names {', '.join(sorted(stale))}, which the imports under it do "
                           "not defer")
    return out


def test_the_lazy_import_check_fires():
    sources = {
        "pkg.heavy": "import torch\n",
        "pkg.light": "import json\n",
        "pkg.base": "def _base():\n    import torch\n    return object\n\nclass K(_base()):\n    pass\n",
        "pkg.user": ("def a():\n    from pkg.heavy import x  # lazy: torch\n\n"
                     "def b():\n    # lazy: torch\n    from pkg.heavy import x\n    from pkg.heavy import y\n\n"
                     "def c():\n    from pkg.heavy import x\n\n"
                     "def d():\n    from pkg.light import x  # lazy: torch\n\n"
                     "def e():\n    from pkg.heavy import x  # lazy: pandas\n\n"
                     "def f():\n    import json\n    import pandas\n"),
        "pkg.other": "import pkg.base\n\ndef g():\n    import torch\n",
        # Where gymnasium may be missing, the module tolerates it: a function that needs it still imports it.
        "pkg.maybe": "try:\n    import gymnasium\nexcept ModuleNotFoundError:\n    gymnasium = None\n\n"
                     "def h():\n    import gymnasium\n",
    }
    known = set(sources)
    proj = Project({m: Path(m) for m in sources},
                   {m: imports_of(ast.parse(s), m, False, known) for m, s in sources.items()})
    problems = lazy_import_problems(proj, sources)
    assert sorted(p.split(" (")[0] for p in problems) == [
        "pkg.other:4",  # g: pkg.other loads torch already (pkg.base calls a function that imports it)
        "pkg.user:10",  # c: no comment
        "pkg.user:13", "pkg.user:13",  # d: pkg.light defers nothing; the comment names what it does not defer
        "pkg.user:16", "pkg.user:16",  # e: pandas is not what pkg.heavy loads
        "pkg.user:19",  # f: json is light
    ], problems
    assert loaded_at_import(proj.imports) == {"pkg.heavy": {"torch"}, "pkg.light": {"json"}, "pkg.base": {"torch"},
                                              "pkg.user": set(), "pkg.other": {"torch"}, "pkg.maybe": {"gymnasium"}}
    assert loaded_at_import(proj.imports, surely=True)["pkg.maybe"] == set()
    assert any("pkg.user:10" in p and "needs a '# lazy: <package>' comment" in p for p in problems)
    assert any("pkg.user:16" in p and "names pandas, which the imports under it do not defer" in p for p in problems)
    assert any("pkg.user:19" in p and "json is not a heavy" in p for p in problems)


def test_function_local_imports_defer_a_heavy_package_and_say_which():
    problems = lazy_import_problems(project())
    assert not problems, f"{len(problems)} function-local imports:\n" + "\n".join(problems)


# Modules imported before anyone knows what is needed: the CLI's module loads no HEAVY package (each command
# imports its own), and the config models and the methods' catalog load no torch, so that `import bench.cli`
# stays fast and a config is parsed and checked without torch.
LIGHT = {"bench.cli": HEAVY, "bench.config": ("torch",), "methods.common.section": ("torch",),
         "methods.catalog": ("torch",)}


def test_light_modules_stay_light():
    proj = project()
    loads = loaded_at_import(proj.imports)
    alone = loaded_at_import(proj.imports, alone=True)
    checked = {m: LIGHT.get(m) or LIGHT.get(folder_of(m, proj.packages)) for m in proj.paths}
    # A method's config model: its own imports (its package's __init__, the method, imports torch).
    checked |= {m: ("torch",) for m in proj.paths if re.fullmatch(r"methods\.\w+\.(\w+_)?config", m)}
    heavy = {}
    for m, banned in checked.items():
        top = [i for i in proj.imports[m] if not i.local]
        own = set().union(*(i.packages for i in top),
                          *((loads if i.runs_parents else alone)[d] for i in top for d in i.modules))
        if banned and own & set(banned):
            heavy[m] = sorted(own & set(banned))
    assert not heavy, heavy


# ---- no method names in the harness or the analysis --------------------------------------------------------
# The registries: tasks (bench/tasks) may name their suites' defaults; nothing else in bench/ or analysis/ may.
ALLOWED = ("bench/tasks/",)


def _strings_outside_docstrings(tree: ast.AST):
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def _words(text: str) -> set[str]:
    """Identifier-like words of a string, the project's own name (modip-bench) left out."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"modip[-_]bench", " ", text)))


def method_name_uses(names: set[str]) -> list[str]:
    hits = []
    for pkg in ("bench", "analysis"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(ALLOWED):
                continue
            tree = ast.parse(path.read_text(), rel)
            for node in _strings_outside_docstrings(tree):
                words = _words(node.value)
                for name in sorted(words & names):
                    hits.append(f"{rel}:{node.lineno}: '{name}' in {node.value[:60]!r}")
    return hits


def test_no_method_names_in_bench_or_analysis():
    from methods.registry import registered_methods

    hits = method_name_uses(set(registered_methods()))
    assert not hits, "method names outside the registries:\n" + "\n".join(hits)


def test_the_method_name_check_fires(tmp_path, monkeypatch):
    from methods.registry import registered_methods

    names = set(registered_methods())
    tree = ast.parse('"""A docstring naming modip is fine."""\nx = cfg["method"] == "bc_dp"\ny = "modip-bench"\n')
    found = [n.value for n in _strings_outside_docstrings(tree) if _words(n.value) & names]
    assert found == ["bc_dp"]


# ---- import cycles -------------------------------------------------------------------------------------------
def test_no_import_cycle_through_bench_data_or_bench_tasks():
    """The structure test's import graph (function bodies included), restricted to the data and task modules."""
    found = [c for c in cycles(import_graph()) if any(m.startswith(("bench.data", "bench.tasks")) for m in c)]
    assert not found, found


def test_no_import_cycles_in_analysis():
    found = [c for c in cycles(import_graph()) if any(m.startswith("analysis") for m in c)]
    assert not found, found


def test_analysis_names_no_method_and_no_component():
    from methods.registry import registered_methods

    names = set(registered_methods()) | {"plan", "dp_act", "mpc", "update", "act"}
    for path in sorted((ROOT / "analysis").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                # the kinds a component may have are the store's vocabulary, not names (data.ACTION_KINDS)
                if node.value in ("plan", "act", "update") and path.name == "data.py":
                    continue
                raise AssertionError(f"{path.name}:{node.lineno} names {node.value!r}")
