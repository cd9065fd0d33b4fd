"""The package's shape: no import circle between its modules, and modules small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "generator"
MAX_LINES = 420  # "about 400": a module over this is doing more than one job


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every generator module ``path`` imports, at module level or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_import_circle():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, modules) for p in paths}
    # A package's __init__ re-exporting its own submodules is not a circle; a submodule importing
    # its package (or anything that leads back to itself) is.
    for name in graph:
        graph[name] = {t for t in graph[name] if not (name.startswith(t + ".") and t in graph and
                                                      graph[t] and all(s.startswith(t + ".") for s in graph[t]))}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(target):] + [target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_modules_are_small_enough_to_read():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


MAX_FUNCTION_LINES = 100  # a function over this runs more than one part: name the parts


def test_functions_are_small_enough_to_read():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (lines := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert not long, long


def test_curate_docstring_lists_every_rule_in_order():
    import re

    import generator.curate as curate

    listed = re.findall(r"^\d+\. +``([a-z-]+)``", curate.__doc__, re.M)
    assert tuple(listed) == curate.RULES


def test_named_source_files_exist():
    """A path under generator/ or dags/ named in the README, docs/ or the DAG's text is a real file or folder."""
    import re

    named = {}
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "dags").glob("*.py")]:
        for path in re.findall(r"\b((?:generator|dags)/[\w./-]*\w)", doc.read_text()):
            named.setdefault(path, doc.name)
    missing = {path: doc for path, doc in named.items() if not (ROOT / path).exists()}
    assert not missing, missing
