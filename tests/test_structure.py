"""The shape of the code: no import cycles beyond the registries' register-on-import, and imports at the top
of every module outside cli/ (or kept inside a function with the reason written beside them)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import REPO

PACKAGES = ("hsta_bench", "baselines")

# The two registries load their entries when first asked for; the entries import the registry to register
# (and plugins, which loads the models from outside, reads the registry): these edges close cycles by design.
REGISTER_ON_IMPORT = {
    ("hsta_bench.data.registry", "hsta_bench.data.sources"),
    ("hsta_bench.models.registry", "baselines"),
    ("hsta_bench.models.registry", "hsta_bench.models.hsta"),
    ("hsta_bench.models.registry", "hsta_bench.models.plugins"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, at the top or in a function (not under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        edges = set()
        for node in ast.walk(tree):
            if _type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from package import module` imports that module; `from module import name`, the module
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                ]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_beyond_the_registries():
    graph = import_graph(_modules())
    assert all(b in graph[a] for a, b in REGISTER_ON_IMPORT), "a register-on-import edge is gone: update the list"
    without = {a: {b for b in bs if (a, b) not in REGISTER_ON_IMPORT} for a, bs in graph.items()}
    assert cycles(without) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_outside_cli_say_why():
    """Outside cli/ (whose commands import what they need, so `--help` stays fast), an import inside a function
    is an exception: it carries `noqa: PLC0415` and a reason (on its line or the comment above it)."""
    unexplained = []
    for name, path in _modules().items():
        if name.startswith("hsta_bench.cli"):
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _type_checking_only(node, parents):
                continue
            owner = parents.get(node)
            while owner is not None and not isinstance(owner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if isinstance(owner, ast.Try):  # an optional dependency probed where it is used
                    break
                owner = parents.get(owner)
            if owner is None or isinstance(owner, ast.Try):
                continue
            line = lines[node.lineno - 1]
            k = node.lineno - 2  # the comment above a block of such imports speaks for all of them
            while k > 0 and "PLC0415" in lines[k] and not lines[k].strip().startswith("#"):
                k -= 1
            above = lines[k].strip() if k >= 0 else ""
            marked = re.search(r"#\s*noqa:[\w, ]*PLC0415(.*)$", line)
            reason = marked.group(1).strip(" -") if marked else ""
            if not marked or not (reason or above.startswith("#")):
                unexplained.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert unexplained == [], "\n".join(unexplained)
