"""Models get every graph, transposes included, from the GraphStore they are given."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODELS = sorted((Path(__file__).resolve().parents[2] / "recsys" / "models").glob("*.py"))


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_a_model_file_neither_imports_graph_builders_nor_builds_a_graph(path):
    tree = ast.parse(path.read_text(), str(path))
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.startswith("recsys.graphs")], f"{path.name} imports a graph module"
    calls = [node.func.attr for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    assert "to_sparse_csr" not in calls and "to_sparse_coo" not in calls, \
        f"{path.name} converts a sparse layout itself; ask the graph store (e.g. graphs.transpose)"
