"""What an exported module's `run()` does: load point-in-time data, decide, trade the gap.

This module is inlined into every exported file, with the strategy's own code. It reads
only completed sessions: a run during session t sees bars through t-1, exactly what the
backtest's decision for t saw, so the two decide on identical inputs.

A run never places an order it cannot account for: the kill switch, a closed market, a
blocked account, stale data or a breached risk limit each end it with a clear message and
zero orders, and every order is journaled before it is sent (see live.journal).

The rules it keeps (issue #12):

- **The broker's clock is the truth.** A run that can place orders acts at the broker's
  time (`/v2/clock`); a `now`/TRADESHIP_NOW more than `TRADESHIP_CLOCK_TOLERANCE` (300 s)
  away is refused. Dry runs may replay any moment.
- **Every symbol is current.** Each symbol's own last bar must be the previous session
  (the history frame forward-fills; the check reads each symbol's raw bars).
- **Fills where the backtest filled.** `fill="open"`: market-on-open (opg) orders, sent
  before 09:28 New York; `"close"`: market-on-close (cls), before the close minus 10
  minutes; `"market"`: plain market orders, which do not fill at the backtest's price.
- **One sizing, one plan, one gate** (`live.execution`, `live.risk`): the book valued at
  the last close, target shares, `target - (position + open orders)`, the limits judged on
  the book the orders leave.
- **Partial fills.** An order that filled in part and expired is completed by the next
  run of the strategy (see `unfinished_targets`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from live.alpaca_broker import BrokerError, BrokerPort, BrokerRejected, broker_from_env
from live.execution import (
    FILL_TIME_IN_FORCE,
    PlannedOrder,
    decision_holdings,
    plan_orders,
    target_shares,
)
from live.journal import Journal, new_run_id, open_journal
from live.risk import account_gate_problems, pretrade_problems, trading_refusal
from live.schedule import LIVE_FILL_MODES, order_session, order_window_problem
from live.settings import LiveSettings
from marketdata.calendar import is_session, previous_session
from marketdata.load import load
from strategies.base import Strategy
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


def load_bars(source: str, symbols: Sequence[str], start: Any = None, end: Any = None):
    """Every symbol's adjusted bars (marketdata.MarketData); any symbol that fails stops it."""
    try:
        data = load(source, list(symbols), start, end)
    except ValueError as exc:
        raise RunError(f"market data from {source} could not be loaded: {exc}") from None
    rejected = {k: v for k, v in data.problems.items() if k not in data.bars}
    if rejected or not data.bars:
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(rejected.items())) or "no bars"
        raise RunError(f"market data from {source} is incomplete, not deciding on it: {listed}")
    return data


def load_history(
    source: str, symbols: Sequence[str], start: Any = None, end: Any = None
) -> pd.DataFrame:
    """Every symbol's adjusted bars as one history frame; any symbol that fails stops it."""
    return to_history(load_bars(source, symbols, start, end).bars)


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
    """Bars strictly before `session`, enough for the strategy, every symbol checked current.

    Each symbol's own last bar must be the previous session: the history frame forward-fills
    a symbol that stopped updating, so checking the frame's last date would trade a stale
    close (one stale symbol stops the run, named).
    """
    span = pd.Timedelta(days=int(strategy.warmup_bars() * 1.5) + 30)
    data = load_bars(source, symbols, session - span, session)
    expected = previous_session(session)
    lasts = {}
    for symbol, frame in sorted(data.bars.items()):
        before = frame.index[frame.index < session]
        lasts[symbol] = pd.Timestamp(before[-1]) if len(before) else None
    stale = {s: d for s, d in lasts.items() if d is None or d < expected}
    if stale:
        listed = ", ".join(
            f"{s} (last bar {d.date() if d is not None else 'none'})" for s, d in stale.items()
        )
        raise RunError(
            f"stale data from {source}: the session before {session.date()} is "
            f"{expected.date()}, but {listed}; not deciding on old prices: fix the data "
            "source or remove the symbol from the universe"
        )
    return history_until(to_history(data.bars), session)


def effective_positions(
    positions: dict[str, float], open_orders: list[dict[str, Any]]
) -> dict[str, float]:
    """Positions as they will be once open orders fill: never buy twice what is on its way."""
    result = dict(positions)
    for order in open_orders:
        sign = 1.0 if order["side"] == "buy" else -1.0
        result[order["symbol"]] = result.get(order["symbol"], 0.0) + sign * order["remaining"]
    return {s: q for s, q in result.items() if abs(q) > 1e-9}


def reconcile(journal: Journal, broker: BrokerPort | None) -> int:
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


UNFILLED_END_STATES = ("expired", "canceled", "done_for_day")


def unfinished_targets(
    journal: Journal, broker: BrokerPort | None, strategy_id: str, slot: str
) -> tuple[dict[str, float], str | None]:
    """Target shares of the latest earlier decision whose orders ended unfilled, in part.

    The partial-fill rule: a day (or opg/cls) order that fills in part and then expires
    leaves the book short of the decided target. The next run of the strategy (its next
    slot, on a session that is not a rebalance) trades the remainder towards that same
    target under its own slot's ids, so the book does not wait for the next rebalance; a
    new decision simply supersedes it. Returns ({symbol: target shares}, that run's slot).
    """
    if broker is None:
        return {}, None
    runs = [
        r
        for r in journal.recent_runs(50)
        if r.get("strategy_id") == strategy_id
        and r.get("targets")
        and not r.get("dry_run")
        and str(r.get("slot", "")) < slot
    ]
    if not runs:
        return {}, None
    latest = runs[0]
    targets = latest["targets"]
    targets = json.loads(targets) if isinstance(targets, str) else dict(targets)
    wanted = {}
    for row in latest.get("orders", []):
        if row.get("state") != "sent" or row["symbol"] not in targets:
            continue
        found = broker.order_by_client_id(row["client_order_id"])
        if found and found["status"] in UNFILLED_END_STATES and found["remaining"] > 1e-9:
            wanted[row["symbol"]] = float(targets[row["symbol"]])
    return wanted, str(latest["slot"])


def requested_now(now: Any = None) -> pd.Timestamp | None:
    """The as-of time asked for (`now`, else $TRADESHIP_NOW), New York time; None if neither."""
    raw = now if now is not None else os.environ.get("TRADESHIP_NOW") or None
    return None if raw is None else resolve_now(raw)


def trading_time(
    requested: pd.Timestamp | None, broker_clock: pd.Timestamp, tolerance: float
) -> pd.Timestamp:
    """The time a run that can place orders acts at: the broker's clock, always.

    A requested as-of time (run(now=...), TRADESHIP_NOW) that disagrees with it by more than
    `tolerance` seconds is refused: deciding on a past date's bars would trade them today.
    """
    clock = pd.Timestamp(broker_clock).tz_convert(NEW_YORK)
    if requested is not None and abs((requested - clock).total_seconds()) > tolerance:
        raise RunError(
            f"the as-of time {requested.isoformat()} (run(now=...) or TRADESHIP_NOW) is not the "
            f"broker's clock {clock.isoformat()}: a run that places orders acts at the "
            "broker's time; unset TRADESHIP_NOW, or use --dry-run to replay a past date"
        )
    return clock


@dataclass(frozen=True)
class ExportedDecision:
    """An exported module's `decide(history, holdings, now)` as run_strategy drives it:
    the book in shares and cash in, target shares out (the Backtrader-class contract)."""

    decide_fn: Callable[..., dict[str, float] | None]
    bars: int
    name: str
    decision_units: str = "shares"

    def warmup_bars(self) -> int:
        return self.bars

    def decide(self, history: pd.DataFrame, holdings: dict, now: Any) -> dict | None:
        return self.decide_fn(history, holdings, now)


def run_strategy(
    strategy: Strategy | Callable[..., dict[str, float] | None],
    symbols: Sequence[str],
    *,
    strategy_id: str,
    warmup_bars: int | None = None,
    strategy_name: str | None = None,
    strategy_hash: str = "",
    now: Any = None,
    dry_run: bool = False,
    source: str | None = None,
    default_source: str = "yfinance",
    slot: str | None = None,
    submit: bool = True,
    fill: str = "market",
    broker: BrokerPort | None = None,
    journal: Journal | None = None,
    settings: LiveSettings | None = None,
) -> list[dict]:
    """Decide for the session of `now` and trade the difference; returns the orders.

    `fill` matches the backtest's fill assumption: "open" sends market-on-open orders
    (opg, before 09:28 New York, for the next session when run after a close), "close"
    market-on-close orders (cls, before the close minus 10 minutes), "market" plain day
    market orders (fill at once: NOT the price the backtest assumed). A run that can place
    orders acts at the broker's clock; `now` (or TRADESHIP_NOW) must agree with it (dry
    runs may replay any time). `slot` names the decision slot in client order ids
    (default: the session date); a scheduler passes its intended fire time so a duplicate
    delivery maps to the same ids. `submit=False` reconciles and reports without sending.

    `strategy` is an exported module's `decide` function (with `warmup_bars`, the completed
    bars it reads, and `strategy_name`), or an object with `decide`, `warmup_bars()` and
    `name` (its `decision_units`, default "weights", name the contract it speaks).
    """
    if warmup_bars is not None:
        strategy = ExportedDecision(strategy, int(warmup_bars), strategy_name or strategy_id)
    if fill not in LIVE_FILL_MODES:
        raise RunError(f"unknown fill mode {fill!r}: use one of {', '.join(LIVE_FILL_MODES)}")
    settings = settings or LiveSettings()
    asked = requested_now(now)
    as_of = asked if asked is not None else resolve_now(None)
    session = order_session(as_of, fill)
    journal = journal or open_journal(settings.journal or None)
    run_id = new_run_id(slot or session.strftime("%Y%m%d"))
    journal.start_run(
        {
            "run_id": run_id,
            "strategy_id": strategy_id,
            "slot": slot or session.strftime("%Y%m%d"),
            "as_of": as_of.isoformat(),
            "dry_run": bool(dry_run),
            "strategy_hash": strategy_hash,
        }
    )
    request = RunRequest(
        strategy, list(symbols), strategy_id, asked, slot, run_id, bool(dry_run), fill,
        resolve_source(source, default_source), submit,
    )  # fmt: skip
    try:
        orders = _run(request, broker, journal, settings)
    except (RunError, BrokerError) as exc:
        journal.update_run(run_id, status="blocked", message=str(exc))
        raise RunError(str(exc)) from None
    except Exception as exc:
        journal.update_run(run_id, status="error", message=f"{type(exc).__name__}: {exc}")
        raise
    return orders


@dataclass(frozen=True)
class RunRequest:
    """What one run was asked to do (run_strategy's arguments, resolved)."""

    strategy: Strategy
    symbols: list[str]
    strategy_id: str
    asked: pd.Timestamp | None  # the as-of time requested, if any
    slot: str | None
    run_id: str
    dry_run: bool
    fill: str
    source: str
    submit: bool


def _say(journal: Journal, run_id: str, status: str, message: str) -> list[dict]:
    print(message)
    journal.update_run(run_id, status=status, message=message)
    return []


def _run(
    req: RunRequest, broker: BrokerPort | None, journal: Journal, settings: LiveSettings
) -> list[dict]:
    run_id = req.run_id
    killed = settings.kill_switch_reason()
    if killed and not req.dry_run:
        return _say(journal, run_id, "blocked", f"no orders: {killed}")
    if broker is None:
        try:
            broker = broker_from_env(settings)
        except BrokerError as exc:
            if not req.dry_run:
                raise
            print(
                f"dry run without a broker ({exc}): assuming an empty account of "
                f"{DRY_RUN_EQUITY:,.0f}"
            )
    clock = broker.clock() if broker is not None else None
    if clock is not None and not req.dry_run and req.submit:
        as_of = trading_time(req.asked, clock["timestamp"], settings.clock_tolerance)
    elif req.asked is not None:  # a dry run (or a reconcile-only run) may name any moment
        as_of = req.asked
    else:
        as_of = clock["timestamp"] if clock is not None else resolve_now(None)
    session = order_session(as_of, req.fill)
    slot = req.slot or session.strftime("%Y%m%d")
    journal.update_run(run_id, as_of=as_of.isoformat(), slot=slot)
    settled = reconcile(journal, broker)
    if settled:
        print(f"reconciled {settled} order(s) an earlier run left unsettled")
    if not req.submit:
        return _say(journal, run_id, "reconciled", "arrived too late for its slot: reconciled only")
    if not is_session(session):
        return _say(
            journal, run_id, "closed", f"{session.date()} is not an NYSE session: no orders"
        )
    if not req.dry_run:
        window = order_window_problem(as_of, session, req.fill)
        if window:
            return _say(journal, run_id, "blocked", f"no orders: {window}")

    account = (
        broker.account_snapshot()
        if broker
        else {"id": "dry-run", "cash": DRY_RUN_EQUITY, "buying_power": None}
    )
    if broker is not None:
        refusal = (
            "; ".join(account_gate_problems(account))
            if req.dry_run
            else trading_refusal(settings, account)
        )
        if refusal:
            return _say(journal, run_id, "blocked", f"no orders: {refusal}")
        market_open = clock["is_open"]
        if req.fill == "market" and not settings.allow_closed_market and not market_open:
            return _say(
                journal,
                run_id,
                "closed",
                "the market is closed: no orders "
                "(TRADESHIP_ALLOW_CLOSED_MARKET=1 to queue them anyway)",
            )

    history = decision_history(req.strategy, req.source, req.symbols, session)
    positions = broker.positions() if broker else {}
    pending = broker.open_orders() if broker else []
    cash = float(account["cash"])
    closes = history["close"].iloc[-1]
    prices = {str(s): float(p) for s, p in closes.items() if pd.notna(p)}
    unpriced = sorted(s for s in positions if s not in prices)
    if unpriced:
        raise RunError(
            f"the account holds {', '.join(unpriced)}, which the strategy's data does not "
            "cover; close them by hand or add them to the universe"
        )
    units = getattr(req.strategy, "decision_units", "weights")
    holdings = decision_holdings(positions, cash, prices, units)
    decision = req.strategy.decide(history, holdings, session)
    journal.update_run(run_id, data_hash=history_hash(history), decision=decision)
    if decision is None:
        wanted, earlier = unfinished_targets(journal, broker, req.strategy_id, slot)
        if not wanted:
            return _say(
                journal,
                run_id,
                "no_rebalance",
                f"{session.date()}: not a rebalance session for {req.strategy.name}: no orders",
            )
        print(
            f"completing the unfilled remainder of slot {earlier}'s orders for "
            f"{', '.join(sorted(wanted))} (partly filled, then expired)"
        )
    else:
        wanted = target_shares(
            decision,
            positions,
            cash,
            prices,
            units=units,
            cash_buffer=settings.cash_buffer,
            fractional=settings.fractional,
        )
    journal.update_run(run_id, targets=wanted)
    effective = effective_positions(positions, pending)
    plan = plan_orders(
        wanted,
        effective,
        prices,
        strategy_id=req.strategy_id,
        account=str(account["id"]),
        slot=slot,
        time_in_force=FILL_TIME_IN_FORCE[req.fill],
        min_notional=settings.min_notional,
    )
    problems = pretrade_problems(
        plan, positions, cash, prices, settings, account.get("buying_power"), effective
    )
    if problems:
        return _say(
            journal, run_id, "blocked", "risk limits block this run: " + "; ".join(problems)
        )
    results = [
        _execute(order, run_id, req.dry_run or broker is None, broker, journal) for order in plan
    ]
    journal.update_run(run_id, status="done", message=f"{len(results)} order(s)")
    return results


def _execute(
    order: PlannedOrder, run_id: str, dry_run: bool, broker: BrokerPort | None, journal: Journal
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


def cli_main(argv: Sequence[str] | None, run: Callable[..., list[dict]]) -> int:
    """The exported module's command line: parse `argv`, call `run`, say what happened.

    Unknown arguments are an error (exit 2), never a run: `--dryrun` must not trade.
    """
    parser = argparse.ArgumentParser(
        description="Run the exported strategy once: decide for the current session and "
        "trade the difference at Alpaca (APCA_API_* credentials from the environment).",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="decide and print the orders; send none"
    )
    parser.add_argument(
        "--now",
        metavar="ISO-TIME",
        help="as-of time (New York if no zone); with orders it must match the broker's clock",
    )
    parser.add_argument("--source", help="market data source (default: the module's)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        orders = run(now=args.now, dry_run=args.dry_run, source=args.source)
    except (RunError, BrokerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(orders)} order(s)")
    return 0
