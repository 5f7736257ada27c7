"""How many completed bars an exported module replays before each decision.

A replay starts its indicators fresh `warmup` bars before the decision. Backtrader's minimum
period is enough for windowed indicators (SMA, momentum, a Prophet window) but not for
recursive ones (EMA, RSI's smoothing), whose values depend on every bar they have seen. So
the exporter measures it: the shortest window, from the minimum period up, whose replayed
decisions equal the full backtest's on the export's data, plus a margin; none found is an
error that names ``--warmup N``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from backtests.runner import BacktestResult
from exporters.compiler import ExportError
from exporters.parity import compare
from strategies.context import FILL_MODES
from strategies.forecast import Forecaster
from strategies.history import history_until
from strategies.registry import StrategySpec
from strategies.replay import replay_decision

MARGIN = 0.25  # extra bars over the shortest exact window, as a fraction of it
SAMPLE = 10  # sessions checked per candidate: the last decisions and as many quiet ones


def sample_sessions(result: BacktestResult, count: int = SAMPLE) -> list[pd.Timestamp]:
    """The last `count` sessions that decided something, and as many that did not."""
    traded = [s for s in sorted(result.holdings) if s >= result.trade_from]
    decided = [s for s in traded if result.decided.get(s) is not None][-count:]
    quiet = [s for s in traded if result.decided.get(s) is None][-count:]
    return sorted(decided + quiet)


def mismatches(
    spec: StrategySpec,
    result: BacktestResult,
    window: int,
    sessions: list[pd.Timestamp],
    forecaster: Forecaster | None = None,
) -> int:
    """Decisions among `sessions` that a `window`-bar replay gets wrong."""
    config = result.config
    found = 0
    for session in sessions:
        before = history_until(result.history, session)
        replay = replay_decision(
            spec.cls,
            spec.params,
            before,
            dict(result.holdings[session]),
            session,
            warmup=window,
            forecaster=forecaster,
            fill=config.fill if config.fill in FILL_MODES else "open",
            cash_buffer=config.cash_buffer,
            fractional=config.fractional,
            members=result.members,
        )
        found += bool(compare(session.date().isoformat(), result.decided.get(session), replay))
    return found


def find_warmup(
    spec: StrategySpec,
    result: BacktestResult,
    *,
    forecaster: Forecaster | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """The replay length an export records (see the module docstring)."""
    minimum = spec.warmup_bars(sorted(result.data.bars))
    available = len(history_until(result.history, result.trade_from))
    sessions = sample_sessions(result)
    if not sessions:
        raise ExportError(
            "the export's data has no trading session to measure the warm-up on: "
            "widen --start/--end, or give --warmup N"
        )
    window = minimum
    while True:
        wrong = mismatches(spec, result, window, sessions, forecaster)
        say(f"warm-up {window} bars: {wrong} of {len(sessions)} replayed decisions differ")
        if not wrong:
            return max(minimum, math.ceil(window * (1 + MARGIN)))
        if window >= available:
            raise ExportError(
                f"no replay window up to {available} bars reproduces the backtest's decisions "
                f"({wrong} of {len(sessions)} differ): the strategy keeps state a replay "
                "cannot rebuild, or needs a longer history; give --warmup N to choose one"
            )
        window = min(available, window * 2)
