"""The layering of DESIGN §2 that import-linter's contracts do not express: no import
cycle among smsbridge's modules (siblings of one layer may import each other, never in a
circle), and no module taking another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[1] / "smsbridge"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    modules = sorted(m for m in graph.modules if m.startswith("smsbridge"))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.find_modules_directly_imported_by(node)):
            if not nxt.startswith("smsbridge"):
                continue
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

    for module in modules:
        if module not in index:
            visit(module)
    return found


def _is_package_init(module: str) -> bool:
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph("smsbridge")
    # A package's __init__ re-exporting its own modules is not a cycle of responsibilities.
    for module in list(graph.modules):
        if _is_package_init(module):
            for child in graph.find_children(module):
                if graph.direct_import_exists(importer=child, imported=module):
                    graph.remove_import(importer=child, imported=module)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "b", "c", "d"):
        graph.add_module(f"smsbridge.{name}")
    graph.add_import(importer="smsbridge.a", imported="smsbridge.b")
    graph.add_import(importer="smsbridge.b", imported="smsbridge.c")
    graph.add_import(importer="smsbridge.c", imported="smsbridge.a")
    graph.add_import(importer="smsbridge.d", imported="smsbridge.a")
    assert _cycles(graph) == [["smsbridge.a", "smsbridge.b", "smsbridge.c"]]


def _private_imports(path: Path) -> list[str]:
    """``from smsbridge.x import _name`` and ``from .x import _name`` in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or "smsbridge" in (node.module or "")):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno}: {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" not in path.parts:
            found += _private_imports(path)
    assert found == []


def test_the_private_import_check_finds_them(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from .config import _line_of\nfrom smsbridge.x import public\n")
    assert _private_imports(bad) == ["bad.py:1: _line_of"]
