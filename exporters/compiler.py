"""Compile a strategy into ONE standalone Python file that imports nothing from tradeship.

The file carries code as *embedded modules*: every module the entry point can reach (the
strategy's own, tradeship's portable ones, the user's helpers) is kept verbatim under its
own dotted name, and a small importer at the top of the file (exporters/embed.py, copied
verbatim) serves exactly those names. The backtest and the export therefore execute the
same lines, in the same module namespaces. Modules are found by following imports
(exporters/collect.py); third-party imports become exact pins in requirements.txt.

Only what the entry can reach is embedded: a data-source reader is carried only for the
sources the export is made for (`marketdata.load.SOURCE_MODULES`), so an export for
yfinance carries neither the synthetic demo generator nor the CSV reader.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import pprint
from dataclasses import dataclass, field

from exporters.collect import PROJECT_PACKAGES, ExportError, ModuleSource, collect
from exporters.collect import third_party_pins as _pins
from exporters.embed import bootstrap_source
from exporters.secrets import source_findings
from marketdata.load import SOURCE_MODULES

__all__ = [
    "PROJECT_PACKAGES",
    "CompiledModule",
    "ExportError",
    "ExportSpec",
    "compile_strategy",
    "entry_point",
]

EXPORT_FORMAT = 2
ALWAYS_PINNED = frozenset({"pyarrow"})  # pandas reads and writes Parquet through it
RULE = "# " + "=" * 78


@dataclass(frozen=True)
class ExportSpec:
    """Everything the generated entry point states, as data (see `entry_point`)."""

    strategy: str  # the name the user exported (built-in name or "package.module:Class")
    strategy_ref: str  # "package.module:Class", imported by the entry point
    params: dict
    symbols: tuple[str, ...]
    default_source: str = "yfinance"
    schedule: str = "daily at 15:00"
    warmup: int = 0  # completed bars a decision needs
    fill: str = "open"  # "open" | "close" | "market"
    fitter: str = "prophet"  # "prophet" | "fast"
    universe: object = None  # a JSON-able membership rule, None: SYMBOLS throughout
    sources: tuple[str, ...] = ()  # data-source kinds carried besides the default's

    @property
    def strategy_id(self) -> str:
        digest = hashlib.sha256(
            json.dumps([self.strategy, self.params, sorted(self.symbols)], sort_keys=True).encode()
        ).hexdigest()[:10]
        return f"{self.strategy}-{digest}"


@dataclass(frozen=True)
class CompiledModule:
    text: str
    requirements: list[str]
    source_sha256: str
    modules: list[str]
    module_lines: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    """What this checkout's runtime takes, read from it while the decision contract settles.

    `replay_kwargs`: the keywords (of warmup, fill, fitter, universe) strategies.replay takes;
    `decide_runner`: live.runtime.run_strategy takes the export's `decide` and warmup_bars.
    Once both are stable, `entry_point` can state them literally and this can go.
    """

    replay_kwargs: tuple[str, ...]
    decide_runner: bool


def current_contract() -> Contract:
    import live.runtime
    import strategies.replay

    target = getattr(strategies.replay, "replay_bar", strategies.replay.replay_decision)
    taken = inspect.signature(target).parameters
    return Contract(
        replay_kwargs=tuple(k for k in ("warmup", "fill", "fitter", "universe") if k in taken),
        decide_runner="warmup_bars" in inspect.signature(live.runtime.run_strategy).parameters,
    )


def _literal(value: object) -> str:
    """A deterministic, readable Python literal (keys sorted)."""
    return pprint.pformat(value, sort_dicts=True, width=96)


def entry_point(spec: ExportSpec, source_sha256: str, contract: Contract) -> str:
    """The generated entry point: the export's constants, `decide`, `run` and `main`.

    Its imports are followed like any module's, so what it imports decides what is embedded.
    """
    options = "".join(f", {k}={k.upper()}" for k in contract.replay_kwargs)
    if contract.decide_runner:
        run_body = (
            "    from live.runtime import resolve_now, run_strategy\n"
            "    from marketdata.universe import current_symbols\n\n"
            "    symbols = current_symbols(UNIVERSE, SYMBOLS, resolve_now(now))\n"
            "    return run_strategy(\n"
            "        decide, symbols, warmup_bars=WARMUP, strategy_name=STRATEGY_NAME,\n"
            "        strategy_id=STRATEGY_ID, strategy_hash=SOURCE_SHA256, fill=FILL, now=now,\n"
            "        dry_run=dry_run, source=source, default_source=DEFAULT_SOURCE, slot=slot,\n"
            "        submit=submit,\n"
            "    )\n"
        )
    else:
        run_body = (
            "    raise RunError(\n"
            '        "this export was made before live.runtime could run an exported decide(): "\n'
            '        "export it again with the current tradeship"\n'
            "    )\n"
        )
    return f'''{RULE}
# entry point (generated from the export's specification)
{RULE}
STRATEGY_NAME = {spec.strategy!r}
STRATEGY = {spec.strategy_ref!r}
STRATEGY_ID = {spec.strategy_id!r}
SOURCE_SHA256 = {source_sha256!r}
DEFAULT_SOURCE = {spec.default_source!r}
SCHEDULE = {spec.schedule!r}  # New York time, NYSE sessions
FILL = {spec.fill!r}
FITTER = {spec.fitter!r}
WARMUP = {int(spec.warmup)!r}
PARAMS = {_literal(spec.params)}
SYMBOLS = {_literal(sorted(spec.symbols))}
UNIVERSE = {_literal(spec.universe)}

import importlib  # noqa: E402

from live.runtime import RunError, load_history  # noqa: E402
from live.schedule import Schedule  # noqa: E402
from live.settings import LiveSettings  # noqa: E402


def _strategy_class():
    """The exported strategy class, imported from its embedded module."""
    module, _, name = STRATEGY.partition(":")
    return getattr(importlib.import_module(module), name)


def decide(history, holdings, now):
    """Target shares for each symbol the strategy asks to change for the session of `now`,
    from completed bars before it and the book {{symbol: shares, "$CASH": cash}}; None when
    it asks for nothing."""
    from marketdata.universe import members_for_replay
    from strategies.replay import replay_decision

    members = members_for_replay(UNIVERSE, history, now)  # None: every symbol, always
    return replay_decision(
        _strategy_class(), PARAMS, history, holdings, now{options}, members=members
    )


def run(now=None, dry_run=False, source=None, slot=None, submit=True):
    """Decide for the session of `now` and trade the difference at Alpaca; returns the orders.

    `slot` (default: the session date) names the decision slot in client order ids: pass
    the scheduler's intended fire time so a duplicate delivery cannot trade twice.
    """
{run_body}

def main(argv=None):
    """Command line: python FILE.py [--dry-run]."""
    from live.runtime import cli_main

    return cli_main(argv, run)


if __name__ == "__main__":
    raise SystemExit(main())
'''


def _source_literal(text: str) -> str:
    """`text` as a string literal that reads like the source: raw triple quotes when exact."""
    for quote in ("'''", '"""'):
        candidate = f"r{quote}{text}{quote}"
        if quote not in text and _evaluates_to(candidate, text):
            return candidate
    escaped = '"""' + text.replace("\\", "\\\\").replace('"""', '\\"""') + '"""'
    return escaped if _evaluates_to(escaped, text) else repr(text)


def _evaluates_to(literal: str, text: str) -> bool:
    try:
        return ast.literal_eval(literal) == text
    except (SyntaxError, ValueError):
        return False


def _relative_path(module: ModuleSource) -> str:
    return module.name.replace(".", "/") + ("/__init__.py" if module.is_package else ".py")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _source_hash(modules: list[ModuleSource]) -> str:
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.name.encode() + b"\0" + module.text.encode() + b"\0")
    return digest.hexdigest()


def _carried_sources(spec: ExportSpec) -> list[str]:
    from marketdata.load import parse_source

    kinds = {parse_source(spec.default_source).kind, *spec.sources}
    unknown = sorted(kinds - set(SOURCE_MODULES))
    if unknown:
        raise ExportError(f"unknown data source kind {unknown[0]!r}: use {sorted(SOURCE_MODULES)}")
    return sorted(kinds)


# Which fitter needs which import (strategies/forecast.py imports each inside the function
# that fits with it, so an export leaves the other one out).
FITTER_IMPORTS = {"fast": "strategies.fast_prophet", "prophet": "prophet"}


def _optional_imports(spec: ExportSpec, carried: list[str], contract: Contract) -> dict[str, str]:
    """What this export may leave out when only a function imports it, and why (the sentence
    an import of it raises): readers of other data sources, the fitter it does not use."""
    optional = {
        module: (
            f"this export carries no reader for {kind!r} data sources (it reads "
            f"{', '.join(carried)}): export it again with {kind!r} among its sources"
        )
        for kind, module in sorted(SOURCE_MODULES.items())
        if kind not in carried
    }
    # decide() passes FITTER when the replay takes it; otherwise the replay fits with Prophet
    fitter = spec.fitter if "fitter" in contract.replay_kwargs else "prophet"
    for other, name in sorted(FITTER_IMPORTS.items()):
        if other != fitter:
            optional[name] = (
                f"this export fits forecasts with the {fitter!r} fitter and carries nothing "
                f"of the {other!r} one: export it again with fitter={other!r}"
            )
    return optional


def compile_strategy(spec: ExportSpec, version: str) -> CompiledModule:
    """The text of the standalone module for `spec` (deterministic: no dates, sorted)."""
    module_name, _, class_name = spec.strategy_ref.partition(":")
    if module_name == "__main__" or not class_name or "." in class_name:
        raise ExportError(
            f"{spec.strategy_ref}: define the strategy class at the top level of a module "
            "file (not in the script you run) and name it as package.module:ClassName"
        )
    carried = _carried_sources(spec)
    contract = current_contract()
    optional = _optional_imports(spec, carried, contract)
    draft_entry = entry_point(spec, "0" * 64, contract)
    roots = [module_name, *(SOURCE_MODULES[kind] for kind in carried)]
    found = collect(roots, entry_text=draft_entry, omit=optional)
    # readers are imported by name (marketdata.load.source_reader): left out unless embedded
    readers = {m for k, m in SOURCE_MODULES.items() if k not in carried}
    embedded = {m.name for m in found.modules}
    omitted = {n: optional[n] for n in sorted((found.omitted | readers) - embedded)}
    modules = found.modules
    leaks = [line for m in modules for line in source_findings(m.name, m.text)]
    if leaks:
        raise ExportError(
            "refusing to embed source that looks like it holds a secret ("
            + "; ".join(leaks)
            + "): read credentials from APCA_* environment variables instead"
        )
    requirements = _pins(found.third_party | ALWAYS_PINNED)
    source_sha = _source_hash(modules)
    entry = entry_point(spec, source_sha, contract)
    lines = {m.name: len(m.text.splitlines()) for m in modules}
    width = max(len(m.name) for m in modules)
    header = [
        f'"""{spec.strategy}: a standalone trading module exported by tradeship {version}.',
        "",
        "Do not edit: change the strategy and export again. It decides exactly what the",
        "backtest decided given the same data up to the same moment (`tradeship verify-parity`).",
        "",
        "    decide(history, book, now) -> target shares or None  (the pure decision;",
        '        book = {symbol: shares, ..., "$CASH": cash})',
        "    run(now=None, dry_run=False, source=None) -> orders  (load data, decide, trade)",
        "",
        "The code below the importer is the strategy's and tradeship's own modules, each kept",
        "verbatim under its own name (listed with line counts and sha256 further down).",
        "Credentials: APCA_API_KEY_ID, APCA_API_SECRET_KEY, APCA_API_BASE_URL (environment).",
        "As-of time and data: run(now=..., source=...) or TRADESHIP_NOW / TRADESHIP_SOURCE.",
        '"""',
        f"# strategy:       {spec.strategy} ({spec.strategy_ref})",
        f"# parameters:     {json.dumps(spec.params, sort_keys=True)}",
        f"# universe:       {len(spec.symbols)} symbols",
        f"# data sources:   {', '.join(carried)} (default {spec.default_source})",
        f"# left out:       {', '.join(omitted) or 'nothing'} (imported only inside functions,"
        " for sources or fitters this export is not made for)",
        f"# source sha256:  {source_sha}",
        f"# export format:  {EXPORT_FORMAT}",
        "# requirements (also in requirements.txt beside this file):",
        *[f"#   {pin}" for pin in requirements],
        f"# embedded modules ({len(modules)}, {sum(lines.values())} lines; name, lines, sha256):",
        *[f"#  - {m.name:<{width}} {lines[m.name]:>5}  {_sha(m.text)}" for m in modules],
        "",
    ]
    body = [bootstrap_source(), "", RULE, "# embedded modules", RULE, "_EMBEDDED = {}"]
    for module in modules:
        kind = "package" if module.is_package else "module"
        body += [
            "",
            f"# --- {_relative_path(module)} ({kind} {module.name}, {lines[module.name]} lines)",
            f"_EMBEDDED[{module.name!r}] = ({module.is_package!r}, {_source_literal(module.text)})",
        ]
    body += [
        "",
        "_OMITTED = {",
        *[f"    {name!r}: {why!r}," for name, why in omitted.items()],
        "}",
        "EMBEDDED_MODULES = tuple(sorted(_EMBEDDED))",
        'install_embedded(_EMBEDDED, globals().get("__file__") or __name__, _OMITTED)',
        "",
        "",
    ]
    text = "\n".join(header) + "\n" + "\n".join(body) + entry
    compile(text, "<export>", "exec")  # a generated syntax error is a bug here, not at deploy
    return CompiledModule(text, requirements, source_sha, [m.name for m in modules], lines)
