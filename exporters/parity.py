"""Proving an export decides what the backtest decided, and a strategy never looks ahead.

Both checks replay every rebalance of a backtest: the decision for session t is recomputed
from data cut at t (bars before t only) and the backtest's holdings at t, and compared with
what the backtest decided while it held the whole range.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from backtests.runner import BacktestConfig, BacktestResult, run_backtest
from strategies.history import history_until

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Mismatch:
    date: str
    symbol: str
    backtest: float | None
    replay: float | None


@dataclass
class ParityReport:
    rebalances: int
    mismatches: list[Mismatch] = field(default_factory=list)
    label: str = "module"

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def lines(self) -> list[str]:
        out = [f"rebalances={self.rebalances} mismatches={len(self.mismatches)}"]
        for m in self.mismatches:
            out.append(
                f"  {m.date} {m.symbol}: backtest={_fmt(m.backtest)} {self.label}={_fmt(m.replay)}"
            )
        return out


def _fmt(weight: float | None) -> str:
    return "no-decision" if weight is None else f"{weight:.6f}"


def compare(
    date: str, backtest: Mapping[str, float] | None, replay: Mapping[str, float] | None
) -> list[Mismatch]:
    """Per-symbol differences between two decisions (None: no decision at all)."""
    if backtest is None and replay is None:
        return []
    if backtest is None or replay is None:
        symbols = sorted(set(backtest or {}) | set(replay or {})) or ["*"]
        return [
            Mismatch(
                date,
                s,
                None if backtest is None else backtest.get(s, 0.0),
                None if replay is None else replay.get(s, 0.0),
            )
            for s in symbols
        ]
    found = []
    for symbol in sorted(set(backtest) | set(replay)):
        a, b = float(backtest.get(symbol, 0.0)), float(replay.get(symbol, 0.0))
        if abs(a - b) > TOLERANCE:
            found.append(Mismatch(date, symbol, a, b))
    return found


def replay_decisions(
    result: BacktestResult,
    history: pd.DataFrame,
    decide: Callable[[pd.DataFrame, dict[str, float], pd.Timestamp], dict[str, float] | None],
    label: str,
    tick: Callable[[], None] | None = None,
) -> ParityReport:
    """Recompute every decision the backtest made (None included) from history cut at it."""
    report = ParityReport(
        rebalances=sum(t is not None for t in result.decided.values()), label=label
    )
    holdings: dict[str, float] = {}
    for session in history.index[history.index >= result.trade_from]:
        session = pd.Timestamp(session)
        before = history_until(history, session)
        if session in result.decided:
            holdings = result.holdings[session]
            replay = decide(before, holdings, session)
            report.mismatches.extend(
                compare(session.date().isoformat(), result.decided[session], replay)
            )
            if tick is not None:
                tick()
        elif len(before):
            # the backtest did not rebalance here: the replay must not trade either
            report.mismatches.extend(
                compare(session.date().isoformat(), None, decide(before, holdings, session))
            )
    return report


def load_module(path: str | Path) -> ModuleType:
    """Import an exported file by path, without it being on sys.path."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no exported module at {path}")
    name = f"tradeship_export_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for required in (
        "decide",
        "build_strategy",
        "load_history",
        "STRATEGY_NAME",
        "PARAMS",
        "SYMBOLS",
    ):
        if not hasattr(module, required):
            raise ValueError(f"{path} is not a tradeship export: it has no {required}")
    return module


def verify_parity(
    module_path: str | Path,
    source: str,
    symbols: list[str] | None,
    start: str | None,
    end: str | None,
    *,
    forecaster: Any = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> tuple[ParityReport, BacktestResult]:
    """Backtest the module's strategy, then replay every rebalance through the module."""
    module = load_module(module_path)
    universe = symbols or list(module.SYMBOLS)
    config = BacktestConfig(
        strategy=module.STRATEGY_NAME,
        params=dict(module.PARAMS),
        source=source,
        symbols=universe,
        start=start,
        end=end,
    )
    result = run_backtest(config, forecaster=forecaster, progress=progress)
    first = result.history.index[0]
    history = module.load_history(source, sorted(result.data.bars), first, result.history.index[-1])
    # The module fits its own forecasts with its own inlined code: the replay proves the
    # exported lines, not the backtest's cache. (`forecaster` only speeds up the backtest.)
    strategy = module.build_strategy()

    def decide(before, holdings, session):
        return strategy.decide(before, holdings, session)

    tick = progress(len(result.decided)) if progress else None
    report = replay_decisions(result, history, decide, "module", tick)
    return report, result


def check_lookahead(
    config: BacktestConfig,
    *,
    forecaster: Any = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> tuple[ParityReport, BacktestResult]:
    """freqtrade-style lookahead analysis: does a decision change when the future is cut?"""
    result = run_backtest(config, forecaster=forecaster, progress=progress)
    strategy = result.strategy

    def decide(before, holdings, session):
        return strategy.decide(before, holdings, session)  # prepare() on the cut history

    tick = progress(len(result.decided)) if progress else None
    report = replay_decisions(result, result.history, decide, "cut", tick)
    return report, result
