"""Which modules an export embeds and which distributions it pins, by following imports.

Starting from root modules, every import statement is followed (top level or inside a
function, absolute or relative, ``import a.b`` or ``from a import b`` where ``b`` may be a
submodule). Each imported top-level name falls in one of four classes:

- tradeship's own packages (`PROJECT_PACKAGES`) and the user's own modules (found on
  sys.path, neither standard library nor installed by a distribution): **embedded**, source
  verbatim;
- the standard library: nothing to do;
- an installed distribution: **pinned** in requirements.txt at its exact version.

A package's ``_LAZY`` table (name -> module, served by its ``__getattr__``) is followed for
``from package import name`` too, so lazily exported names are embedded when imported.

A user package may share a name with one of ours (``strategies.my_strategy`` beside our
``strategies.base``: our packages extend their ``__path__``); only the same full module name
in two places is refused, since the export could carry only one of them.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.metadata
import importlib.util
import site
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_PACKAGES = frozenset(
    {"strategies", "marketdata", "live", "backtests", "exporters", "tradeship"}
)
_CATCHES_IMPORT_ERROR = frozenset({"ImportError", "ModuleNotFoundError", "Exception"})


class ExportError(ValueError):
    """The strategy cannot be exported as asked; the message says what to change."""


@dataclass(frozen=True)
class ModuleSource:
    """One embedded module: its dotted name, where it came from and its verbatim source."""

    name: str
    path: Path | None  # None for a namespace package (no __init__.py)
    text: str
    is_package: bool


@dataclass(frozen=True)
class ImportRef:
    """A module an import statement may need; `maybe` is a `from m import x` submodule guess."""

    name: str
    lineno: int
    optional: bool = False  # inside `try: ... except ImportError`
    maybe: bool = False
    lazy: bool = False  # inside a function: runs only when called


@dataclass
class Collection:
    """What following the imports found: embedded modules (sorted) and third-party names."""

    modules: list[ModuleSource] = field(default_factory=list)
    third_party: set[str] = field(default_factory=set)
    omitted: set[str] = field(default_factory=set)


def top_package(module: str) -> str:
    return module.split(".", 1)[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        kinds = handler.type
        names = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
        if kinds is None or any(
            isinstance(n, ast.Name) and n.id in _CATCHES_IMPORT_ERROR for n in names
        ):
            return True
    return False


def import_refs(tree: ast.Module, module: str, is_package: bool) -> Iterator[ImportRef]:
    """Every module `tree` may import, wherever the statement sits (TYPE_CHECKING excepted)."""

    def visit(node: ast.AST, optional: bool, lazy: bool) -> Iterator[ImportRef]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from visit(child, optional, lazy)
            return
        if isinstance(node, ast.Try):
            guarded = optional or _catches_import_error(node)
            for child in node.body:
                yield from visit(child, guarded, lazy)
            for part in (node.handlers, node.orelse, node.finalbody):
                for child in part:
                    yield from visit(child, optional, lazy)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy = True
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportRef(alias.name, node.lineno, optional, lazy=lazy)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except ImportError:
                    raise ExportError(
                        f"{module}:{node.lineno}: a relative import reaches above the top-level "
                        "package; import it by its full name"
                    ) from None
            if base != "__future__":
                yield ImportRef(base, node.lineno, optional, lazy=lazy)
                for alias in node.names:
                    if alias.name != "*":
                        name = f"{base}.{alias.name}"
                        yield ImportRef(name, node.lineno, optional, maybe=True, lazy=lazy)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, optional, lazy)

    yield from visit(tree, False, False)


def _site_dirs() -> list[Path]:
    found = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    found.update(getattr(site, "getsitepackages", list)())
    return sorted(Path(p).resolve() for p in found)


def _trivial_init(source: str) -> bool:
    """An __init__ with nothing but a docstring and path extension: shadowing it loses nothing."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Assign) and all(
            isinstance(t, ast.Name) and t.id == "__path__" for t in node.targets
        ):
            continue
        return False
    return True


def _lazy_table(package: ModuleSource) -> dict[str, str]:
    """A package's ``_LAZY = {name: module}`` table: names its ``__getattr__`` imports late."""
    for node in ast.parse(package.text).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            table = ast.literal_eval(node.value)
            return {str(k): str(v) for k, v in table.items()}
    return {}


class Collector:
    """Follows imports from roots; one instance per export (it caches the distribution map).

    `omit` (module or third-party top-level name -> why) lists what the export may leave out
    when only a function imports it (the function is then never called by this export);
    reached at import time, it is embedded or pinned as usual.
    """

    def __init__(self, omit: dict[str, str] | None = None) -> None:
        self.omit = dict(omit or {})
        self.distributions = importlib.metadata.packages_distributions()
        self.site_dirs = _site_dirs()
        paths = sysconfig.get_paths()
        self.stdlib_dirs = sorted({Path(paths[k]).resolve() for k in ("stdlib", "platstdlib")})
        self.checked_stdlib: set[str] = set()
        self.found: dict[str, ModuleSource] = {}
        self.result = Collection()

    def kind(self, name: str) -> str:
        """'embed', 'stdlib' or 'third_party' for the top-level package of `name`."""
        top = top_package(name)
        if top in PROJECT_PACKAGES:
            return "embed"
        if top in sys.stdlib_module_names or top == "__future__":
            return "stdlib"
        if top in self.distributions:
            return "third_party"
        return "embed"

    def read(self, name: str) -> ModuleSource | None:
        """The module's source, None if no such module; refuses what cannot be embedded."""
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        is_package = spec.submodule_search_locations is not None
        origin = spec.origin
        if origin in (None, "namespace") and is_package:
            return ModuleSource(name, None, "", True)
        if origin is None or origin in ("built-in", "frozen"):
            raise ExportError(f"{name} has no source file to embed; install it as a package")
        path = Path(origin)
        if any(origin.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES):
            raise ExportError(
                f"{name} is a compiled extension ({path}) and an export embeds source only: "
                "publish it as an installable distribution (then it is pinned) or write it "
                "in Python"
            )
        if path.suffix != ".py":
            raise ExportError(f"{name} has no Python source ({path}); export needs the .py file")
        resolved = path.resolve()
        if top_package(name) not in PROJECT_PACKAGES:
            if any(resolved.is_relative_to(d) for d in self.site_dirs):
                raise ExportError(
                    f"{name} is installed in {resolved.parent} but no distribution claims it; "
                    "reinstall it with pip so the export can pin it"
                )
        text = importlib.util.decode_source(path.read_bytes())
        self.refuse_clash(name, resolved, text, is_package)
        return ModuleSource(name, path, text, is_package)

    def refuse_stdlib_shadow(self, top: str, importer: str) -> None:
        """A file of the user's named like a standard module would be left out: refuse it."""
        if top in self.checked_stdlib or top in sys.builtin_module_names or top == "__future__":
            return
        self.checked_stdlib.add(top)
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return
        origin = (
            Path(spec.origin).resolve() if spec and spec.origin not in (None, "frozen") else None
        )
        if origin is None or not origin.exists():
            return
        if not any(origin.is_relative_to(d) for d in self.stdlib_dirs + self.site_dirs):
            raise ExportError(
                f"{origin} (imported by {importer}) shadows the standard library's {top}: "
                "rename it, the export would run the standard module instead"
            )

    def refuse_clash(self, name: str, path: Path, text: str, is_package: bool) -> None:
        """Refuse the same full module name in two places (the export can carry one)."""
        parent, _, _ = name.rpartition(".")
        if parent:
            search = list(getattr(sys.modules.get(parent), "__path__", []) or [])
        else:
            search = list(sys.path)
        seen = {path}
        for entry in dict.fromkeys(str(Path(e or ".").resolve()) for e in search):
            try:
                other = importlib.machinery.PathFinder.find_spec(name, [entry])
            except (ImportError, ValueError):
                continue
            if other is None or other.origin in (None, "namespace"):
                continue  # not there, or a namespace portion: merges, no clash
            where = Path(other.origin).resolve()
            if where in seen:
                continue
            seen.add(where)
            if is_package and where.name == "__init__.py" and where.suffix == ".py":
                if _trivial_init(importlib.util.decode_source(where.read_bytes())):
                    continue
                if _trivial_init(text):
                    raise ExportError(
                        f"two packages named {name}: {where} would be shadowed by {path}; "
                        "empty one of their __init__.py files or rename one package"
                    )
            raise ExportError(
                f"two modules named {name}: {path} and {where}; the export can carry only "
                "one: rename yours (a package of yours may share a name with tradeship's, "
                "a module may not)"
            )

    def add(self, name: str, ref: ImportRef | None = None, importer: str = "<root>") -> None:
        ref = ref or ImportRef(name, 0)
        lineno, optional, maybe = ref.lineno, ref.optional, ref.maybe
        kind = self.kind(name)
        if kind == "stdlib":
            self.refuse_stdlib_shadow(top_package(name), importer)
            return
        if kind == "third_party":
            if ref.lazy and top_package(name) in self.omit:
                self.result.omitted.add(top_package(name))
            else:
                self.result.third_party.add(top_package(name))
            return
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if ref.lazy and prefix in self.omit:
                self.result.omitted.add(prefix)
                return
            if prefix in self.found:
                continue
            if maybe and depth == len(parts):
                parent = self.found.get(".".join(parts[:-1]))
                if parent is None or not parent.is_package:
                    return  # `from module import name`: an attribute, not a submodule
                lazy_module = _lazy_table(parent).get(parts[-1])
                if lazy_module:  # a name the package imports on first use (PEP 562)
                    self.add(lazy_module, ImportRef(lazy_module, lineno, optional, lazy=ref.lazy))
                    return
            module = self.read(prefix)
            if module is None:
                if maybe and depth == len(parts):
                    return
                if optional:
                    return
                raise ExportError(
                    f"{importer}:{lineno}: cannot find module {prefix}; install it (it is then "
                    "pinned in requirements.txt) or put it on sys.path (it is then embedded)"
                )
            self.found[prefix] = module
            self.follow(module)

    def follow(self, module: ModuleSource) -> None:
        tree = ast.parse(module.text, filename=str(module.path or module.name))
        for ref in import_refs(tree, module.name, module.is_package):
            self.add(ref.name, ref, module.name)

    def follow_text(self, text: str, name: str) -> None:
        """Follow the imports of generated code (the export's entry point)."""
        for ref in import_refs(ast.parse(text), name, False):
            self.add(ref.name, ref, name)


def collect(
    roots: Iterable[str], entry_text: str = "", omit: dict[str, str] | None = None
) -> Collection:
    """Embedded modules (sorted by name) and third-party names needed by roots and entry."""
    collector = Collector(omit)
    for root in sorted(set(roots)):
        collector.add(root)
    if entry_text:
        collector.follow_text(entry_text, "<entry point>")
    result = collector.result
    result.modules = [collector.found[name] for name in sorted(collector.found)]
    result.omitted -= set(collector.found) | result.third_party  # also reached at import time
    return result


def third_party_pins(names: Iterable[str]) -> list[str]:
    """Exact `dist==version` pins for top-level import names, sorted case-insensitively."""
    mapping = importlib.metadata.packages_distributions()
    pins = set()
    for name in names:
        dists = mapping.get(name)
        if not dists:
            raise ExportError(f"cannot tell which distribution provides the import {name!r}")
        for dist in dists:
            pins.add(f"{dist}=={importlib.metadata.version(dist)}")
    return sorted(pins, key=str.lower)
