"""What each bar's `next()` asked for, recorded without touching the user's strategy.

`RecordingBroker` notes which symbols got an order created or cancelled; `DecisionRecorder`
(an analyzer, so it runs right after the strategy's `next()` at every bar) turns that into a
`BarDecision`: the book at the bar (shares and cash) and the target position of every
touched symbol (position + what its live orders still have to fill). Strategies that move
to weights through `order_target_weights` also record the weights they asked for.

The backtest writes these as decisions.csv; an exported module's replay returns the last
one; parity compares the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import backtrader as bt
import pandas as pd

from strategies.context import run_context
from strategies.rebalance import bar_date, next_session

CASH = "$CASH"  # the book's cash entry


class RecordingBroker(bt.brokers.BackBroker):
    """Backtrader's own broker, noting the symbols whose orders change at each bar."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.touched: set[str] = set()

    def submit(self, order, check=True):
        self.touched.add(order.data._name)
        return super().submit(order, check)

    def cancel(self, order, bracket=False):
        self.touched.add(order.data._name)
        return super().cancel(order, bracket)

    def next(self) -> None:
        """Executes the bar's orders; what it cancels itself (a refused order's bracket
        siblings) is the broker's doing, not a decision of the strategy's next()."""
        super().next()
        self.touched.clear()

    def drain(self) -> set[str]:
        touched, self.touched = self.touched, set()
        return touched


@dataclass
class BarDecision:
    bar: pd.Timestamp  # the completed bar next() ran at
    session: pd.Timestamp | None  # the session its orders trade in
    book: dict[str, float]  # shares per symbol held, and CASH
    targets: dict[str, float] | None  # target shares per symbol it changed (None: nothing)
    weights: dict[str, float] | None = None  # weights it asked for, if it said


def live_orders(broker: bt.brokers.BackBroker) -> list[bt.Order]:
    """Orders created and not yet completed, cancelled, expired or refused."""
    orders = list(getattr(broker, "submitted", [])) + [o for o in broker.pending if o is not None]
    return [o for o in orders if o.alive()]


def book_of(strategy: bt.Strategy) -> dict[str, float]:
    book = {
        data._name: float(strategy.getposition(data).size)
        for data in strategy.datas
        if strategy.getposition(data).size
    }
    book[CASH] = float(strategy.broker.getcash())
    return dict(sorted(book.items()))


def targets_of(strategy: bt.Strategy, names: set[str]) -> dict[str, float]:
    """Position plus the unfilled part of every live order, for each of `names`."""
    targets = {name: 0.0 for name in names}
    feeds = {data._name: data for data in strategy.datas}
    for name in names:
        if name in feeds:
            targets[name] = float(strategy.getposition(feeds[name]).size)
    for order in live_orders(strategy.broker):
        name = order.data._name
        if name in targets:
            targets[name] += float(order.executed.remsize)
    return {name: round(size, 9) for name, size in sorted(targets.items())}


@dataclass
class DecisionLog:
    decisions: list[BarDecision] = field(default_factory=list)
    equity: list[tuple[pd.Timestamp, float]] = field(default_factory=list)
    fills: list[dict] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    # the book at every bar with a next session, keyed by that session (one dict object
    # shared by the bars between two fills)
    books: dict[pd.Timestamp, dict[str, float]] = field(default_factory=dict)


class DecisionRecorder(bt.Analyzer):
    """Records every bar's equity and every bar whose next() asked for something."""

    params = (("log", None), ("on_bar", None))

    def start(self) -> None:
        self.log: DecisionLog = self.p.log if self.p.log is not None else DecisionLog()
        self.on_bar: Callable[[], None] | None = self.p.on_bar
        self._book: dict[str, float] | None = None  # None: changed since it was last read

    def prenext(self) -> None:
        self._record()

    def nextstart(self) -> None:
        self._record()

    def next(self) -> None:
        self._record()

    def notify_order(self, order: bt.Order) -> None:
        if order.executed.size:
            self._book = None
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

    def _record(self) -> None:
        strategy = self.strategy
        bar = bar_date(strategy.datas[0])
        self.log.equity.append((bar, float(strategy.broker.getvalue())))
        if self.on_bar is not None:
            self.on_bar()
        broker = strategy.broker
        session = next_session(strategy)
        if self._book is None or self._book.get(CASH) != broker.getcash():
            self._book = book_of(strategy)
        if session is not None:
            self.log.books[session] = self._book
        touched = broker.drain() if isinstance(broker, RecordingBroker) else set()
        context = run_context(strategy)
        weights, context.declared = context.declared, None
        if not touched and weights is None:
            return
        if weights is not None:  # a move to weights speaks for every name it weighs or holds
            touched |= set(weights) | {name for name in self._book if name != CASH}
        self.log.decisions.append(
            BarDecision(
                bar=bar,
                session=session,
                book=self._book,
                targets=targets_of(strategy, touched),
                weights=weights,
            )
        )
