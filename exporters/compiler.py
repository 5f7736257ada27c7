"""Compile a strategy into ONE standalone Python module.

The exported file is not a rewrite of the strategy: it is the strategy's own decision code,
inlined. The compiler follows `from <project package> import name` statements from the
strategy's module and the runtime, copies each module's source verbatim (imports hoisted
and de-duplicated, project imports dropped because their names are now defined above), and
appends a small entry point. The backtest and the export therefore execute the same lines.

Modules it inlines must be *portable*: project imports only as top-level
``from package.module import name``, no top-level name defined in two of them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_PACKAGES = frozenset(
    {"strategies", "marketdata", "live", "backtests", "exporters", "tradeship"}
)
RUNTIME_MODULES = ("live.runtime", "live.schedule")
EXPORT_FORMAT = 1


class ExportError(ValueError):
    """The strategy cannot be exported as asked; the message says what to change."""


@dataclass(frozen=True)
class ModuleSource:
    name: str
    path: Path
    text: str
    tree: ast.Module


def _top_package(module: str) -> str:
    return module.split(".", 1)[0]


def _is_project(module: str | None) -> bool:
    return bool(module) and _top_package(module) in PROJECT_PACKAGES


def _read_module(name: str) -> ModuleSource:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ExportError(f"cannot find the source of module {name}")
    path = Path(spec.origin)
    text = path.read_text(encoding="utf-8")
    return ModuleSource(name, path, text, ast.parse(text, filename=str(path)))


def _project_imports(module: ModuleSource) -> list[str]:
    """Project modules `module` imports; refuses import forms that cannot be inlined."""
    found = []
    top_level = set(map(id, module.tree.body))
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if _is_project(a.name)]
            if bad:
                raise ExportError(
                    f"{module.name}: 'import {bad[0]}' cannot be inlined; "
                    f"use 'from {bad[0]} import name'"
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ExportError(f"{module.name}: relative imports cannot be inlined")
            if _is_project(node.module):
                if id(node) not in top_level:
                    raise ExportError(
                        f"{module.name}:{node.lineno}: project imports must be at module top level"
                    )
                if node.module in PROJECT_PACKAGES:
                    raise ExportError(
                        f"{module.name}:{node.lineno}: import from the module that defines "
                        f"the name, not from the package {node.module}"
                    )
                found.append(node.module)
    return found


def collect_modules(roots: list[str]) -> list[ModuleSource]:
    """The project modules `roots` need, dependencies first, in a deterministic order."""
    sources: dict[str, ModuleSource] = {}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in sources:
            return
        if name in visiting:
            raise ExportError(f"import cycle through {name}")
        visiting.add(name)
        module = _read_module(name)
        for dep in sorted(set(_project_imports(module))):
            visit(dep)
        visiting.discard(name)
        sources[name] = module
        order.append(name)

    for root in roots:
        visit(root)
    return [sources[name] for name in order]


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _split_module(module: ModuleSource) -> tuple[list[str], list[str]]:
    """(third-party/stdlib import statements, body lines with project imports replaced)."""
    lines = module.text.splitlines()
    imports: list[str] = []
    drop: dict[int, list[str]] = {}  # first line index -> replacement lines
    skip: set[int] = set()
    for node in module.tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            span = range(node.lineno - 1, node.end_lineno)
            skip.update(span)
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            if isinstance(node, ast.ImportFrom) and _is_project(node.module):
                drop[node.lineno - 1] = [
                    f"{a.asname} = {a.name}" for a in node.names if a.asname and a.asname != a.name
                ]
                continue
            imports.append(ast.unparse(node))
    body = []
    for index, line in enumerate(lines):
        if index in drop:
            body.extend(drop[index])
        if index not in skip:
            body.append(line)
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return imports, body


def third_party_pins(modules: list[ModuleSource], extra_imports: set[str]) -> list[str]:
    """Pins for every non-stdlib top-level package any inlined line imports."""
    names: set[str] = set(extra_imports)
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                names.update(_top_package(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(_top_package(node.module))
    names = {n for n in names if n not in sys.stdlib_module_names and n not in PROJECT_PACKAGES}
    names.discard("__future__")
    mapping = importlib.metadata.packages_distributions()
    pins = set()
    for name in names:
        dists = mapping.get(name)
        if not dists:
            raise ExportError(f"cannot tell which distribution provides the import {name!r}")
        for dist in dists:
            pins.add(f"{dist}=={importlib.metadata.version(dist)}")
    return sorted(pins, key=str.lower)


def merge_imports(lines: list[str]) -> list[str]:
    """One sorted statement per imported module: `import x` lines, then `from x import a, b`."""
    plain: set[str] = set()
    from_names: dict[str, set[str]] = {}
    for line in lines:
        node = ast.parse(line).body[0]
        if isinstance(node, ast.Import):
            plain.update(ast.unparse(ast.Import(names=[a])) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = from_names.setdefault(node.module or "", set())
            names.update(a.name if not a.asname else f"{a.name} as {a.asname}" for a in node.names)
    merged = sorted(plain)
    merged += [f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(from_names.items())]
    return merged


ENTRY_NAMES = frozenset(
    {
        "STRATEGY_NAME",
        "SCHEDULE",
        "STRATEGY_ID",
        "PARAMS",
        "SYMBOLS",
        "DEFAULT_SOURCE",
        "SOURCE_SHA256",
        "build_strategy",
        "decide",
        "run",
        "main",
    }
)


@dataclass(frozen=True)
class ExportSpec:
    """What to export: a strategy, its full parameters and the universe it trades."""

    strategy: str
    params: dict
    symbols: tuple[str, ...]
    default_source: str = "yfinance"


@dataclass(frozen=True)
class CompiledModule:
    text: str
    requirements: list[str]
    source_sha256: str
    modules: list[str]


def _source_hash(modules: list[ModuleSource]) -> str:
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.name.encode() + b"\0" + module.text.encode() + b"\0")
    return digest.hexdigest()


def _python_literal(value: object) -> str:
    """A deterministic, readable Python literal (json's layout, Python's keywords)."""
    text = json.dumps(value, indent=4, sort_keys=True)
    return (
        text.replace(": true", ": True").replace(": false", ": False").replace(": null", ": None")
    )


def compile_strategy(spec: ExportSpec, strategy_cls: type, version: str) -> CompiledModule:
    """The text of the standalone module for `spec` (deterministic: no dates, sorted)."""
    modules = collect_modules([strategy_cls.__module__, *RUNTIME_MODULES])
    seen: dict[str, str] = {}
    for module in modules:
        for name in _defined_names(module.tree):
            if name in ENTRY_NAMES:
                raise ExportError(f"{module.name} defines {name}, a name the export reserves")
            if name in seen and not name.startswith("__"):
                raise ExportError(
                    f"{module.name} and {seen[name]} both define {name!r}; "
                    "inlined modules need distinct top-level names"
                )
            seen[name] = module.name
    if strategy_cls.__name__ not in seen:
        raise ExportError(f"{strategy_cls.__name__} must be defined at module top level")

    imports: list[str] = []
    bodies: list[str] = []
    for module in modules:
        module_imports, body = _split_module(module)
        imports.extend(module_imports)
        rel = f"{module.name.replace('.', '/')}.py"
        bodies.append(f"# {'=' * 70}\n# inlined from {rel}\n# {'=' * 70}\n" + "\n".join(body))
    unique_imports = merge_imports(imports)
    requirements = third_party_pins(modules, {"pyarrow"})  # pandas reads parquet through it
    source_sha = _source_hash(modules)
    params_text = _python_literal(spec.params)
    symbols = sorted(spec.symbols)
    id_digest = hashlib.sha256(
        json.dumps([spec.strategy, spec.params, symbols], sort_keys=True).encode()
    ).hexdigest()[:10]
    header = [
        f'"""{spec.strategy}: a standalone trading module exported by tradeship {version}.',
        "",
        "Do not edit: change the strategy and export again. It decides exactly what the",
        "backtest decided given the same data up to the same moment (`tradeship verify-parity`).",
        "",
        "    decide(history, holdings, now) -> target weights   (the pure decision)",
        "    run(now=None, dry_run=False, source=None) -> orders (load data, decide, trade)",
        "",
        "Credentials: APCA_API_KEY_ID, APCA_API_SECRET_KEY, APCA_API_BASE_URL (environment).",
        "As-of time and data: run(now=..., source=...) or TRADESHIP_NOW / TRADESHIP_SOURCE.",
        '"""',
        f"# strategy:       {spec.strategy}",
        f"# parameters:     {json.dumps(spec.params, sort_keys=True)}",
        f"# universe:       {len(symbols)} symbols",
        f"# source sha256:  {source_sha}",
        f"# export format:  {EXPORT_FORMAT}",
        "# requirements (also in requirements.txt beside this file):",
        *[f"#   {pin}" for pin in requirements],
        "",
        "from __future__ import annotations",
        "",
        *unique_imports,
        "",
    ]
    entry = f'''

# {"=" * 70}
# entry point (generated)
# {"=" * 70}
STRATEGY_NAME = {spec.strategy!r}
STRATEGY_ID = {f"{spec.strategy}-{id_digest}"!r}
SOURCE_SHA256 = {source_sha!r}
DEFAULT_SOURCE = {spec.default_source!r}
SCHEDULE = {strategy_cls.schedule!r}  # New York time, NYSE sessions
PARAMS = {params_text}
SYMBOLS = {_python_literal(symbols)}


def build_strategy():
    """A fresh {strategy_cls.__name__} with the exported parameters."""
    return {strategy_cls.__name__}(PARAMS)


def decide(history, holdings, now):
    """Target weights for the session of `now` from bars before it, or None (no rebalance)."""
    return build_strategy().decide(history, holdings, now)


def run(now=None, dry_run=False, source=None, slot=None, submit=True):
    """Decide for the session of `now` and trade the difference at Alpaca; returns the orders.

    `slot` (default: the session date) names the decision slot in client order ids: pass
    the scheduler's intended fire time so a duplicate delivery cannot trade twice.
    """
    return run_strategy(
        build_strategy(), SYMBOLS, strategy_id=STRATEGY_ID, strategy_hash=SOURCE_SHA256,
        now=now, dry_run=dry_run, source=source, default_source=DEFAULT_SOURCE, slot=slot,
        submit=submit,
    )


def main():
    import sys

    try:
        orders = run(dry_run="--dry-run" in sys.argv[1:])
    except (RunError, BrokerError, ValueError) as exc:
        print(f"error: {{exc}}", file=sys.stderr)
        return 2
    print(f"{{len(orders)}} order(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''
    text = "\n".join(header) + "\n\n" + "\n\n\n".join(bodies) + "\n" + entry
    return CompiledModule(text, requirements, source_sha, [m.name for m in modules])
