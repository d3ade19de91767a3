"""The engine's modules import each other without cycles: every import counts, at the
top of a module, under ``TYPE_CHECKING`` or inside a function (an import of a package
names its ``__init__``; ``from package import name`` names the submodule `name` where
there is one, else the package)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path, root: Path) -> str:
    """The dotted name of a source file below `root` (a package by its ``__init__``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path, root: Path, type_checking: bool = True
                 ) -> dict[str, set[str]]:
    """Each module of `package` -> the modules of `package` it imports, anywhere in it
    (without the imports under ``if TYPE_CHECKING:`` unless `type_checking`)."""
    files = {module_name(p, root): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test)
                       for statement in node.body for n in ast.walk(statement)}
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only and not type_checking:
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's own package upwards
                    base = name.split(".")[:len(name.split(".")) + is_package - node.level]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets.update(f"{source}.{alias.name}" if f"{source}.{alias.name}" in files
                               else source for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def parts_of(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """`graph` between the parts modules belong to, named by their first `depth` dotted
    names (``core.data.records`` -> ``core.data`` at depth 2); a package's ``__init__``
    is left out (it gathers its own part's names for the public API)."""
    def part(module: str) -> str:
        return ".".join(module.split(".")[:depth])

    inits = {m for m in graph if len(m.split(".")) < depth}
    parts: dict[str, set[str]] = {part(m): set() for m in graph if m not in inits}
    for module, targets in graph.items():
        if module not in inits:
            parts[part(module)] |= {part(t) for t in targets - inits} - {part(module)}
    return parts


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg import a\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from pkg.b import B\n")
    (package / "b.py").write_text("def f():\n    from . import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    graph = import_graph(package, tmp_path)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"},
                     "pkg.c": {"pkg.a"}}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_typing_only_imports_can_be_left_out(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "one").mkdir(parents=True)
    (package / "two").mkdir()
    (package / "one" / "a.py").write_text("from typing import TYPE_CHECKING\n"
                                          "if TYPE_CHECKING:\n    from pkg.two.b import B\n")
    (package / "two" / "b.py").write_text("from pkg.one.a import A\n")
    graph = import_graph(package, tmp_path)
    assert cycles(parts_of(graph, 2)) == [["pkg.one", "pkg.two"]]
    assert cycles(parts_of(import_graph(package, tmp_path, type_checking=False), 2)) == []


@pytest.mark.parametrize("package", ["core", "testing"])
def test_no_import_cycles(package: str) -> None:
    assert cycles(import_graph(ROOT / package, ROOT)) == []


def test_no_run_time_import_cycles_between_core_packages() -> None:
    """``core.data`` and ``core.model`` (and every other pair of ``core``'s packages and
    modules) import each other in one direction at most when the program runs."""
    graph = parts_of(import_graph(ROOT / "core", ROOT, type_checking=False), 2)
    assert cycles(graph) == []
