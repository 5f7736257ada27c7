"""NYSE calendar helpers (backed by exchange_calendars, XNYS)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from marketdata.calendar import is_session, nyse_sessions, previous_session, session_close


def test_sessions_skip_weekends_holidays_and_special_closures():
    sessions = nyse_sessions("2012-10-26", "2012-11-02")
    # Hurricane Sandy closed the NYSE on 2012-10-29 and 2012-10-30.
    assert [d.strftime("%Y-%m-%d") for d in sessions] == [
        "2012-10-26",
        "2012-10-31",
        "2012-11-01",
        "2012-11-02",
    ]
    assert sessions.name == "date"
    assert sessions.tz is None
    assert sessions.dtype == "datetime64[ns]"


def test_holidays_are_not_sessions():
    assert not is_session("2024-07-04")  # Independence Day
    assert not is_session(dt.date(2024, 3, 29))  # Good Friday
    assert not is_session(pd.Timestamp("2024-07-06"))  # Saturday
    assert is_session("2024-07-05")
    assert is_session(pd.Timestamp("2024-07-05 15:30"))  # time of day ignored


def test_previous_session_is_strictly_before():
    assert previous_session("2024-07-08") == pd.Timestamp("2024-07-05")  # Monday -> Friday
    assert previous_session("2024-07-05") == pd.Timestamp("2024-07-03")  # skips July 4th
    assert previous_session("2024-07-06") == pd.Timestamp("2024-07-05")  # Saturday


def test_tz_aware_instants_map_to_new_york_date():
    # 2024-07-09 02:00 UTC is still the evening of 2024-07-08 in New York.
    assert previous_session(pd.Timestamp("2024-07-09 02:00", tz="UTC")) == pd.Timestamp(
        "2024-07-05"
    )


def test_old_dates_are_covered():
    # The shared data starts in 1999; the calendar must not stop at "20 years ago".
    assert len(nyse_sessions("1999-11-01", "1999-11-30")) == 21
    with pytest.raises(ValueError, match="not an NYSE session"):
        session_close("2024-07-04")
    assert session_close("2024-07-03") == pd.Timestamp("2024-07-03 17:00", tz="UTC")  # early
