"""What an exported module's `run()` does: load point-in-time data, decide, trade the gap.

This module is inlined into every exported file, with the strategy's own code. It reads
only completed sessions: a run during session t sees bars through t-1, exactly what the
backtest's decision for t saw, so the two decide on identical inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd
from marketdata.load import load

from live.alpaca_broker import AlpacaBroker, BrokerError, broker_from_env
from live.execution import plan_orders
from marketdata.calendar import is_session, previous_session
from marketdata.panel import history_until, to_history
from strategies.base import Strategy, decision_session

NEW_YORK = "America/New_York"


class RunError(RuntimeError):
    """A run stopped before trading; the message says why and what to do. No order was sent."""


def resolve_now(now: Any = None) -> pd.Timestamp:
    """The as-of time: `now`, else $TRADESHIP_NOW, else the present, in New York time."""
    raw = now if now is not None else os.environ.get("TRADESHIP_NOW") or None
    stamp = pd.Timestamp.now(tz=NEW_YORK) if raw is None else pd.Timestamp(raw)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(NEW_YORK)
    return stamp.tz_convert(NEW_YORK)


def resolve_source(source: str | None, default: str) -> str:
    return source or os.environ.get("TRADESHIP_SOURCE") or default


def load_history(
    source: str, symbols: Sequence[str], start: Any = None, end: Any = None
) -> pd.DataFrame:
    """Every symbol's adjusted bars as one history frame; any symbol that fails stops it."""
    data = load(source, list(symbols), start, end)
    if data.problems:
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(data.problems.items()))
        raise RunError(f"market data from {source} is incomplete, not deciding on it: {listed}")
    return to_history(data.bars)


def decision_history(
    strategy: Strategy, source: str, symbols: Sequence[str], session: pd.Timestamp
) -> pd.DataFrame:
    """Bars strictly before `session`, enough for the strategy, checked to be current."""
    span = pd.Timedelta(days=int(strategy.warmup_bars() * 1.5) + 30)
    history = history_until(load_history(source, symbols, session - span, session), session)
    expected = previous_session(session)
    if not len(history) or pd.Timestamp(history.index[-1]) < expected:
        last = pd.Timestamp(history.index[-1]).date() if len(history) else "nothing"
        raise RunError(
            f"stale data: the last completed bar from {source} is {last}, but the session "
            f"before {session.date()} is {expected.date()}; not deciding on old prices"
        )
    return history


def run_strategy(
    strategy: Strategy,
    symbols: Sequence[str],
    *,
    strategy_id: str,
    now: Any = None,
    dry_run: bool = False,
    source: str | None = None,
    default_source: str = "yfinance",
    broker: AlpacaBroker | None = None,
) -> list[dict]:
    """Decide for the session of `now` and trade the difference; returns the orders."""
    as_of = resolve_now(now)
    session = decision_session(as_of)
    if not is_session(session):
        print(f"{session.date()} is not an NYSE session: nothing to decide")
        return []
    source = resolve_source(source, default_source)
    history = decision_history(strategy, source, symbols, session)
    if broker is None:
        try:
            broker = broker_from_env()
        except BrokerError as exc:
            if not dry_run:
                raise RunError(str(exc)) from None
            print(f"dry run without a broker ({exc}): assuming an empty account of 100000")
    account = broker.account_snapshot() if broker else {"id": "dry-run", "equity": 100_000.0}
    positions = broker.positions() if broker else {}
    equity = float(account["equity"])
    closes = history["close"].iloc[-1]
    prices = {str(s): float(p) for s, p in closes.items() if pd.notna(p)}
    holdings = {s: q * prices.get(s, 0.0) / equity for s, q in positions.items() if equity > 0}
    targets = strategy.decide(history, holdings, session)
    if targets is None:
        print(f"{session.date()}: not a rebalance session for {strategy.name}: no orders")
        return []
    unpriced = sorted(s for s in positions if s not in prices)
    if unpriced:
        raise RunError(
            f"the account holds {', '.join(unpriced)}, which the strategy's data does not "
            "cover; close them by hand or add them to the universe"
        )
    orders = plan_orders(
        targets,
        positions,
        prices,
        equity,
        strategy_id=strategy_id,
        account=str(account["id"]),
        slot=session.strftime("%Y%m%d"),
    )
    results = []
    for order in orders:
        line = f"{order.side} {order.qty:g} {order.symbol} (id {order.client_order_id})"
        if dry_run or broker is None:
            print(f"dry run: would {line}")
            results.append({**order.as_dict(), "status": "dry_run"})
            continue
        answer = broker.submit(order)
        print(f"sent: {line} -> {answer['status']}")
        results.append({**order.as_dict(), **answer})
    return results
