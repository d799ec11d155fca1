"""The package's import graph is acyclic and every import goes down the layers.

Imports are read from the source (module level and inside functions alike), so a cycle that
only works because of import order, or one hidden in a function body, fails here.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "recsys"

# Bottom to top: a module may import modules of its own group or of a group listed before it.
LAYERS = [
    ["recsys.errors", "recsys.version", "recsys.provenance"],
    ["recsys.io"],
    ["recsys.config", "recsys.data"],
    ["recsys.graphs", "recsys.nn", "recsys.losses", "recsys.evaluation"],
    ["recsys.models"],
    ["recsys.training"],
    ["recsys.compose", "recsys.validation"],
    ["recsys.serving", "recsys.runs", "recsys.dry_run", "recsys.plotting", "recsys.compare"],
    ["recsys.export", "recsys.tuning"],
    ["recsys.benchmark"],
    ["recsys.cli", "recsys.__main__"],
    ["recsys"],
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=1)
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``target`` (a module or a name inside one) denotes."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


@lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target == "recsys" or target.startswith("recsys."):
                    resolved = _resolve(target, modules)
                    if resolved is not None and resolved != name:
                        edges.add(resolved)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _layer(module: str) -> int:
    best = None
    for level, groups in enumerate(LAYERS):
        for group in groups:
            if module == group or module.startswith(group + "."):
                if best is None or len(group) > best[1]:
                    best = (level, len(group))
    assert best is not None, f"{module} is in no layer of tests/test_layering.py"
    return best[0]


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "recsys.models.registry" in graph["recsys.models"]
    assert "recsys.runs" in graph["recsys"], "recsys.__init__ imports its entry points lazily, inside a function"


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_a_planted_cycle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_go_down_the_layers(module):
    graph = import_graph()
    upward = sorted(target for target in graph[module] if _layer(target) > _layer(module))
    assert upward == [], f"{module} imports {upward} from a higher layer (see LAYERS)"
