"""An exported module's decision: replay the Backtrader class on the bars before `now`.

The decision for session t is what the strategy's `next()` asks for at bar t-1, with the
account's book (shares and cash) in place at that bar. The class is replayed over the last
`warmup` completed bars: its indicators see every one of them (enough to reach the values
they had in the backtest; the exporter measures how many, see `tradeship export`), while
`next()` runs once, at the last bar, as it runs at the first bar of a backtest's trading
period. So a replay costs one decision (one bar's forecasts), not a backtest. Internal
state a strategy sets in earlier `next()` calls or from fills cannot be recovered by a
replay: `tradeship verify-parity` shows such a strategy as mismatches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import backtrader as bt
import pandas as pd

from strategies.base import LookaheadError, decision_session
from strategies.context import FILL_MODES, RunContext
from strategies.engine import run_strategy_class
from strategies.forecast import Forecaster, ProphetForecaster
from strategies.recorder import CASH, BarDecision


def book_value(book: Mapping[str, float], history: pd.DataFrame) -> float:
    """Cash plus every position at the last completed close."""
    closes = history["close"].iloc[-1]
    value = float(book.get(CASH, 0.0))
    for symbol, size in book.items():
        if symbol != CASH and size:
            value += float(size) * float(closes[symbol])
    return value


def replay_bar(
    cls: type[bt.Strategy],
    params: Mapping[str, Any],
    history: pd.DataFrame,
    book: Mapping[str, float],
    now: Any,
    *,
    warmup: int | None = None,
    forecaster: Forecaster | None = None,
    fitter: str | None = None,
    fill: str = "open",
    cash_buffer: float = 0.01,
    fractional: bool = False,
    members: pd.DataFrame | None = None,
) -> BarDecision | None:
    """What `cls` asks for at the last bar of `history`, for the session of `now`.

    `forecaster` makes its Prophet forecasts (default: fitted here, one by one, with
    `fitter`: "prophet" or "fast", as the backtest that verified it did); `members` is the
    universe's membership on every bar's next session (None: every symbol, always).
    """
    session = decision_session(now)
    if not len(history.index):
        raise ValueError("no completed bars to decide on")
    last = pd.Timestamp(history.index[-1])
    if last >= session:
        raise LookaheadError(
            f"history ends {last.date()}, but a decision for {session.date()} may only read "
            "bars before it"
        )
    window = history.iloc[-int(warmup) :] if warmup else history
    unknown = sorted(s for s in book if s != CASH and s not in set(window["close"].columns))
    if unknown:
        raise ValueError(f"the book holds {', '.join(unknown)}, which the history does not cover")
    context = RunContext(
        forecaster=forecaster or ProphetForecaster(fitter=fitter),
        fill=fill if fill in FILL_MODES else "open",  # "market": sized and decided alike
        cash_buffer=cash_buffer,
        fractional=fractional,
    )
    run = run_strategy_class(
        cls,
        params,
        window,
        context=context,
        members=members,
        after_last=session,
        trade_from=session,
        book=dict(book),
        cash=max(book_value(book, window), 1.0),
    )
    decisions = run.log.decisions
    if decisions and decisions[-1].bar == last:
        return decisions[-1]
    return None


def replay_decision(*args: Any, **kwargs: Any) -> dict[str, float] | None:
    """Target shares per symbol `next()` asked to change at the last bar (None: nothing)."""
    decision = replay_bar(*args, **kwargs)
    return None if decision is None else decision.targets
