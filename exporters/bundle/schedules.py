"""One schedule definition (an exported module's `SCHEDULE`), rendered for every deploy target.

`live.schedule.Schedule` says when a strategy runs: New York wall-clock times on NYSE
sessions. Cron cannot say "NYSE session", so every target gets a cron line per group of
fire times on weekdays (Monday-Friday), always a *superset* of the intended fire times:

- EventBridge Scheduler: ``cron(M H ? * MON-FRI *)`` with ``ScheduleExpressionTimezone:
  America/New_York`` (Scheduler applies daylight saving time itself);
- Azure Functions: 6-field NCRONTAB ``0 M H * * 1-5`` read in the app's WEBSITE_TIME_ZONE
  (``America/New_York`` on Linux Premium/Dedicated, ``Eastern Standard Time`` on Windows),
  or, where WEBSITE_TIME_ZONE is unsupported (Linux Consumption / Flex Consumption), a UTC
  expression firing at both possible UTC hours (New York is UTC-4 or UTC-5);
- Kubernetes CronJob: 5-field ``M H * * 1-5`` with ``timeZone: America/New_York``.

The extra fires (NYSE holidays, afternoons after an early close, a daily time's early-close
twin on a full session, the wrong-offset UTC hour) are no-ops: the bundle's runtime skips
a fire time the schedule does not contain before it touches the broker (see
exporters/bundle/runtime.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from live.schedule import Schedule

NEW_YORK = "America/New_York"
# A full session (16:00 close) and an early close (13:00): their fire times stand for every
# weekday's (a daily time after 09:30 keeps its distance to an early close: 15:00 -> 12:00).
REFERENCE_SESSIONS = ("2025-01-08", "2025-07-03")
# New York's offsets to UTC (EDT, EST): a UTC cron fires at both and the runtime keeps one.
NEW_YORK_UTC_OFFSETS = (4, 5)


@dataclass(frozen=True)
class CronGroup:
    """Fire at every (hour, minute) of `hours` x `minutes`, New York time, Monday-Friday."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]

    def in_utc(self) -> CronGroup:
        """The same minutes at every UTC hour a New York hour can be (both DST offsets)."""
        hours = sorted({h + offset for h in self.hours for offset in NEW_YORK_UTC_OFFSETS})
        if hours[-1] > 23:
            raise ValueError("a New York fire time after 18:59 would cross midnight UTC")
        return CronGroup(self.minutes, tuple(hours))


def compact(values: Iterable[int]) -> str:
    """Cron list syntax: consecutive runs of 3+ as ranges ("9-15"), the rest comma-joined."""
    values = sorted(set(values))
    parts: list[str] = []
    start = prev = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        if prev - start >= 2:
            parts.append(f"{start}-{prev}")
        else:
            parts.extend(str(v) for v in range(start, prev + 1))
        if value is not None:
            start = prev = value
    return ",".join(parts)


def cron_groups(schedule: Schedule | str) -> list[CronGroup]:
    """The fewest (minutes x hours) groups whose union holds the fire times of a full and of
    an early-close session (cron cannot tell them apart: the runtime skips the wrong one)."""
    schedule = Schedule.parse(schedule) if isinstance(schedule, str) else schedule
    times = [t for day in REFERENCE_SESSIONS for t in schedule.fire_times(day, day)]
    hours_by_minute: dict[int, set[int]] = {}
    for stamp in times:
        hours_by_minute.setdefault(stamp.minute, set()).add(stamp.hour)
    minutes_by_hours: dict[tuple[int, ...], list[int]] = {}
    for minute, hours in sorted(hours_by_minute.items()):
        minutes_by_hours.setdefault(tuple(sorted(hours)), []).append(minute)
    groups = [CronGroup(tuple(m), h) for h, m in minutes_by_hours.items()]
    return sorted(groups, key=lambda g: (g.hours[0], g.minutes[0]))


def eventbridge_expression(group: CronGroup) -> str:
    """EventBridge Scheduler's 6-field cron (minutes hours day-of-month month day-of-week year)."""
    return f"cron({compact(group.minutes)} {compact(group.hours)} ? * MON-FRI *)"


def ncrontab_expression(group: CronGroup) -> str:
    """Azure Functions' 6-field NCRONTAB ({second} {minute} {hour} {day} {month} {weekday})."""
    return f"0 {compact(group.minutes)} {compact(group.hours)} * * 1-5"


def kubernetes_expression(group: CronGroup) -> str:
    """A standard 5-field cron line for a Kubernetes CronJob (with `timeZone`)."""
    return f"{compact(group.minutes)} {compact(group.hours)} * * 1-5"


@dataclass(frozen=True)
class RenderedSchedule:
    """Everything a bundle writes about its schedule."""

    text: str
    eventbridge: tuple[str, ...]
    ncrontab: tuple[str, ...]
    ncrontab_utc: tuple[str, ...]
    kubernetes: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "schedule": self.text,
            "time_zone": NEW_YORK,
            "eventbridge": list(self.eventbridge),
            "ncrontab": list(self.ncrontab),
            "ncrontab_utc": list(self.ncrontab_utc),
            "kubernetes": list(self.kubernetes),
        }


def render(schedule_text: str) -> RenderedSchedule:
    groups = cron_groups(Schedule.parse(schedule_text))
    return RenderedSchedule(
        schedule_text,
        tuple(eventbridge_expression(g) for g in groups),
        tuple(ncrontab_expression(g) for g in groups),
        tuple(ncrontab_expression(g.in_utc()) for g in groups),
        tuple(kubernetes_expression(g) for g in groups),
    )


def describe(schedule_text: str) -> str:
    """One human line: when the schedule fires, in New York time."""
    schedule = Schedule.parse(schedule_text)
    if not schedule.intraday:
        return f"{schedule.hour:02d}:{schedule.minute:02d} New York on NYSE sessions"
    return (
        f"every {schedule.every_minutes} min from 09:30 New York until the close on NYSE sessions"
    )


def intended_fire_times(schedule_text: str, start: object, end: object) -> list[pd.Timestamp]:
    """The schedule's own fire times (New York) on NYSE sessions in [start, end]."""
    return Schedule.parse(schedule_text).fire_times(start, end)
