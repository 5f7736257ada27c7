"""`tradeship export`: write a strategy's standalone module and its requirements.txt."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporters.compiler import CompiledModule, ExportError, ExportSpec, compile_strategy
from exporters.secrets import secret_findings
from strategies.registry import full_params, parse_params, strategy_class


def tradeship_version() -> str:
    try:
        return importlib.metadata.version("tradeship")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def build_export(
    strategy: str, params: dict[str, Any], symbols: Sequence[str], default_source: str = "yfinance"
) -> tuple[ExportSpec, CompiledModule]:
    """Check the inputs and compile; raises ExportError with what to change."""
    cls = strategy_class(strategy)
    findings = secret_findings(
        [(f"parameter {k}", str(v)) for k, v in params.items()]
        + [("source", default_source)]
        + [("symbol", s) for s in symbols]
    )
    if findings:
        raise ExportError(
            "refusing to export something that looks like a secret ("
            + "; ".join(findings)
            + "): credentials belong in APCA_* environment variables or a secret store"
        )
    if not symbols:
        raise ExportError("the export needs a universe: pass --symbols or a --source to list them")
    typed = full_params(cls(parse_params(cls, params)))
    spec = ExportSpec(
        cls.name if ":" not in strategy else strategy,
        typed,
        tuple(sorted(set(symbols))),
        default_source,
    )
    return spec, compile_strategy(spec, cls, tradeship_version())


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
            "inlined_modules": compiled.modules,
            "source_sha256": compiled.source_sha256,
        },
        indent=2,
    )
