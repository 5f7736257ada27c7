"""The sandbox's simulated market clock, on the NYSE calendar of `marketdata`.

All instants are timezone-aware `datetime`s in UTC; session labels are `datetime.date`s.
Regular hours are 09:30 New York to the session's close (16:00, or the early close that
`marketdata.calendar.session_close` knows about).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from marketdata import is_session, nyse_sessions, previous_session
from marketdata.calendar import session_close

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
OPEN_TIME = dt.time(9, 30)
TRADING_TIME = dt.time(15, 0)  # where the sandbox puts the clock in a session
T_PLUS_ONE_FROM = dt.date(2024, 5, 28)  # US equities settle T+1 from this day, T+2 before
_SEARCH_DAYS = 15  # NYSE never closes for longer than this (longest: 1933 / 9-11)


def to_utc(value: dt.datetime) -> dt.datetime:
    """Aware instant in UTC; a naive datetime is taken as New York wall time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=NEW_YORK)
    return value.astimezone(UTC)


def parse_instant(text: str) -> dt.datetime:
    """RFC 3339 / ISO 8601 text to a UTC instant (naive text = New York wall time)."""
    cleaned = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        return to_utc(dt.datetime.fromisoformat(cleaned))
    except OverflowError:  # e.g. 0001-01-01T00:00+14:00 has no UTC instant
        raise ValueError(f"{text!r} is outside the range of representable times") from None


def parse_day(text: str) -> dt.date:
    """'YYYY-MM-DD' (or an ISO timestamp, whose New York date is taken) to a date."""
    cleaned = text.strip()
    if len(cleaned) == 10:
        return dt.date.fromisoformat(cleaned)
    return parse_instant(cleaned).astimezone(NEW_YORK).date()


def session_open_at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, OPEN_TIME, tzinfo=NEW_YORK).astimezone(UTC)


@lru_cache(maxsize=1)
def _session_closes() -> dict[dt.date, dt.datetime]:
    """Every NYSE session's close (UTC), read once from the calendar `marketdata` builds:
    a calendar request spans up to 15,000 sessions, one lookup each would take seconds."""
    from marketdata.calendar import _calendar_xnys  # the same calendar object, in bulk

    closes = _calendar_xnys().closes
    return {
        day.date(): close.to_pydatetime().astimezone(UTC)
        for day, close in zip(closes.index, closes.array, strict=True)
    }


def session_close_at(day: dt.date) -> dt.datetime:
    found = _session_closes().get(day)
    if found is None:  # not a session: let marketdata say so
        return session_close(day).to_pydatetime().astimezone(UTC)
    return found


def trading_time(day: dt.date) -> dt.datetime:
    """Where the sandbox puts its clock in session `day`: 15:00 New York, or one hour
    before an early close (12:00 on a 13:00 close) so the market is open there too."""
    if not is_session(day):
        raise ValueError(f"{day} is not an NYSE session")
    at = dt.datetime.combine(day, TRADING_TIME, tzinfo=NEW_YORK).astimezone(UTC)
    close = session_close_at(day)
    return min(at, close - dt.timedelta(hours=1))


def sessions_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [ts.date() for ts in nyse_sessions(first, last)]


def next_session(day: dt.date) -> dt.date:
    """The first NYSE session strictly after calendar date `day`."""
    found = sessions_between(day + dt.timedelta(days=1), day + dt.timedelta(days=_SEARCH_DAYS))
    if not found:
        raise ValueError(f"no NYSE session in the {_SEARCH_DAYS} days after {day}")
    return found[0]


def session_on_or_before(day: dt.date) -> dt.date:
    return day if is_session(day) else previous_session(day).date()


def ny_date(instant: dt.datetime) -> dt.date:
    return instant.astimezone(NEW_YORK).date()


@dataclass(frozen=True)
class Phase:
    """Where `now` sits in the NYSE calendar.

    `session` is the latest session that has opened at or before `now` (the one prices are
    marked in); `is_open` says whether `now` is inside its regular hours.
    """

    now: dt.datetime
    session: dt.date
    is_open: bool
    next_open: dt.datetime
    next_close: dt.datetime


def phase(now: dt.datetime) -> Phase:
    now = to_utc(now)
    today = ny_date(now)
    session = session_on_or_before(today)
    if session_open_at(session) > now:  # a session day before 09:30
        session = previous_session(session).date()
    close = session_close_at(session)
    is_open = session_open_at(session) <= now < close
    upcoming = next_session(session)
    return Phase(
        now=now,
        session=session,
        is_open=is_open,
        next_open=session_open_at(upcoming),
        next_close=close if is_open else session_close_at(upcoming),
    )


def opens_between(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """Sessions whose 09:30 open lies in the half-open interval (start, end]."""
    if end <= start:
        return []
    days = sessions_between(ny_date(start), ny_date(end))
    return [d for d in days if start < session_open_at(d) <= end]
