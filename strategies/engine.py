"""Running a Backtrader strategy class on a history frame: the one engine behind backtests,
exported modules' replays and lookahead checks.

`run_strategy_class` puts a user's `bt.Strategy` (unchanged) into a Cerebro with tradeship's
feeds, a `RecordingBroker` and a `DecisionRecorder`; optionally it keeps `next()` quiet
before a first session (`trade_from`: the warm-up) and puts a given book in place at the
last bar (an exported module's replay: the account's holdings, not the simulated ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import pandas as pd

from strategies.context import RunContext, attach
from strategies.feeds import history_feeds
from strategies.recorder import CASH, DecisionLog, DecisionRecorder, RecordingBroker


@dataclass
class EngineRun:
    log: DecisionLog
    strategy: bt.Strategy
    cerebro: bt.Cerebro


def quiet_until(cls: type[bt.Strategy], bars: int) -> type[bt.Strategy]:
    """`cls` whose next() first runs once `bars` bars exist (prenext() before): the warm-up.

    Backtrader's own minimum-period mechanism, raised: indicators still see every bar.
    """

    class WarmedUp(cls):  # type: ignore[valid-type, misc]
        def _periodset(self) -> None:
            super()._periodset()
            self._minperiods = [max(m, bars) for m in self._minperiods]

    WarmedUp.__name__ = cls.__name__
    WarmedUp.__qualname__ = cls.__qualname__
    WarmedUp.__module__ = cls.__module__
    return WarmedUp


class BookBroker(RecordingBroker):
    """Puts a given book (shares and cash) in place at one bar, before the strategy's next().

    Orders the replay's earlier bars left open are cancelled: live, the account's own open
    orders are accounted for by the execution layer.
    """

    params = (("book_at", None), ("book", None))

    def next(self) -> None:
        super().next()
        if self.p.book_at is None:
            return
        datas = self._book_datas()
        if not datas or datas[0].datetime[0] != self.p.book_at:
            return
        for order in [o for o in list(self.pending) + list(self.submitted) if o is not None]:
            if order.alive():
                super().cancel(order)
        book = dict(self.p.book)
        for data in datas:
            size = float(book.get(data._name, 0.0))
            self.positions[data] = bt.Position(size, float(data.close[0]) if size else 0.0)
        self.cash = float(book.get(CASH, 0.0))
        self._get_value()
        self.touched.clear()

    def _book_datas(self) -> list:
        return list(getattr(self, "_tradeship_datas", []))


def run_strategy_class(
    cls: type[bt.Strategy],
    params: Mapping[str, Any],
    history: pd.DataFrame,
    *,
    context: RunContext,
    members: pd.DataFrame | None = None,
    after_last: pd.Timestamp | None = None,
    trade_from: pd.Timestamp | None = None,
    book: Mapping[str, float] | None = None,
    cash: float = 100_000.0,
    configure_broker: Callable[[bt.Cerebro], None] | None = None,
    on_bar: Callable[[], None] | None = None,
) -> EngineRun:
    """Run `cls(**params)` over `history` and return what it asked for at every bar."""
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    attach(cerebro, context)
    broker = BookBroker(
        book_at=None if book is None else bt.date2num(pd.Timestamp(history.index[-1])),
        book=dict(book or {}),
    )
    cerebro.setbroker(broker)
    cerebro.broker.setcash(cash)
    if configure_broker is not None:
        configure_broker(cerebro)
    feeds = history_feeds(history, members, after_last)
    for name, feed in feeds:
        cerebro.adddata(feed, name=name)
    broker._tradeship_datas = [feed for _, feed in feeds]
    strategy_cls = cls
    if trade_from is not None:
        position = int(history.index.searchsorted(pd.Timestamp(trade_from)))
        strategy_cls = quiet_until(cls, position)
    cerebro.addstrategy(strategy_cls, **dict(params))
    log = DecisionLog()
    cerebro.addanalyzer(DecisionRecorder, log=log, on_bar=on_bar)
    (strategy,) = cerebro.run(runonce=False, preload=True)
    log.rejected.extend(context.notes)
    return EngineRun(log=log, strategy=strategy, cerebro=cerebro)


def minimum_bars(cls: type[bt.Strategy], params: Mapping[str, Any], symbols: list[str]) -> int:
    """Bars `cls` needs before its first next(): Backtrader's minimum period of its indicators.

    Found by building the strategy on one-bar feeds (indicators are created, nothing runs).
    """
    found: list[int] = []

    class Probe(cls):  # type: ignore[valid-type, misc]
        def _periodset(self) -> None:
            super()._periodset()
            found.append(max(self._minperiods or [1]))
            self.env.runstop()

        def start(self) -> None:
            pass

        def prenext(self) -> None:
            pass

        def nextstart(self) -> None:
            pass

        def next(self) -> None:
            pass

    day = pd.Timestamp("2000-01-03")
    columns = pd.MultiIndex.from_product(
        [["open", "high", "low", "close", "volume"], sorted(symbols) or ["X"]],
        names=["field", "symbol"],
    )
    probe = pd.DataFrame(
        [[1.0] * len(columns)], index=pd.DatetimeIndex([day], name="date"), columns=columns
    )
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    attach(cerebro, RunContext())
    for name, feed in history_feeds(probe):
        cerebro.adddata(feed, name=name)
    cerebro.addstrategy(Probe, **dict(params))
    cerebro.run(runonce=False, preload=True)
    return int(found[0]) if found else 1
