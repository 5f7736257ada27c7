"""Issue #12 rules that need no broker: the paper/live URL (item 1), early closes (item 4),
fill modes' schedules and cut-offs (item 5)."""

from __future__ import annotations

import pandas as pd
import pytest

from live.schedule import Schedule, order_session, order_window_problem, schedule_for_fill
from live.settings import LiveSettings, broker_url_kind
from marketdata.calendar import nyse_sessions, session_close

LIVE_SPELLINGS = [
    "https://api.alpaca.markets",
    "https://API.alpaca.markets",
    "https://api.alpaca.markets:443",
    "https://api.alpaca.markets.",
    "https://api.alpaca.markets./v2",
    "http://api.alpaca.markets",
    "https://Api.Alpaca.Markets:443/",
    "https://paper-api.alpaca.markets.evil.example",  # "paper" in the name is not the host
    "https://example.com/paper-api.alpaca.markets",
]
PAPER_SPELLINGS = [
    "https://paper-api.alpaca.markets",
    "https://PAPER-API.alpaca.markets.",
    "https://paper-api.alpaca.markets:443/",
    "http://127.0.0.1:8765",
    "http://localhost:8765",
    "http://[::1]:8765",
    "http://127.0.0.2:9000",
]
UNPARSABLE = [
    " https://api.alpaca.markets",  # a leading space
    "https://api.alpaca.markets ",
    "api.alpaca.markets",  # no scheme
    "ftp://paper-api.alpaca.markets",
    "https://",
    "https://api.alpaca.markets:notaport",
    "http://[::1",
    "",
]


@pytest.mark.parametrize("url", LIVE_SPELLINGS)
def test_every_spelling_of_a_non_paper_host_is_live_and_needs_the_opt_in(url):
    assert broker_url_kind(url) == "live"
    problem = LiveSettings(base_url=url).broker_config_problem()
    assert problem is not None and "LIVE endpoint" in problem
    assert (
        "TRADESHIP_ALLOW_LIVE=1" in LiveSettings(base_url=url, paper=False).broker_config_problem()
    )
    assert LiveSettings(base_url=url, paper=False, allow_live=True).broker_config_problem() is None


@pytest.mark.parametrize("url", PAPER_SPELLINGS)
def test_paper_host_and_loopback_are_paper(url):
    assert broker_url_kind(url) == "paper"
    assert LiveSettings(base_url=url).broker_config_problem() is None


@pytest.mark.parametrize("url", UNPARSABLE)
def test_a_url_that_does_not_parse_is_refused_in_every_mode(url):
    with pytest.raises(ValueError, match="is not a URL"):
        broker_url_kind(url)
    for flags in ({}, {"paper": False, "allow_live": True}):
        assert "is not a URL" in LiveSettings(base_url=url, **flags).broker_config_problem()


def test_live_url_from_the_environment_is_refused_without_the_opt_in(monkeypatch):
    monkeypatch.setenv("APCA_API_BASE_URL", "https://API.alpaca.markets:443")
    for name in ("TRADESHIP_PAPER", "TRADESHIP_ALLOW_LIVE"):
        monkeypatch.delenv(name, raising=False)
    assert "LIVE endpoint" in LiveSettings().broker_config_problem()


# -- item 4: early closes; item 5: a deployment's schedule follows from its fill mode ------

EARLY_CLOSE_REBALANCES = ["2012-12-24", "2017-07-03", "2018-12-24", "2023-07-03"]


def early_closes() -> list[pd.Timestamp]:
    return [
        day
        for day in nyse_sessions("2010-01-01", "2026-12-31")
        if session_close(day).tz_convert("America/New_York").hour < 16
    ]


def test_no_daily_run_falls_after_an_early_close():
    days = early_closes()
    assert len(days) >= 36 and {pd.Timestamp(d) for d in EARLY_CLOSE_REBALANCES} <= set(days)
    for text in ("daily at 15:00", "daily at 15:30", "daily at 09:45"):
        schedule = Schedule.parse(text)
        for day in days:
            (fire,) = schedule.fire_times(day, day)
            assert fire < session_close(day), (text, day)
    (fire,) = Schedule.parse("daily at 15:00").fire_times("2012-12-24", "2012-12-24")
    assert fire.strftime("%H:%M") == "12:00"  # an hour before the 13:00 close, as usual


@pytest.mark.parametrize("fill", ["open", "close", "market"])
def test_the_schedule_of_each_fill_mode_meets_its_cut_off_on_every_session(fill):
    schedule = Schedule.parse(schedule_for_fill(fill))
    fires = schedule.fire_times("2010-01-01", "2026-12-31")
    assert len(fires) == len(nyse_sessions("2010-01-01", "2026-12-31"))
    for fire in fires:
        session = order_session(fire, fill)
        assert session == fire.tz_localize(None).normalize()
        assert order_window_problem(fire, session, fill) is None, fire


def test_order_windows_for_open_and_close():
    ny = "America/New_York"
    late = pd.Timestamp("2024-06-03T09:29", tz=ny)
    assert "before 09:28" in order_window_problem(late, pd.Timestamp("2024-06-03"), "open")
    evening = pd.Timestamp("2024-05-31T20:00", tz=ny)  # after Friday's close: Monday's open
    assert order_session(evening, "open") == pd.Timestamp("2024-06-03")
    assert order_window_problem(evening, pd.Timestamp("2024-06-03"), "open") is None
    half_day = pd.Timestamp("2024-07-03")  # closes 13:00: cls cut-off 12:50
    at = pd.Timestamp("2024-07-03T12:55", tz=ny)
    assert "before 12:50" in order_window_problem(at, half_day, "close")
    assert order_window_problem(at, half_day, "market") is None
    with pytest.raises(ValueError, match="unknown fill mode"):
        schedule_for_fill("vwap")
