"""What an exported module's `run()` does: load point-in-time data, decide, trade the gap.

This module is inlined into every exported file, with the strategy's own code. It reads
only completed sessions: a run during session t sees bars through t-1, exactly what the
backtest's decision for t saw, so the two decide on identical inputs.

A run never places an order it cannot account for: the kill switch, a closed market, a
blocked account, stale data or a breached risk limit each end it with a clear message and
zero orders, and every order is journaled before it is sent (see live.journal).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from live.alpaca_broker import AlpacaBroker, BrokerError, BrokerRejected, broker_from_env
from live.execution import PlannedOrder, plan_orders
from live.journal import Journal, new_run_id, open_journal
from live.risk import account_gate_problems, risk_problems
from live.settings import LiveSettings
from marketdata.calendar import is_session, previous_session
from marketdata.load import load
from strategies.base import Strategy, decision_session
from strategies.history import history_until, to_history

NEW_YORK = "America/New_York"
DRY_RUN_EQUITY = 100_000.0


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
    try:
        data = load(source, list(symbols), start, end)
    except ValueError as exc:
        raise RunError(f"market data from {source} could not be loaded: {exc}") from None
    rejected = {k: v for k, v in data.problems.items() if k not in data.bars}
    if rejected or not data.bars:
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(rejected.items())) or "no bars"
        raise RunError(f"market data from {source} is incomplete, not deciding on it: {listed}")
    return to_history(data.bars)


def history_hash(history: pd.DataFrame) -> str:
    """A fingerprint of exactly the bars a decision read, for the journal."""
    digest = hashlib.sha256()
    digest.update("|".join(map(str, history.columns)).encode())
    digest.update(history.index.asi8.tobytes())
    digest.update(history.to_numpy(dtype="float64").tobytes())
    return digest.hexdigest()


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


def effective_positions(
    positions: dict[str, float], open_orders: list[dict[str, Any]]
) -> dict[str, float]:
    """Positions as they will be once open orders fill: never buy twice what is on its way."""
    result = dict(positions)
    for order in open_orders:
        sign = 1.0 if order["side"] == "buy" else -1.0
        result[order["symbol"]] = result.get(order["symbol"], 0.0) + sign * order["remaining"]
    return {s: q for s, q in result.items() if abs(q) > 1e-9}


def reconcile(journal: Journal, broker: AlpacaBroker | None) -> int:
    """Settle orders an earlier run left `planned`/`unknown` by asking the broker."""
    if broker is None:
        return 0
    settled = 0
    for row in journal.unsettled_orders():
        found = broker.order_by_client_id(row["client_order_id"])
        state = "never_sent" if found is None else "sent"
        journal.update_order(
            row["run_id"],
            row["client_order_id"],
            state=state,
            broker_order_id=None if found is None else found["id"],
            broker_status=None if found is None else found["status"],
        )
        settled += 1
    return settled


def run_strategy(
    strategy: Strategy,
    symbols: Sequence[str],
    *,
    strategy_id: str,
    strategy_hash: str = "",
    now: Any = None,
    dry_run: bool = False,
    source: str | None = None,
    default_source: str = "yfinance",
    slot: str | None = None,
    submit: bool = True,
    broker: AlpacaBroker | None = None,
    journal: Journal | None = None,
    settings: LiveSettings | None = None,
) -> list[dict]:
    """Decide for the session of `now` and trade the difference; returns the orders.

    `slot` names the decision slot in client order ids (default: the session date); a
    scheduler passes its intended fire time so a duplicate delivery maps to the same ids.
    `submit=False` reconciles and reports without sending (a run that arrived too late).
    """
    settings = settings or LiveSettings()
    as_of = resolve_now(now)
    session = decision_session(as_of)
    slot = slot or session.strftime("%Y%m%d")
    journal = journal or open_journal(settings.journal or None)
    run_id = new_run_id(slot)
    journal.start_run(
        {
            "run_id": run_id,
            "strategy_id": strategy_id,
            "slot": slot,
            "as_of": as_of.isoformat(),
            "dry_run": bool(dry_run),
            "strategy_hash": strategy_hash,
        }
    )
    try:
        orders = _run(
            strategy,
            symbols,
            strategy_id,
            as_of,
            session,
            slot,
            run_id,
            dry_run,
            resolve_source(source, default_source),
            submit,
            broker,
            journal,
            settings,
        )
    except (RunError, BrokerError) as exc:
        journal.update_run(run_id, status="blocked", message=str(exc))
        raise RunError(str(exc)) from None
    except Exception as exc:
        journal.update_run(run_id, status="error", message=f"{type(exc).__name__}: {exc}")
        raise
    return orders


def _say(journal: Journal, run_id: str, status: str, message: str) -> list[dict]:
    print(message)
    journal.update_run(run_id, status=status, message=message)
    return []


def _run(
    strategy: Strategy,
    symbols: Sequence[str],
    strategy_id: str,
    as_of: pd.Timestamp,
    session: pd.Timestamp,
    slot: str,
    run_id: str,
    dry_run: bool,
    source: str,
    submit: bool,
    broker: AlpacaBroker | None,
    journal: Journal,
    settings: LiveSettings,
) -> list[dict]:
    killed = settings.kill_switch_reason()
    if killed and not dry_run:
        return _say(journal, run_id, "blocked", f"no orders: {killed}")
    if broker is None:
        try:
            broker = broker_from_env(settings)
        except BrokerError as exc:
            if not dry_run:
                raise
            print(
                f"dry run without a broker ({exc}): assuming an empty account of "
                f"{DRY_RUN_EQUITY:,.0f}"
            )
    settled = reconcile(journal, broker)
    if settled:
        print(f"reconciled {settled} order(s) an earlier run left unsettled")
    if not submit:
        return _say(journal, run_id, "reconciled", "arrived too late for its slot: reconciled only")
    if not is_session(session):
        return _say(
            journal, run_id, "closed", f"{session.date()} is not an NYSE session: no orders"
        )

    account = (
        broker.account_snapshot()
        if broker
        else {"id": "dry-run", "equity": DRY_RUN_EQUITY, "buying_power": None}
    )
    if broker is not None:
        gate = account_gate_problems(account)
        if gate:
            return _say(journal, run_id, "blocked", "no orders: " + "; ".join(gate))
        if not settings.allow_closed_market and not broker.market_is_open():
            return _say(
                journal,
                run_id,
                "closed",
                "the market is closed: no orders "
                "(TRADESHIP_ALLOW_CLOSED_MARKET=1 to queue them anyway)",
            )

    history = decision_history(strategy, source, symbols, session)
    positions = broker.positions() if broker else {}
    pending = broker.open_orders() if broker else []
    equity = float(account["equity"])
    closes = history["close"].iloc[-1]
    prices = {str(s): float(p) for s, p in closes.items() if pd.notna(p)}
    unpriced = sorted(s for s in positions if s not in prices)
    if unpriced:
        raise RunError(
            f"the account holds {', '.join(unpriced)}, which the strategy's data does not "
            "cover; close them by hand or add them to the universe"
        )
    holdings = {s: q * prices[s] / equity for s, q in positions.items() if equity > 0}
    targets = strategy.decide(history, holdings, session)
    journal.update_run(run_id, data_hash=history_hash(history), decision=targets)
    if targets is None:
        return _say(
            journal,
            run_id,
            "no_rebalance",
            f"{session.date()}: not a rebalance session for {strategy.name}: no orders",
        )

    plan = plan_orders(
        targets,
        effective_positions(positions, pending),
        prices,
        equity,
        strategy_id=strategy_id,
        account=str(account["id"]),
        slot=slot,
        cash_buffer=settings.cash_buffer,
        fractional=settings.fractional,
        min_notional=settings.min_notional,
    )
    problems = risk_problems(targets, plan, settings, account.get("buying_power"))
    if problems:
        return _say(
            journal, run_id, "blocked", "risk limits block this run: " + "; ".join(problems)
        )
    results = [
        _execute(order, run_id, dry_run or broker is None, broker, journal) for order in plan
    ]
    journal.update_run(run_id, status="done", message=f"{len(results)} order(s)")
    return results


def _execute(
    order: PlannedOrder, run_id: str, dry_run: bool, broker: AlpacaBroker | None, journal: Journal
) -> dict:
    line = f"{order.side} {order.qty:g} {order.symbol} (id {order.client_order_id})"
    journal.record_order(
        run_id,
        {
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "state": "dry_run" if dry_run else "planned",
        },
    )
    if dry_run:
        print(f"dry run: would {line}")
        return {**order.as_dict(), "status": "dry_run", "outcome": "dry_run"}
    try:
        answer = broker.submit_once(order)
    except BrokerRejected as exc:
        # the broker refused this one order (e.g. buying power after a gap at the open):
        # like Backtrader refusing it in the backtest, the run goes on with the others
        journal.update_order(run_id, order.client_order_id, state="rejected", answer=str(exc))
        print(f"rejected: {line}: {exc}")
        return {**order.as_dict(), "status": "rejected", "outcome": "rejected"}
    except BrokerError:
        journal.update_order(run_id, order.client_order_id, state="unknown")
        raise
    journal.update_order(
        run_id,
        order.client_order_id,
        state="sent",
        broker_order_id=answer["id"],
        broker_status=answer["status"],
        answer=answer,
    )
    print(f"{answer['outcome']}: {line} -> {answer['status']}")
    return {
        **order.as_dict(),
        "status": answer["status"],
        "outcome": answer["outcome"],
        "broker_order_id": answer["id"],
    }
