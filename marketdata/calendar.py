"""NYSE (XNYS) trading sessions from the ``exchange_calendars`` library.

Why a library: holiday rules, one-off closures (Hurricane Sandy 2012-10-29/30,
state funerals) and early closes are easy to get wrong by hand.
All functions take/return tz-naive midnight timestamps (session labels).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

import pandas as pd

CALENDAR_FIRST_DAY = "1885-01-01"
CALENDAR_TZ = "America/New_York"


@lru_cache(maxsize=1)
def _calendar_xnys() -> Any:
    """Build the XNYS calendar once per process, with explicit bounds.

    An explicit start matters: the library default is "20 years before today",
    which would make results depend on the date the code runs.
    """
    import exchange_calendars as xcals

    last = f"{max(2035, dt.date.today().year + 2)}-12-31"
    return xcals.get_calendar("XNYS", start=CALENDAR_FIRST_DAY, end=last)


def calendar_day(value: Any) -> pd.Timestamp:
    """Turn a date-like value into a tz-naive midnight Timestamp (ns).

    tz-aware values are first converted to New York time, so an instant maps to
    the NYSE trading date it belongs to.
    """
    ts = pd.Timestamp(value)
    if ts.tz is not None:
        ts = ts.tz_convert(CALENDAR_TZ).tz_localize(None)
    return ts.normalize().as_unit("ns")


def nyse_sessions(start: Any, end: Any) -> pd.DatetimeIndex:
    """NYSE sessions in [start, end] inclusive, as a tz-naive DatetimeIndex named "date"."""
    sessions = _calendar_xnys().sessions
    lo = sessions.searchsorted(calendar_day(start), side="left")
    hi = sessions.searchsorted(calendar_day(end), side="right")
    return pd.DatetimeIndex(sessions[lo:hi].as_unit("ns"), name="date", freq=None)


def is_session(date: Any) -> bool:
    """True if the NYSE traded on that calendar date (time of day is ignored)."""
    sessions = _calendar_xnys().sessions
    day = calendar_day(date)
    pos = sessions.searchsorted(day)
    return bool(pos < len(sessions) and sessions[pos] == day)


def previous_session(ts: Any) -> pd.Timestamp:
    """The last NYSE session strictly before the calendar date of ``ts``."""
    sessions = _calendar_xnys().sessions
    day = calendar_day(ts)
    pos = sessions.searchsorted(day, side="left")
    if pos == 0:
        raise ValueError(f"no NYSE session before {day.date()}")
    return pd.Timestamp(sessions[pos - 1]).as_unit("ns")


def session_close(date: Any) -> pd.Timestamp:
    """UTC close time of the session on ``date`` (handles early closes)."""
    day = calendar_day(date)
    if not is_session(day):
        raise ValueError(f"{day.date()} is not an NYSE session")
    return pd.Timestamp(_calendar_xnys().session_close(day))
