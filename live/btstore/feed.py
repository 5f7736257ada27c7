"""`AlpacaData`: a live daily feed for one symbol, backfilled first, then one bar per session.

Bars reach the feed only through its store (`AlpacaStore`), which publishes each
completed session to every feed at once. The feed delivers them in order, one per
`_load`, never a date it has already delivered (deduplicated by session), and tells
Backtrader what kind of bar it is: ``DELAYED`` for backfill (history before the latest
completed session), ``LIVE`` for the latest completed session — the only bar a strategy
may trade on; ``CONNBROKEN`` while polls fail; ``DISCONNECTED`` when the feed ends.
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

import backtrader as bt
from backtrader.feed import DataBase

from live.btstore.store import AlpacaStore, _as_date


class AlpacaData(DataBase):
    """Alpaca daily bars for ``dataname`` (a symbol), through an `AlpacaStore`.

    Params (alpaca-backtrader-api's names):

    - ``qcheck`` (0.5): seconds Cerebro's loop may wait for a bar before it runs again
      (notifications, timers); waiting happens in one feed only.
    - ``historical`` (False): deliver the backfill (``fromdate`` .. the latest completed
      session, or ``todate``), every bar ``DELAYED`` (nothing trades), and stop.
    - ``backfill_start`` (True): deliver bars before the first live one. False: the first
      bar ``next()`` sees is the live one (indicators start cold).
    - ``backfill`` (True): after a dropped connection, deliver the sessions missed (as
      DELAYED bars) before the live one. False: skip them.
    - ``reconnect`` (True), ``reconnections`` (-1 = forever), ``reconntimeout`` (5.0 s):
      what a failed poll leads to (the store uses its first feed's values).
    - ``fromdate`` / ``todate``: the usual Backtrader bounds; ``todate`` also ends a live
      run once that session has been delivered.

    Only ``timeframe=bt.TimeFrame.Days`` with ``compression=1`` is served.
    """

    params = (
        ("qcheck", 0.5),
        ("historical", False),
        ("backfill_start", True),
        ("backfill", True),
        ("reconnect", True),
        ("reconnections", -1),
        ("reconntimeout", 5.0),
    )

    def __init__(self, store: AlpacaStore | None = None, **kwargs: Any) -> None:
        if store is None:
            raise ValueError("AlpacaData needs its store: use store.getdata(dataname=...)")
        self.store = store
        self.symbol = str(self.p.dataname).strip().upper()
        if not self.p.name:
            self.p.name = self.symbol
        for bound in ("fromdate", "todate"):  # Backtrader wants datetimes; dates are common
            value = getattr(self.p, bound)
            if value is not None and not isinstance(value, dt.datetime):
                setattr(self.p, bound, dt.datetime.combine(_as_date(value), dt.time(0)))
        self._queue: collections.deque = collections.deque()
        self.started = False  # added to a Cerebro that runs (feeds left out never block)
        self.over = False
        self.last_published: dt.date | None = None  # newest session pushed by the store
        self.last_values: tuple[float, ...] | None = None  # ... and its o, h, l, c, v
        self._last_delivered: dt.date | None = None
        self._seen_live = False
        self.delivered = collections.Counter()  # "live" / "backfill" bars given to Backtrader
        store.register(self)

    # -- Backtrader plumbing -----------------------------------------------------------------
    def islive(self) -> bool:
        """Cerebro runs live feeds bar by bar (no preload, no runonce)."""
        return True

    def setenvironment(self, env: Any) -> None:
        super().setenvironment(env)
        env.addstore(self.store)

    def start(self) -> None:
        super().start()
        self.store.start(data=self)
        self._queue.clear()
        self.started, self.over = True, False
        if self._timeframe != bt.TimeFrame.Days or self._compression != 1:
            self.put_notification(self.NOTSUPPORTED_TF)
            self.over = True
            return
        self.put_notification(self.DELAYED)

    def haslivedata(self) -> bool:
        return bool(self._queue)

    def _load(self) -> bool | None:
        while True:
            if self.over:
                return False
            if not self._queue and self.store.leader() is self and not self.store.pending():
                self.store.sync(self._qcheck)
            if self._queue:
                day, values, live = self._queue.popleft()
                if self._last_delivered is not None and day <= self._last_delivered:
                    continue  # already delivered: a session reaches next() once
                self._deliver(day, values, live)
                return True
            if self.store.finished(self):
                self.over = True
                self.put_notification(self.DISCONNECTED)
                return False
            return None

    def _deliver(self, day: dt.date, values: tuple[float, ...], live: bool) -> None:
        self.set_status(self.LIVE if live else self.DELAYED)
        self.lines.datetime[0] = bt.date2num(dt.datetime.combine(day, dt.time(0)))
        (
            self.lines.open[0],
            self.lines.high[0],
            self.lines.low[0],
            self.lines.close[0],
            self.lines.volume[0],
        ) = values
        self.lines.openinterest[0] = 0.0
        self._last_delivered = day
        self.delivered["live" if live else "backfill"] += 1

    # -- what the store and broker use -------------------------------------------------------
    def set_status(self, status: int) -> None:
        """Record a status change (Backtrader hands it to ``notify_data``)."""
        self.put_notification(status)

    def is_live(self) -> bool:
        return self._laststatus == self.LIVE

    def queued(self) -> int:
        return len(self._queue)

    def push(self, day: dt.date, values: tuple[float, ...], live: bool) -> bool:
        """Queue one session's bar from the store; False when it is not for this feed."""
        if self.last_published is not None and day <= self.last_published:
            return False  # the same session twice (a refetch after a reconnect): once only
        first, last = self.first_day(), self.last_day()
        if (first is not None and day < first) or (last is not None and day > last):
            return False
        live = live and not self.p.historical  # a historical run never trades
        if not live:
            keep = self.p.backfill if self._seen_live else self.p.backfill_start
            if not keep:
                self.last_published, self.last_values = day, None
                return False
        else:
            self._seen_live = True
        self._queue.append((day, values, live))
        self.last_published, self.last_values = day, values
        return True

    def readjust(self, price: float, volume: float) -> None:
        """Rescale every bar this feed holds (delivered and queued) after a corporate action:
        prices by `price`, volume by `volume`. Indicator values already computed keep the
        old basis (a history rebuilt from the lines, `strategies.history`, does not)."""
        for name in ("open", "high", "low", "close", "volume"):
            array = getattr(self.lines, name).array
            factor = volume if name == "volume" else price
            for i in range(len(array)):
                array[i] *= factor
        factors = (price, price, price, price, volume)
        self._queue = collections.deque(
            (day, tuple(v * f for v, f in zip(values, factors, strict=True)), live)
            for day, values, live in self._queue
        )
        if self.last_values is not None:
            self.last_values = tuple(v * f for v, f in zip(self.last_values, factors, strict=True))

    def first_day(self) -> dt.date | None:
        return None if self.p.fromdate is None else _as_date(self.p.fromdate)

    def last_day(self) -> dt.date | None:
        return None if self.p.todate is None else _as_date(self.p.todate)

    def bar_day(self) -> dt.date:
        """The session of the bar at index 0."""
        return bt.num2date(self.lines.datetime[0]).date()


AlpacaStore.DataCls = AlpacaData
