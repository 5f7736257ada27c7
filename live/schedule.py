"""When a deployed strategy runs: one schedule definition, rendered for every target.

Two forms, always in New York time on NYSE sessions:

- ``daily at HH:MM`` — once per session at that time (e.g. "daily at 15:00"). On an early
  close (13:00) a time during the session keeps its distance to the close (15:00 fires at
  12:00, 15:30 at 12:30), so no session's run falls after its close; a time before the
  open (a market-on-open run, e.g. "daily at 09:00") is never moved;
- ``every N min`` — every N minutes from the 09:30 open until the session's close
  (early closes included).

The *intended* fire time names the decision slot: a duplicate or retried delivery of the
same fire maps to the same slot, and so to the same client order ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from marketdata.calendar import is_session, nyse_sessions, session_close

SCHEDULE_TZ = "America/New_York"
MARKET_OPEN = "09:30"
LIVE_FILL_MODES = ("open", "close", "market")
OPG_CUTOFF = pd.Timedelta(hours=9, minutes=28)  # Alpaca: opg orders before 09:28 New York
CLS_CUTOFF_BEFORE_CLOSE = pd.Timedelta(minutes=10)  # Alpaca: cls before 15:50 (close - 10)
# A deployment's schedule follows from its fill mode (see schedule_for_fill)
FILL_SCHEDULES = {
    "open": "daily at 09:00",  # after the previous close, before the 09:28 opg cut-off
    "close": "daily at 15:30",  # before 15:50; 12:30 on a 13:00 early close (cut-off 12:50)
    "market": "daily at 15:00",  # plain market orders: fill now, NOT the backtest's price
}
_DAILY = re.compile(r"^daily(?: at)? (\d{1,2}):(\d{2})(?: (?:new york|ny|america/new_york))?$")
_EVERY = re.compile(
    r"^every (\d+) ?min(?:utes)?(?: during (?:regular )?(?:nyse )?(?:trading )?hours)?$"
)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; `text` is the definition it came from."""

    text: str
    hour: int = 15
    minute: int = 0
    every_minutes: int = 0  # 0: daily

    @classmethod
    def parse(cls, text: str) -> Schedule:
        cleaned = " ".join(str(text).lower().split())
        if match := _DAILY.match(cleaned):
            hour, minute = int(match[1]), int(match[2])
            if not (hour <= 16 and minute < 60) or (hour, minute) > (16, 0):
                raise ValueError(f"{text!r}: a daily run must fall within 00:00-16:00 New York")
            return cls(text, hour, minute)
        if match := _EVERY.match(cleaned):
            every = int(match[1])
            if every < 1 or 390 % every:
                raise ValueError(f"{text!r}: the interval must divide the 390-minute session")
            return cls(text, every_minutes=every)
        raise ValueError(
            f"unknown schedule {text!r}: use 'daily at HH:MM' or 'every N min' (New York time)"
        )

    @property
    def intraday(self) -> bool:
        return self.every_minutes > 0

    def fire_times(self, start: object, end: object) -> list[pd.Timestamp]:
        """Every intended fire time (New York) on NYSE sessions in [start, end]."""
        times = []
        for session in nyse_sessions(start, end):
            day = pd.Timestamp(session).tz_localize(SCHEDULE_TZ)
            close = session_close(session).tz_convert(SCHEDULE_TZ)
            if not self.intraday:
                at = day + pd.Timedelta(hours=self.hour, minutes=self.minute)
                if (self.hour, self.minute) >= (9, 30):  # keep its distance to the close
                    at = min(at, close - (day + pd.Timedelta(hours=16) - at))
                times.append(at)
                continue
            moment = day + pd.Timedelta(hours=9, minutes=30)
            while moment < close:
                times.append(moment)
                moment += pd.Timedelta(minutes=self.every_minutes)
        return times

    def next_fire(self, after: pd.Timestamp) -> pd.Timestamp:
        """The first intended fire time strictly after `after`."""
        after = pd.Timestamp(after)
        after = after.tz_localize(SCHEDULE_TZ) if after.tzinfo is None else after
        for days in (7, 30):
            window = self.fire_times(
                after.tz_convert(SCHEDULE_TZ).normalize().tz_localize(None),
                (after + pd.Timedelta(days=days)).tz_localize(None),
            )
            later = [t for t in window if t > after]
            if later:
                return later[0]
        raise ValueError(f"no NYSE session within 30 days after {after}")

    def slot(self, scheduled: pd.Timestamp) -> str:
        """The decision slot of an intended fire time: the session date, plus the time intraday."""
        stamp = pd.Timestamp(scheduled)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        local = stamp.tz_convert(SCHEDULE_TZ)
        return local.strftime("%Y%m%d-%H%M") if self.intraday else local.strftime("%Y%m%d")


def schedule_for_fill(fill: str) -> str:
    """A deployment's SCHEDULE from its fill mode: when an order of that mode can still get
    the fill the backtest assumed (open: opg before 09:28; close: cls before the cut-off)."""
    if fill not in FILL_SCHEDULES:
        raise ValueError(f"unknown fill mode {fill!r}: use one of {', '.join(LIVE_FILL_MODES)}")
    return FILL_SCHEDULES[fill]


def order_session(as_of: pd.Timestamp, fill: str) -> pd.Timestamp:
    """The session (midnight, naive) a run at `as_of` trades in.

    A market-on-open run after a session's close (or on a non-session day) is for the next
    session; every other run is for the session of its date.
    """
    local = pd.Timestamp(as_of)
    local = local.tz_localize(SCHEDULE_TZ) if local.tzinfo is None else local
    local = local.tz_convert(SCHEDULE_TZ)
    day = local.tz_localize(None).normalize()
    if fill != "open":
        return day
    if is_session(day) and local < session_close(day).tz_convert(SCHEDULE_TZ):
        return day
    later = nyse_sessions(day + pd.Timedelta(days=1), day + pd.Timedelta(days=15))
    if not len(later):
        raise ValueError(f"no NYSE session within 15 days after {day.date()}")
    return pd.Timestamp(later[0])


def order_window_problem(as_of: pd.Timestamp, session: pd.Timestamp, fill: str) -> str | None:
    """Why an order of `fill` mode sent at `as_of` would not fill when the backtest assumed
    (None: it would). Plain market orders have no window (the market-open check applies)."""
    if fill not in LIVE_FILL_MODES:
        return f"unknown fill mode {fill!r}: use one of {', '.join(LIVE_FILL_MODES)}"
    local = pd.Timestamp(as_of).tz_convert(SCHEDULE_TZ)
    day = pd.Timestamp(session).tz_localize(SCHEDULE_TZ)
    if fill == "open":
        cutoff = day + OPG_CUTOFF
        if local >= cutoff:
            return (
                f"market-on-open (opg) orders for {session.date()} must be sent before "
                f"{cutoff:%H:%M} New York, and it is {local:%Y-%m-%d %H:%M}: run before the "
                f"open (schedule {FILL_SCHEDULES['open']!r}) or choose --fill market"
            )
    elif fill == "close":
        cutoff = session_close(session).tz_convert(SCHEDULE_TZ) - CLS_CUTOFF_BEFORE_CLOSE
        if local >= cutoff:
            return (
                f"market-on-close (cls) orders for {session.date()} must be sent before "
                f"{cutoff:%H:%M} New York (10 minutes before its close), and it is "
                f"{local:%Y-%m-%d %H:%M}: run earlier or choose --fill market"
            )
    return None
