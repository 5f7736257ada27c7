"""`AlpacaStore`: one connection to Alpaca for a Backtrader run (feeds + broker).

Shape of alpaca-backtrader-api's store, on alpaca-py::

    store = AlpacaStore(key_id=..., secret_key=..., paper=True)
    cerebro.setbroker(store.getbroker())
    cerebro.adddata(store.getdata(dataname="AAPL", timeframe=bt.TimeFrame.Days,
                                  fromdate=datetime(2024, 1, 2)))

How bars arrive (see `live/btstore/__init__.py` for the whole story): the store polls
Alpaca's clock every `poll_interval` seconds; when a session's daily bar has become
complete (its close + `settle` has passed), it asks the Market Data API for every feed's
bars since the last ones it published, in one request, and publishes them to the feeds
at once, so Backtrader sees each session once, on every feed together. Polling happens in
Cerebro's own thread, inside the first feed's `_load`: no background thread, no lock.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from live.alpaca_broker import BrokerAuthError, BrokerError, BrokerRejected
from live.btstore.rest import RestAdapter
from live.btstore.sessions import NEW_YORK, SessionCalendar, alpaca_calendar_fetcher
from live.settings import ALPACA_LIVE_URL, ALPACA_PAPER_HOST, ALPACA_PAPER_URL, LiveSettings

_log = logging.getLogger("live.btstore")
DEFAULT_BACKFILL_DAYS = 365  # calendar days fetched before the first live bar without fromdate


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "date"):  # pandas Timestamp
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def default_data_url(base_url: str) -> str | None:
    """Alpaca's own trading hosts pair with Alpaca's data host (None: alpaca-py's default);
    anything else (the sandbox, a proxy) serves the Market Data API itself."""
    explicit = os.environ.get("APCA_API_DATA_URL")
    if explicit:
        return explicit
    url = base_url.rstrip("/")
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return url
    return None if host in (ALPACA_PAPER_HOST, urlsplit(ALPACA_LIVE_URL).hostname) else url


class AlpacaStore:
    """Alpaca for Backtrader: credentials, the REST adapter, the calendar, bar polling.

    Arguments (all optional; credentials and limits default to the environment, as
    `live.settings.LiveSettings` reads it):

    - ``key_id``, ``secret_key``: Alpaca keys (default APCA_API_KEY_ID / _SECRET_KEY).
    - ``paper`` (default: TRADESHIP_PAPER, itself default True; alpaca-backtrader-api
      defaulted to live): ``paper=False`` needs Alpaca's live URL and
      TRADESHIP_ALLOW_LIVE=1, or the store refuses to be built.
    - ``base_url``: trading API (default APCA_API_BASE_URL, else Alpaca's paper/live URL).
    - ``data_url``: Market Data API (default APCA_API_DATA_URL; Alpaca's data host for
      Alpaca's URLs; the trading URL for anything else, e.g. the local sandbox).
    - ``data_feed``: "iex", "sip", ... (default: the account's).
    - ``settings``: a `LiveSettings` (risk limits, kill switch, timeouts, retry budget).
    - ``poll_interval`` (30 s): how often the clock is read while waiting for a bar.
    - ``settle`` (15 min): how long after a session's close its daily bar counts as final
      (also keeps requests out of the SIP feed's most recent 15 minutes).
    - ``bar_grace`` (300 s): how long to wait for a symbol's bar once other symbols have
      theirs, before the session is published without it.
    - ``usePolygon``: accepted for compatibility; must be False (Polygon is gone).
    """

    BrokerCls: type | None = None  # set by live.btstore.broker
    DataCls: type | None = None  # set by live.btstore.feed

    def __init__(
        self,
        key_id: str | None = None,
        secret_key: str | None = None,
        paper: bool | None = None,
        *,
        base_url: str | None = None,
        data_url: str | None = None,
        data_feed: str | None = None,
        settings: LiveSettings | None = None,
        poll_interval: float = 30.0,
        settle: dt.timedelta | float = dt.timedelta(minutes=15),
        bar_grace: float = 300.0,
        usePolygon: bool = False,  # noqa: N803 - alpaca-backtrader-api's name
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if usePolygon:
            raise ValueError("usePolygon=True is not supported: bars come from Alpaca's data API")
        settings = settings or LiveSettings()
        paper = settings.paper if paper is None else bool(paper)
        update: dict[str, Any] = {"paper": paper}
        if key_id:
            update["api_key_id"] = SecretStr(key_id)
        if secret_key:
            update["api_secret_key"] = SecretStr(secret_key)
        if base_url:
            update["base_url"] = base_url
        elif not os.environ.get("APCA_API_BASE_URL") and settings.base_url == ALPACA_PAPER_URL:
            update["base_url"] = ALPACA_PAPER_URL if paper else ALPACA_LIVE_URL
        self.settings = settings.model_copy(update=update)
        self.rest = RestAdapter(
            self.settings,
            data_url=data_url if data_url is not None else default_data_url(self.settings.base_url),
            sleep=sleep,
            monotonic=monotonic,
        )
        self.data_feed = data_feed
        self.poll_interval = float(poll_interval)
        self.settle = settle if isinstance(settle, dt.timedelta) else dt.timedelta(seconds=settle)
        self.bar_grace = float(bar_grace)
        self.calendar = SessionCalendar(alpaca_calendar_fetcher(self.rest))
        self._sleep, self._monotonic = sleep, monotonic

        self.feeds: list[Any] = []
        self.broker: Any = None
        self.notifs: collections.deque = collections.deque()
        self._order: list[Any] | None = None  # the feeds in Cerebro's delivery order
        self._next_poll = 0.0
        self._due: dt.date | None = None  # last completed session at the last good poll
        self.clock_time: dt.datetime | None = None  # the broker's clock at the last good poll
        self._published_through: dt.date | None = None
        self._first_due: dt.date | None = None  # what "historical" feeds stop at
        self._waiting: dict[dt.date, float] = {}  # session -> when it was first incomplete
        self._failures = 0
        self._over = False
        self.stats = collections.Counter()  # polls, bar requests, bars, failures

    # -- Backtrader's store interface ------------------------------------------------------
    def getdata(self, *args: Any, **kwargs: Any) -> Any:
        """A daily feed for one symbol (``dataname``); see `AlpacaData` for its params."""
        return self.DataCls(*args, store=self, **kwargs)

    def getbroker(self, *args: Any, **kwargs: Any) -> Any:
        """The Backtrader broker trading this store's account; see `AlpacaBroker`."""
        if self.broker is None:
            self.broker = self.BrokerCls(*args, store=self, **kwargs)
        return self.broker

    def start(self, data: Any = None, broker: Any = None) -> None:
        if broker is not None:
            self.broker = broker

    def stop(self) -> None:
        pass

    def put_notification(self, msg: str, *args: Any, **kwargs: Any) -> None:
        _log.info(msg)
        self.notifs.append((msg, args, kwargs))

    def get_notifications(self) -> list[tuple[str, tuple, dict]]:
        out = []
        while self.notifs:
            out.append(self.notifs.popleft())
        return out

    # -- what feeds, broker and strategies ask -------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return sorted({feed.symbol for feed in self.feeds})

    def register(self, feed: Any) -> None:
        if not any(f is feed for f in self.feeds):
            self.feeds.append(feed)
            self._order = None

    def next_session(self, day: Any) -> dt.date:
        """The session after `day` on the broker's calendar: what a bar of `day` decides."""
        return self.calendar.next_session(_as_date(day))

    def current_bar_day(self) -> dt.date | None:
        """The session of the bar Backtrader is on (the latest any feed delivered)."""
        days = [feed.bar_day() for feed in self.feeds if len(feed)]
        return max(days) if days else None

    def completed_session(self) -> dt.date | None:
        """The latest completed session the last good poll saw."""
        return self._due

    def is_live(self) -> bool:
        """Whether the latest completed session has been published (and nothing failed)."""
        return (
            not self._over
            and self._failures == 0
            and self._due is not None
            and self._published_through == self._due
        )

    # -- polling (Cerebro's thread, from the leading feed's _load) ----------------------------
    def leader(self) -> Any:
        """The feed that polls: the first active feed in Cerebro's delivery order, so every
        feed sees a published session in the same round of Cerebro's loop."""
        if self._order is None:
            env = getattr(self.feeds[0], "_env", None) if self.feeds else None
            datas = list(getattr(env, "datas", None) or self.feeds)
            order = sorted(datas, key=lambda d: (d._timeframe, d._compression))
            mine = {id(f) for f in self.feeds}
            self._order = [d for d in order if id(d) in mine]
        for feed in self._order:
            if feed.started and not feed.over:
                return feed
        return None

    def pending(self) -> bool:
        """Published bars some running feed has not delivered yet."""
        return any(feed.queued() for feed in self.feeds if feed.started and not feed.over)

    def sync(self, wait: float) -> None:
        """Poll if a poll is due, else wait up to `wait` seconds (Backtrader's qcheck)."""
        if self._over:
            return
        remaining = self._next_poll - self._monotonic()
        if remaining > 0:
            if wait > 0:
                self._sleep(min(wait, remaining))
            if self._next_poll > self._monotonic():
                return
        self.poll()

    def poll(self) -> None:
        """Read the clock; fetch and publish the bars that became complete."""
        self._next_poll = self._monotonic() + self.poll_interval
        self.stats["polls"] += 1
        try:
            clock = self.rest.once("reading the market clock", self.rest.client.get_clock)
            now = clock.timestamp
            if now.tzinfo is None:
                now = now.replace(tzinfo=NEW_YORK)
            self.clock_time = now
            due = self.calendar.last_completed(now, self.settle)
            self.calendar.next_session(due)  # cached now: strategies ask it in next()
            if self._first_due is None:
                self._first_due = due
            if self._published_through is None or due > self._published_through:
                self._fetch(due)
            self._due = due
        except (BrokerAuthError, BrokerRejected) as exc:
            self._give_up(str(exc))
            return
        except (BrokerError, ValueError) as exc:
            self._broken(str(exc))
            return
        if self._failures:
            self.put_notification(f"reconnected after {self._failures} failed poll(s)")
            self._failures = 0
            for feed in self.feeds:
                if not feed.queued():
                    feed.set_status(feed.LIVE if self.is_live() else feed.DELAYED)

    def _fetch(self, due: dt.date) -> None:
        from alpaca.data.enums import Adjustment
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        overlap = self._published_through  # refetched: has Alpaca re-adjusted the past?
        if self._published_through is not None:
            first = self._published_through + dt.timedelta(days=1)
        else:
            starts = [feed.first_day() for feed in self.feeds]
            known = [d for d in starts if d is not None]
            first = min(known) if known else due - dt.timedelta(days=DEFAULT_BACKFILL_DAYS)
        if not self.symbols or first > due:
            self._published_through = due
            return
        start = dt.datetime.combine(overlap or first, dt.time(0), tzinfo=NEW_YORK)
        end = dt.datetime.combine(due, dt.time(12), tzinfo=NEW_YORK)  # due's bar, not the next
        request = StockBarsRequest(
            symbol_or_symbols=self.symbols,
            timeframe=TimeFrame.Day,
            start=start,
            end=end,
            adjustment=Adjustment.ALL,
            feed=self.data_feed,
        )
        self.stats["bar_requests"] += 1
        barset = self.rest.once(
            "reading daily bars", lambda: self.rest.data_client.get_stock_bars(request)
        )
        rows: dict[dt.date, dict[str, tuple[float, ...]]] = collections.defaultdict(dict)
        for symbol, bars in barset.data.items():
            for bar in bars:
                day = bar.timestamp.astimezone(NEW_YORK).date()
                values = (
                    float(bar.open),
                    float(bar.high),
                    float(bar.low),
                    float(bar.close),
                    float(bar.volume),
                )
                if first <= day <= due:  # never a bar of a session still in progress
                    rows[day][symbol] = values
                elif day == overlap:
                    self._check_adjustment(symbol, day, values)
        days = sorted(rows)
        last = self._complete_through(rows, due)
        self._publish({d: rows[d] for d in days if d <= last}, due)
        self._published_through = max([d for d in (self._published_through, last) if d is not None])

    def _check_adjustment(self, symbol: str, day: dt.date, values: tuple[float, ...]) -> None:
        """A split or dividend re-adjusts every earlier bar (adjustment=all): the session
        published last comes back different. Rescale what the feeds hold, so the history a
        strategy reads stays on one basis (as a backtest on re-adjusted data would see)."""
        for feed in self.feeds:
            old = feed.last_values
            if feed.symbol != symbol or feed.last_published != day or old is None:
                continue
            price = values[3] / old[3] if old[3] else 1.0
            volume = values[4] / old[4] if old[4] else 1.0
            if abs(price - 1.0) > 1e-9 or abs(volume - 1.0) > 1e-9:
                feed.readjust(price, volume)
                self.put_notification(
                    f"{symbol}: Alpaca re-adjusted its bars through {day} (split or dividend): "
                    f"prices x{price:.6g}, volume x{volume:.6g} in the history already delivered"
                )

    def _complete_through(self, rows: dict, due: dt.date) -> dt.date:
        """`due`, unless some symbol that traded the session before has no bar for it yet
        (bars can lag the close): then the day before, until `bar_grace` runs out."""
        earlier = [d for d in rows if d < due]
        if earlier:
            expected = set(rows[max(earlier)])
        elif self._published_through is not None:
            expected = {
                feed.symbol for feed in self.feeds if feed.last_published == self._published_through
            }
        else:
            expected = set()
        missing = sorted(expected - set(rows.get(due, {})))
        if not missing:
            self._waiting.pop(due, None)
            return due
        since = self._waiting.setdefault(due, self._monotonic())
        if self._monotonic() - since >= self.bar_grace:
            self.put_notification(
                f"no {due} bar for {', '.join(missing)} after {self.bar_grace:g} s: "
                f"{due} is published without it"
            )
            self._waiting.pop(due, None)
            return due
        return max(earlier) if earlier else (self._published_through or due - dt.timedelta(1))

    def _publish(self, rows: dict[dt.date, dict[str, tuple[float, ...]]], due: dt.date) -> None:
        if not rows:
            return
        count = 0
        for day in sorted(rows):
            for feed in self.feeds:
                values = rows[day].get(feed.symbol)
                if values is not None and feed.push(day, values, live=day == due):
                    count += 1
        self.stats["bars"] += count
        first, last = min(rows), max(rows)
        kind = "live" if last == due else "backfill"
        self.put_notification(f"published {count} bar(s) {first}..{last} ({kind})")
        if self.broker is not None:
            self.broker.mark_stale()

    def _broken(self, why: str) -> None:
        self._failures += 1
        self.stats["failures"] += 1
        lead = self.leader()
        reconnect = True if lead is None else bool(lead.p.reconnect)
        limit = -1 if lead is None else int(lead.p.reconnections)
        if not reconnect or (limit >= 0 and self._failures > limit):
            self._give_up(f"{why}; no more reconnection attempts")
            return
        wait = 5.0 if lead is None else float(lead.p.reconntimeout)
        self._next_poll = self._monotonic() + wait
        self.put_notification(f"connection broken ({why}); retrying in {wait:g} s")
        for feed in self.feeds:
            feed.set_status(feed.CONNBROKEN)

    def _give_up(self, why: str) -> None:
        self._over = True
        self.put_notification(f"disconnected: {why}")
        for feed in self.feeds:
            feed.set_status(feed.DISCONNECTED)

    def finished(self, feed: Any) -> bool:
        """Whether `feed` will get no more bars (it has delivered what it had)."""
        if self._over:
            return True
        through = self._published_through
        if through is None:
            return False
        if feed.p.historical and self._first_due is not None and through >= self._first_due:
            return True
        end = feed.last_day()
        return end is not None and through >= end
