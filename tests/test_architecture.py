"""The layer rule of ARCHITECTURE.md, checked from the code's own imports.

Every module of the six packages is parsed (never imported) and every import statement in
it is read, those inside functions included: an import that only runs when a function is
called still ties the two modules together, and hiding one in a function is how an upward
import or a circle goes unnoticed.

    marketdata  -> (none of ours)            live       -> strategies, marketdata
    strategies  -> (none of ours)            exporters  -> strategies, marketdata,
    backtests   -> strategies, marketdata                  backtests, live
                                             tradeship  -> all

A package may always import its own modules. Our other top-level folders (``examples``,
``tests``...) are above every package: no package may import them.

No import circle between modules either. Imports under ``if TYPE_CHECKING:`` never run,
so they cannot make an import-time circle and are left out of that check (they still
count for the layer rule).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("marketdata", "strategies", "backtests", "live", "exporters", "tradeship")
MAY_IMPORT: dict[str, frozenset[str]] = {
    "marketdata": frozenset(),
    "strategies": frozenset(),
    "backtests": frozenset({"strategies", "marketdata"}),
    "live": frozenset({"strategies", "marketdata"}),
    "exporters": frozenset({"strategies", "marketdata", "backtests", "live"}),
    "tradeship": frozenset({"marketdata", "strategies", "backtests", "live", "exporters"}),
}

# Violations owned by another engineer, being removed: {package: reason}. Each marks only
# that package's case xfail(strict=True), so the day it is fixed the mark must go.
KNOWN_VIOLATIONS: dict[str, str] = {}


def our_top_level_names() -> frozenset[str]:
    """Every importable name at the project root: the six packages and the other folders."""
    names = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    names |= {p.stem for p in ROOT.glob("*.py")}
    return frozenset(names | set(PACKAGES))


OURS = our_top_level_names()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "backtests.sweep.run"
    target: str  # the imported module (or the package whose name was imported)
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`

    def __str__(self) -> str:
        path = self.source.replace(".", "/")
        return f"{path}.py:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_files() -> dict[str, Path]:
    """Module name -> file, for every .py file of the six packages."""
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            files[module_name(path)] = path
    return files


MODULES = module_files()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers of statements under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    for inner in ast.walk(stmt):
                        if hasattr(inner, "lineno"):
                            lines.add(inner.lineno)
    return lines


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, path: Path) -> Iterator[Import]:
    """Every import of one of our top-level names in `path`, at any depth of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    guarded = _type_checking_lines(tree)
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in MODULES else base)
        for target in targets:
            if target.split(".")[0] in OURS:
                yield Import(module, target, node.lineno, node.lineno in guarded)


ALL_IMPORTS = [imp for module, path in MODULES.items() for imp in imports_of(module, path)]


def upward_imports(package: str) -> list[str]:
    allowed = MAY_IMPORT[package] | {package}
    return [
        str(imp)
        for imp in ALL_IMPORTS
        if imp.source.split(".")[0] == package and imp.target.split(".")[0] not in allowed
    ]


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative Tarjan: deep chains need no recursion limit
        nonlocal counter
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def runtime_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in ALL_IMPORTS:
        if not imp.type_only and imp.target in MODULES:
            edges[imp.source].add(imp.target)
    return edges


# --------------------------------------------------------------------------- the checker


def test_the_checker_reads_every_kind_of_import(tmp_path: Path) -> None:
    """Function-local, relative and from-imports are all seen; TYPE_CHECKING is marked."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import backtests.metrics\n"
        "from . import sweep_common\n"
        "from .sweep import run_sweep\n"
        "if TYPE_CHECKING:\n"
        "    from live.journal import Journal\n"
        "def f():\n"
        "    from tradeship.settings import Settings\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    found = {(i.target, i.line, i.type_only) for i in imports_of("backtests.probe", path)}
    assert found == {
        ("backtests.metrics", 2, False),
        ("backtests.sweep_common", 3, False),
        ("backtests.sweep", 4, False),
        ("live.journal", 6, True),
        ("tradeship.settings", 8, False),
    }


def test_the_cycle_finder_finds_circles_and_only_them() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert import_cycles(edges) == [["a", "b", "c"], ["e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_every_package_is_parsed() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert "backtests.sweep.run" in MODULES and "tradeship.cli" in MODULES


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "package",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[p]))
        if p in KNOWN_VIOLATIONS
        else p
        for p in PACKAGES
    ],
)
def test_no_package_imports_up_a_layer(package: str) -> None:
    found = upward_imports(package)
    allowed = ", ".join(sorted(MAY_IMPORT[package])) or "no package of ours"
    assert not found, f"{package} may import {allowed}; found:\n" + "\n".join(found)


def test_no_import_cycle_between_modules() -> None:
    cycles = import_cycles(runtime_edges())
    assert not cycles, "import circles (function-local imports included):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )
