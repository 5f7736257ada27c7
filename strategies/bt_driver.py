"""The Backtrader strategy that drives any tradeship `Strategy`, in a backtest or live.

Each bar i is the close of session d_i. The driver asks the strategy for the decision for
the next session d_{i+1} with the history of bars through d_i (nothing later), then sends
orders that Backtrader fills at d_{i+1}'s open (or its close, with ``fill="close"``). That is
the same moment and the same inputs a live run during d_{i+1} has.

Backtest: ``history`` is the runner's precomputed frame and bar i reads ``history.iloc[:i+1]``.
Live (``history=None``, e.g. `live.btstore` feeds): the history is rebuilt from the feeds'
own lines at each decision (every field, aligned on dates exactly as
``strategies.history.to_history`` aligns them), the next session comes from ``next_session``
(the broker's calendar), and only a bar every delivering feed reports ``LIVE`` is decided
on: backfilled (``DELAYED``) bars reach ``next()`` and are logged, never traded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt
import pandas as pd

from strategies.base import Strategy
from strategies.history import HISTORY_FIELDS, bars_frame, to_history
from strategies.sizing import target_quantity


@dataclass
class DecisionRecord:
    session: pd.Timestamp
    holdings: dict[str, float]
    targets: dict[str, float] | None  # None: the strategy chose to leave the book alone


@dataclass
class DriverLog:
    """What a backtest records while it runs; the runner turns it into files."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    equity: list[tuple[pd.Timestamp, float]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    bars: list[tuple[pd.Timestamp, bool]] = field(default_factory=list)  # live: (bar, live?)


class DecisionDriver(bt.Strategy):
    """Backtrader adapter: timing, sizing and order flow; the decision is the strategy's."""

    params = (
        ("decider", None),  # the tradeship Strategy (Backtrader reserves "strategy")
        ("history", None),  # to_history(...) frame aligned with every feed; None: live feeds
        ("state", None),  # strategy.prepare(history), computed once by the runner
        ("trade_from", None),  # first session the strategy may trade (after warm-up)
        ("fill", "open"),  # "open" or "close" of the decided session
        ("cash_buffer", 0.01),  # fraction of value kept in cash against gaps at the fill
        ("fractional", False),
        ("log", None),  # DriverLog
        ("on_bar", None),  # progress callback
        ("next_session", None),  # live: callable(bar date) -> the session it decides for
    )

    def __init__(self) -> None:
        self.tradeship: Strategy = self.p.decider
        self.live = self.p.history is None
        if self.live and self.p.next_session is None:
            raise ValueError("a live DecisionDriver (history=None) needs next_session")
        self.sessions: pd.DatetimeIndex = None if self.live else self.p.history.index
        self.feeds = {d._name: d for d in self.datas}
        self.log: DriverLog = self.p.log
        self.on_bar: Callable[[], None] | None = self.p.on_bar

    def prenext(self) -> None:  # every feed has the full index: never long, but be safe
        self.next()

    def next(self) -> None:
        if self.live:
            self.next_live()
            return
        i = len(self) - 1
        self.log.equity.append((self.sessions[i], float(self.broker.getvalue())))
        if self.on_bar is not None:
            self.on_bar()
        if i + 1 >= len(self.sessions):
            return  # the last bar: no later session to trade in
        session = pd.Timestamp(self.sessions[i + 1])
        if self.p.trade_from is not None and session < self.p.trade_from:
            return
        if not self.tradeship.is_rebalance(session, pd.Timestamp(self.sessions[i])):
            return
        history = self.p.history.iloc[: i + 1]
        holdings = self.current_weights()
        targets = self.tradeship.decide(history, holdings, session, self.p.state)
        self.log.decisions.append(DecisionRecord(session, holdings, targets))
        if targets is not None:
            self.rebalance(targets)

    def next_live(self) -> None:
        """One completed session from live feeds: log it; decide and trade if it is live."""
        delivered = [d for d in self.datas if len(d)]
        stamp = max(d.datetime[0] for d in delivered)
        bar = pd.Timestamp(bt.num2date(stamp).date())
        current = [d for d in delivered if d.datetime[0] == stamp]
        live = all(d._laststatus == d.LIVE for d in current)
        self.log.equity.append((bar, float(self.broker.getvalue())))
        self.log.bars.append((bar, live))
        if self.on_bar is not None:
            self.on_bar()
        if not live:
            return  # backfill (or a broken connection): history for indicators, no trade
        session = pd.Timestamp(self.p.next_session(bar))
        if self.p.trade_from is not None and session < self.p.trade_from:
            return
        if not self.tradeship.is_rebalance(session, bar):
            return
        history = self.live_history()
        holdings = self.current_weights()
        targets = self.tradeship.decide(history, holdings, session)
        self.log.decisions.append(DecisionRecord(session, holdings, targets))
        if targets is not None:
            self.rebalance(targets)

    def live_history(self) -> pd.DataFrame:
        """The feeds' bars so far as one history frame, built exactly as in a backtest."""
        bars = {}
        for name, feed in self.feeds.items():
            n = len(feed)
            days = [bt.num2date(x) for x in feed.datetime.get(size=n)] if n else []
            columns = {f: list(getattr(feed, f).get(size=n)) if n else [] for f in HISTORY_FIELDS}
            bars[name] = bars_frame(days, columns)
        return to_history(bars)

    def current_weights(self) -> dict[str, float]:
        value = float(self.broker.getvalue())
        weights = {}
        for name, feed in self.feeds.items():
            size = self.getposition(feed).size
            if size and value > 0:
                weights[name] = float(size) * float(feed.close[0]) / value
        return dict(sorted(weights.items()))

    def rebalance(self, targets: dict[str, float]) -> None:
        """Orders that move positions to `targets`, sells first so buys have the cash."""
        equity = float(self.broker.getvalue())
        sells, buys = [], []
        held = {n for n, f in self.feeds.items() if self.getposition(f).size}
        for name in sorted(set(targets) | held):
            feed = self.feeds.get(name)
            if feed is None:
                self.log.rejected.append(f"{name}: no price feed for a target")
                continue
            wanted = target_quantity(
                targets.get(name, 0.0),
                equity,
                float(feed.close[0]),
                cash_buffer=float(self.p.cash_buffer),
                fractional=bool(self.p.fractional),
            )
            if wanted == 0 and targets.get(name, 0.0) > 0:
                self.log.rejected.append(
                    f"{name}: one share costs more than its target weight allows "
                    "(fractional shares would buy it)"
                )
            delta = wanted - self.getposition(feed).size
            if abs(delta) > 1e-9:
                (sells if delta < 0 else buys).append((feed, delta))
        exectype = bt.Order.Close if self.p.fill == "close" else bt.Order.Market
        for feed, delta in sells:
            self.sell(data=feed, size=-delta, exectype=exectype)
        for feed, delta in buys:
            self.buy(data=feed, size=delta, exectype=exectype)

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.log.fills.append(
                {
                    "date": bt.num2date(order.executed.dt).date().isoformat(),
                    "symbol": order.data._name,
                    "side": "buy" if order.isbuy() else "sell",
                    "quantity": abs(float(order.executed.size)),
                    "price": float(order.executed.price),
                    "commission": float(order.executed.comm),
                }
            )
        elif order.status in (order.Canceled, order.Margin, order.Rejected):
            self.log.rejected.append(
                f"{order.data._name}: {order.getstatusname()} order for {order.created.size}"
            )
