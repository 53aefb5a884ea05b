"""Tests that guard the project's structure (issue 13).

- No import cycles among the project's modules: every `import` in the syntax tree is an edge, function bodies
  included, so an import inside a function cannot hide a cycle.
- No method name in `bench/` or `analysis/` outside the task and method registries: the harness and the
  analysis read what they need from the declared contract and from sweep files.
- Every registered method implements the declared contract, and a deliberately incomplete one is caught.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "methods", "results", "analysis")


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


def _imports(tree: ast.AST, module: str, is_pkg: bool, known: set[str]) -> set[str]:
    """The project modules `module` imports anywhere in its tree (TYPE_CHECKING blocks excepted)."""
    out: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known:
                    out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif target in known:
                    out.add(target)
    out.discard(module)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(ast.parse(p.read_text(), str(p)), m, p.name == "__init__.py", known)
            for m, p in mods.items()}


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


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function_body():
    a = ast.parse("def f():\n    from pkg.b import thing\n")
    b = ast.parse("import pkg.a\n")
    known = {"pkg.a", "pkg.b"}
    graph = {"pkg.a": _imports(a, "pkg.a", False, known), "pkg.b": _imports(b, "pkg.b", False, known)}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


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
    from methods.base import registered_methods

    hits = method_name_uses(set(registered_methods()))
    assert not hits, "method names outside the registries:\n" + "\n".join(hits)


def test_the_method_name_check_fires(tmp_path, monkeypatch):
    from methods.base import registered_methods

    names = set(registered_methods())
    tree = ast.parse('"""A docstring naming modip is fine."""\nx = cfg["method"] == "bc_dp"\ny = "modip-bench"\n')
    found = [n.value for n in _strings_outside_docstrings(tree) if _words(n.value) & names]
    assert found == ["bc_dp"]


# ---- the method contract -----------------------------------------------------------------------------------
def test_every_registered_method_implements_the_declared_contract():
    from methods.base import contract_violations, registered_methods

    bad = {name: v for name, cls in registered_methods().items() if (v := contract_violations(cls))}
    assert not bad, bad


def test_an_incomplete_method_is_caught():
    from methods.base import ActorState, Method, MethodContext, RolloutKind, TaskSpaces, contract_violations
    from methods.common.normalize import Normalizer

    @dataclasses.dataclass
    class Cfg:
        lr: float = 1e-3

    class Incomplete(Method):  # off-policy by default, but no finetune_step, no act, no timed components
        Config = Cfg
        actors = ("pi",)
        train_actor = "mpc"

        def modules(self):
            return {}

    v = contract_violations(Incomplete)
    assert any("'act'" in x for x in v) and any("'timed_components'" in x for x in v)
    assert any("finetune_step" in x for x in v) and any("train_actor 'mpc'" in x for x in v)
    assert any("pretrain_step" in x for x in v)
    spaces = TaskSpaces(obs_dim=2, act_dim=1, act_low=-np.ones(1), act_high=np.ones(1), max_episode_steps=10)
    with pytest.raises(TypeError, match="abstract"):
        Incomplete(Cfg(), MethodContext(spaces=spaces, normalizer=Normalizer(np.zeros(2), np.ones(2),
                                                                             -np.ones(1), np.ones(1))))

    class OnPolicyWithoutRollouts(Incomplete):
        rollout_kind = RolloutKind.ON_POLICY
        train_actor = "pi"

        def act(self, obs, actor, state: ActorState, eval_mode):
            return obs

        def timed_components(self, batch_size=1):
            return {}

    v = contract_violations(OnPolicyWithoutRollouts)
    assert {x for x in v if "rollout" in x} == {
        "hook 'rollout_size' is required by its declarations but not implemented",
        "hook 'act_rollout' is required by its declarations but not implemented",
        "hook 'update_rollout' is required by its declarations but not implemented"}
    assert OnPolicyWithoutRollouts.rollout_kind is RolloutKind.ON_POLICY


def test_rollout_kind_is_an_enum_and_strings_are_normalised():
    from methods.base import RolloutKind, registered_methods

    for cls in registered_methods().values():
        assert isinstance(cls.rollout_kind, RolloutKind)
