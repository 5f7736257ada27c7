"""`tradeship export`: write a strategy's standalone module and its requirements.txt."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporters.compiler import CompiledModule, ExportError, ExportSpec, compile_strategy
from exporters.secrets import secret_findings
from live.schedule import schedule_for_fill
from marketdata.errors import DataError
from strategies.registry import build_strategy, full_params


def tradeship_version() -> str:
    try:
        return importlib.metadata.version("tradeship")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def build_export(
    strategy: str,
    params: dict[str, Any],
    symbols: Sequence[str],
    default_source: str = "yfinance",
    *,
    sources: Sequence[str] = (),
    fill: str = "open",
    fitter: str = "prophet",
    universe: Any = None,
    warmup: int | None = None,
) -> tuple[ExportSpec, CompiledModule]:
    """Check the inputs and compile; raises ExportError with what to change.

    `sources`: data-source kinds (demo, parquet, csv, yfinance) the export must read besides
    `default_source`'s, e.g. the source `tradeship verify-parity` will replay it on.
    `fill`, `fitter`, `universe`: as in the backtest the export must agree with.
    """
    findings = secret_findings(
        [(f"parameter {k}", str(v)) for k, v in params.items()]
        + [("source", default_source)]
        + [("symbol", s) for s in symbols]
        + ([("universe", json.dumps(universe, sort_keys=True))] if universe is not None else [])
    )
    if findings:
        raise ExportError(
            "refusing to export something that looks like a secret ("
            + "; ".join(findings)
            + "): credentials belong in APCA_* environment variables or a secret store"
        )
    if not symbols:
        raise ExportError("the export needs a universe: pass --symbols or a --source to list them")
    try:
        chosen = build_strategy(strategy, params)
        schedule = schedule_for_fill(fill)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    universe_list = tuple(sorted(set(symbols)))
    spec = ExportSpec(
        strategy=chosen.name,
        strategy_ref=f"{chosen.cls.__module__}:{chosen.cls.__qualname__}",
        params=full_params(chosen),
        symbols=universe_list,
        default_source=default_source,
        schedule=schedule,
        warmup=int(warmup if warmup else chosen.warmup_bars(list(universe_list))),
        fill=fill,
        fitter=fitter,
        universe=universe,
        sources=tuple(sorted(set(sources))),
    )
    try:
        return spec, compile_strategy(spec, tradeship_version())
    except DataError as exc:  # an unusable default source
        raise ExportError(str(exc)) from None


def write_export(compiled: CompiledModule, out: str | Path) -> tuple[Path, Path]:
    """Write FILE.py and requirements.txt beside it; byte-identical for identical inputs."""
    path = Path(out)
    if path.suffix != ".py":
        raise ExportError(f"--out must name a .py file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compiled.text.encode("utf-8"))
    requirements = path.parent / "requirements.txt"
    requirements.write_bytes(("\n".join(compiled.requirements) + "\n").encode("utf-8"))
    return path, requirements


def export_summary(spec: ExportSpec, compiled: CompiledModule) -> str:
    return json.dumps(
        {
            "strategy": spec.strategy,
            "symbols": len(spec.symbols),
            "embedded_modules": compiled.module_lines,
            "lines": len(compiled.text.splitlines()),
            "source_sha256": compiled.source_sha256,
        },
        indent=2,
    )
