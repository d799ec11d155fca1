"""No hand-typed figure in the prose the bench scripts write into bench/README.md.

Every number of the README must come from a recorded result (or a setting the script used),
formatted in by the script. This test reads each bench script's source, finds the functions
that produce README text (the first argument of ``write_readme_section`` and everything it
calls or reads in the module, transitively) and checks that their string literals hold no
digit. Exempt: docstrings, literals without a space (keys, names), literals used as keys or in
comparisons, format specifications, code spans in backticks (commands, file names), metric
names with their cut-off (``Recall@20``), feature widths (``384-d``) and names that end in
digits (``MiniLM-L6``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
EXEMPT = re.compile(r"`[^`]*`|[A-Za-z]*@\d+|\b\d+-d\b|\b[A-Za-z_][A-Za-z_-]*\d+[A-Za-z_\d]*\b")


def readme_roots(tree: ast.Module) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "write_readme_section" and node.args
                and isinstance(node.args[0], ast.Call) and isinstance(node.args[0].func, ast.Name)):
            roots.add(node.args[0].func.id)
    return roots


def reachable(tree: ast.Module, roots: set[str]) -> list[ast.AST]:
    """Module-level functions and constants the roots use, transitively."""
    definitions: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            definitions[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    definitions[target.id] = node
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        todo += [n.id for n in ast.walk(definitions[name]) if isinstance(n, ast.Name)]
    return [definitions[name] for name in sorted(seen)]


def prose_literals(node: ast.AST) -> list[tuple[int, str]]:
    skip: set[int] = set()
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if isinstance(sub, (ast.FunctionDef, ast.Module)) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))
        excluded = []
        if isinstance(sub, ast.Subscript):
            excluded.append(sub.slice)
        elif isinstance(sub, ast.Dict):
            excluded += [key for key in sub.keys if key is not None]
        elif isinstance(sub, ast.Compare):
            excluded.append(sub)
        elif isinstance(sub, ast.FormattedValue) and sub.format_spec is not None:
            excluded.append(sub.format_spec)
        elif isinstance(sub, ast.Call) and getattr(sub.func, "attr", None) in ("get", "startswith", "split",
                                                                                 "replace", "removeprefix"):
            excluded += sub.args
        skip |= {id(n) for e in excluded for n in ast.walk(e)}
    return [(sub.lineno, sub.value) for sub in ast.walk(node)
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and id(sub) not in skip
            and " " in sub.value and re.search(r"\d", EXEMPT.sub("", sub.value))]


SCRIPTS = sorted(path for path in BENCH.glob("*.py") if readme_roots(ast.parse(path.read_text())))


def test_the_readme_generators_are_found():
    names = {path.name for path in SCRIPTS}
    assert {"multimodal_sports.py", "reproduce_id_baselines.py", "scaling.py", "rearm_report.py",
            "suite_cost.py", "clhe_clothing.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_readme_prose_holds_no_typed_figure(script):
    tree = ast.parse(script.read_text())
    found = [f"{script.name}:{line}: {text!r}" for node in reachable(tree, readme_roots(tree))
             for line, text in prose_literals(node)]
    assert found == [], "digits typed into README prose (format them in from recorded values):\n" + "\n".join(found)


def test_a_typed_figure_is_caught():
    tree = ast.parse('def markdown(r):\n    return f"speed {r[\'x\']:.1f} s, 5.6x faster than R@20"\n'
                     'write_readme_section(markdown(r), "a", "b")\n')
    found = [text for node in reachable(tree, readme_roots(tree)) for _, text in prose_literals(node)]
    assert found == [" s, 5.6x faster than R@20"]
