"""When a deployed strategy runs: one schedule definition, rendered for every target.

Two forms, always in New York time on NYSE sessions:

- ``daily at HH:MM`` — once per session at that time (e.g. "daily at 15:00");
- ``every N min`` — every N minutes from the 09:30 open until the session's close
  (early closes included).

The *intended* fire time names the decision slot: a duplicate or retried delivery of the
same fire maps to the same slot, and so to the same client order ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from marketdata.calendar import nyse_sessions, session_close

SCHEDULE_TZ = "America/New_York"
MARKET_OPEN = "09:30"
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
            if not (9 <= hour <= 16 and minute < 60) or (hour, minute) < (9, 30):
                raise ValueError(f"{text!r}: a daily run must fall within 09:30-16:00 New York")
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
            if not self.intraday:
                times.append(day + pd.Timedelta(hours=self.hour, minutes=self.minute))
                continue
            close = session_close(session).tz_convert(SCHEDULE_TZ)
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
