"""The broker's market calendar: which daily bars are complete, which session comes next.

Read from Alpaca's `GET /v2/calendar` (the sandbox serves the NYSE calendar there), cached,
and extended when a date outside the cached span is asked about. A daily bar of session d
is *complete* once the clock is past d's close (early closes included) plus a settling
delay, so a bar still being formed is never delivered.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
_MARGIN = dt.timedelta(days=40)  # fetched around what was asked, so few refetches happen


class SessionCalendar:
    """Sessions and their closes; `fetch(first, last)` returns [(date, close_utc), ...]."""

    def __init__(self, fetch: Callable[[dt.date, dt.date], list[tuple[dt.date, dt.datetime]]]):
        self._fetch = fetch
        self._days: list[dt.date] = []
        self._closes: dict[dt.date, dt.datetime] = {}
        self._span: tuple[dt.date, dt.date] | None = None

    def _ensure(self, first: dt.date, last: dt.date) -> None:
        if self._span is not None and self._span[0] <= first and last <= self._span[1]:
            return
        lo, hi = first - _MARGIN, last + _MARGIN
        if self._span is not None:
            lo, hi = min(lo, self._span[0]), max(hi, self._span[1])
        rows = self._fetch(lo, hi)
        self._closes = {day: close for day, close in rows}
        self._days = sorted(self._closes)
        self._span = (lo, hi)

    def is_session(self, day: dt.date) -> bool:
        self._ensure(day, day)
        return day in self._closes

    def next_session(self, day: dt.date) -> dt.date:
        """The first session strictly after `day`."""
        self._ensure(day, day + dt.timedelta(days=15))
        pos = bisect.bisect_right(self._days, day)
        if pos >= len(self._days):
            raise ValueError(f"the broker's calendar has no session after {day}")
        return self._days[pos]

    def last_completed(self, now: dt.datetime, settle: dt.timedelta) -> dt.date:
        """The latest session whose close + `settle` is at or before `now`."""
        today = now.astimezone(NEW_YORK).date()
        self._ensure(today - dt.timedelta(days=20), today)
        pos = bisect.bisect_right(self._days, today)
        for day in reversed(self._days[max(0, pos - 15) : pos]):
            if self._closes[day] + settle <= now:
                return day
        raise ValueError(f"the broker's calendar has no completed session before {now}")


def alpaca_calendar_fetcher(rest) -> Callable[[dt.date, dt.date], list]:
    """`fetch` for `SessionCalendar` through the adapter (one attempt per call)."""

    def fetch(first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.datetime]]:
        from alpaca.trading.requests import GetCalendarRequest

        request = GetCalendarRequest(start=first, end=last)
        rows = rest.once("reading the market calendar", lambda: rest.client.get_calendar(request))
        return [(row.date, row.close.replace(tzinfo=NEW_YORK).astimezone(dt.UTC)) for row in rows]

    return fetch
