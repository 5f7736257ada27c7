"""Run an exported tradeship strategy from a scheduler: the runtime every deploy bundle ships.

Copied verbatim into each bundle as ``bundle_runtime.py``, beside the exported module
(``exported_strategy.py``) and the target's entry point (``lambda_handler.py``,
``function_app.py`` or ``entrypoint.py``). It imports only the standard library until it
loads that module, and nothing of tradeship.

Delivery is at least once everywhere (Lambda async retries, EventBridge Scheduler retries,
Azure timer duplicates, a CronJob started twice), so:

* The decision slot comes from the schedule's INTENDED fire time: the scheduler's own
  (EventBridge Scheduler's ``<aws.scheduler.scheduled-time>`` in the event, the Azure
  timer's ``ScheduleStatus.Next``, the container loop's next fire) or, when the platform
  gives none, the latest fire time of ``SCHEDULE`` at or before now. Never the wall clock
  or an attempt id: a duplicate maps to the same slot, hence the same client order ids,
  which the broker accepts once.
* A fire time that ``SCHEDULE`` does not contain is skipped before the broker is asked
  anything: cron cannot express NYSE holidays or early closes, so those fires are no-ops.
* A run arriving more than ``TRADESHIP_LATE_AFTER_SECONDS`` (default 600) after its slot, an
  Azure past-due run, or a Lambda run with less than ``TRADESHIP_MIN_REMAINING_SECONDS``
  (default 60) left only reconciles and reports (``run(submit=False)``).

Every invocation prints one JSON summary line; a run the strategy refuses (``RunError``:
stale data, kill switch, closed market, risk limits ...) prints one clear line, no traceback.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
STRATEGY_MODULE = "exported_strategy"
DEFAULT_LATE_AFTER_SECONDS = 600.0
DEFAULT_MIN_REMAINING_SECONDS = 60.0
# A platform may fire a moment before its occurrence (clock skew): still that occurrence.
EARLY_TOLERANCE = dt.timedelta(minutes=2)
LOOKBACK_DAYS = 10  # NYSE never closes longer than this outside 1914/1933/2001
# WEBSITE_TIME_ZONE on Windows names Windows zones; Azure's naive times are in that zone.
WINDOWS_ZONES = {
    "eastern standard time": "America/New_York",
    "utc": "UTC",
    "coordinated universal time": "UTC",
}
CREDENTIAL_NAMES = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL")


class PlottingNoiseFilter(logging.Filter):
    """Drops prophet's import-time complaints about plotting libraries a bundle leaves out
    (matplotlib, plotly): a deployed run never plots."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return "Plotting will not work" not in message and "plots will not work" not in message


def quiet_plotting_warnings() -> None:
    logger = logging.getLogger("prophet.plot")
    if not any(isinstance(f, PlottingNoiseFilter) for f in logger.filters):
        logger.addFilter(PlottingNoiseFilter())


_STRATEGY: Any = None


def load_strategy(name: str = STRATEGY_MODULE) -> Any:
    """Import the exported module once per process (Lambda keeps it warm between calls)."""
    global _STRATEGY
    if _STRATEGY is None or _STRATEGY.__name__ != name:
        quiet_plotting_warnings()
        _STRATEGY = importlib.import_module(name)
    return _STRATEGY


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def late_after_seconds() -> float:
    return _env_seconds("TRADESHIP_LATE_AFTER_SECONDS", DEFAULT_LATE_AFTER_SECONDS)


def min_remaining_seconds() -> float:
    return _env_seconds("TRADESHIP_MIN_REMAINING_SECONDS", DEFAULT_MIN_REMAINING_SECONDS)


def zone_named(name: str | None) -> dt.tzinfo:
    """An IANA or (Azure/Windows) zone name; unknown or empty means UTC."""
    if not name:
        return UTC
    name = WINDOWS_ZONES.get(name.strip().lower(), name.strip())
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return UTC


def parse_instant(value: Any, naive_zone: dt.tzinfo = UTC) -> dt.datetime | None:
    """An aware UTC datetime from ISO 8601 text (``Z`` allowed), Azure's ``MM/DD/YYYY
    HH:MM:SS`` or a datetime; a time without offset is in `naive_zone`. None if empty."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        text = str(value).strip()
        try:
            stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            try:
                stamp = dt.datetime.strptime(text[:19], "%m/%d/%Y %H:%M:%S")
            except ValueError:
                raise ValueError(f"not a time: {text!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=naive_zone)
    return stamp.astimezone(UTC)


def clock(now: Any = None) -> dt.datetime:
    """Now: `now`, else $TRADESHIP_NOW (naive = New York; simulations and tests), else the
    real time."""
    if now is None:
        now = os.environ.get("TRADESHIP_NOW") or None
    if now is None:
        return dt.datetime.now(UTC)
    return parse_instant(now, NEW_YORK)


def _ny(stamp: dt.datetime) -> str:
    return stamp.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")


def fire_times_on(schedule: Any, day: dt.date) -> list[dt.datetime]:
    """The schedule's fire times (aware) on NYSE session `day`; empty on other days."""
    return [t.to_pydatetime() for t in schedule.fire_times(day.isoformat(), day.isoformat())]


def latest_fire_at_or_before(schedule: Any, moment: dt.datetime) -> dt.datetime | None:
    local = moment.astimezone(NEW_YORK).date()
    start = local - dt.timedelta(days=LOOKBACK_DAYS)
    times = [t.to_pydatetime() for t in schedule.fire_times(start.isoformat(), local.isoformat())]
    earlier = [t for t in times if t <= moment]
    return earlier[-1] if earlier else None


@dataclass
class Plan:
    """What one invocation does: skip, or run for `slot` (submitting orders or not)."""

    action: str  # "run" | "skip"
    intended: dt.datetime | None
    slot: str | None
    submit: bool
    late_by_seconds: float | None
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "intended": None if self.intended is None else self.intended.isoformat(),
            "intended_new_york": None if self.intended is None else _ny(self.intended),
            "slot": self.slot,
            "submit": self.submit,
            "late_by_seconds": None
            if self.late_by_seconds is None
            else round(self.late_by_seconds, 3),
            "reasons": list(self.reasons),
        }


def plan_invocation(
    schedule: Any,
    now: dt.datetime,
    scheduled: dt.datetime | None = None,
    *,
    past_due: bool = False,
    late_after: float | None = None,
    remaining_seconds: float | None = None,
    min_remaining: float | None = None,
) -> Plan:
    """Map one delivery to its intended fire time, slot and whether it may submit orders.

    `scheduled` is the platform's intended time for this delivery, when it gives one.
    """
    late_after = late_after_seconds() if late_after is None else late_after
    min_remaining = min_remaining_seconds() if min_remaining is None else min_remaining
    now = now.astimezone(UTC)
    if scheduled is not None:
        intended = scheduled.astimezone(UTC).replace(microsecond=0)
        day = intended.astimezone(NEW_YORK).date()
        fires = fire_times_on(schedule, day)
        if intended not in fires:
            why = "not an NYSE session" if not fires else "not one of that session's fire times"
            return Plan(
                "skip",
                intended,
                None,
                False,
                None,
                [f"{_ny(intended)} is not a fire time of {schedule.text!r} ({why}): nothing to do"],
            )
    else:
        intended = latest_fire_at_or_before(schedule, now + EARLY_TOLERANCE)
        if intended is None:
            return Plan(
                "skip",
                None,
                None,
                False,
                None,
                [f"no fire time of {schedule.text!r} in the {LOOKBACK_DAYS} days to {_ny(now)}"],
            )
        same_day = intended.astimezone(NEW_YORK).date() == now.astimezone(NEW_YORK).date()
        if (now - intended).total_seconds() > late_after and not same_day and not past_due:
            return Plan(
                "skip",
                intended,
                None,
                False,
                None,
                [
                    f"{_ny(now)} is not a fire time of {schedule.text!r} (not an NYSE session, "
                    f"or before the day's first fire); the last one was {_ny(intended)}"
                ],
            )
    late_by = (now - intended).total_seconds()
    reasons: list[str] = []
    if past_due:
        reasons.append("the platform reports this run past due: reconcile and report only")
    if late_by > late_after:
        reasons.append(
            f"arrived {late_by:.0f} s after its slot {_ny(intended)} (more than "
            f"TRADESHIP_LATE_AFTER_SECONDS={late_after:g}): reconcile and report only"
        )
    if remaining_seconds is not None and remaining_seconds < min_remaining:
        reasons.append(
            f"only {remaining_seconds:.0f} s left before the platform's timeout (less than "
            f"TRADESHIP_MIN_REMAINING_SECONDS={min_remaining:g}): reconcile and report only"
        )
    return Plan("run", intended, schedule.slot(intended), not reasons, late_by, reasons)


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _order_line(order: dict[str, Any]) -> dict[str, Any]:
    keys = ("symbol", "side", "qty", "client_order_id", "status", "outcome")
    return {k: order.get(k) for k in keys}


def execute(plan: Plan, strategy: Any, target: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Carry out `plan` with the exported module's run(); print and return the summary."""
    summary: dict[str, Any] = {
        "tradeship": "run-summary",
        "target": target,
        "strategy": getattr(strategy, "STRATEGY_ID", getattr(strategy, "STRATEGY_NAME", "")),
        "schedule": getattr(strategy, "SCHEDULE", ""),
        "dry_run": bool(dry_run),
        **plan.as_dict(),
    }
    if plan.action == "skip":
        print(f"skipped: {'; '.join(plan.reasons)}", flush=True)
        summary.update(status="skipped", orders=[])
    else:
        for reason in plan.reasons:
            print(f"note: {reason}", flush=True)
        try:
            orders = strategy.run(
                now=plan.intended.isoformat(),
                dry_run=dry_run,
                slot=plan.slot,
                submit=plan.submit,
            )
        except strategy.RunError as exc:
            print(f"run blocked, no order sent: {exc}", flush=True)
            summary.update(status="blocked", error=str(exc), orders=[])
        else:
            summary.update(
                status="done" if plan.submit else "reconciled",
                orders=[_order_line(o) for o in orders],
            )
    print(json.dumps(summary, sort_keys=True, default=str), flush=True)
    return summary


def handle(
    target: str,
    *,
    scheduled: Any = None,
    past_due: bool = False,
    remaining_seconds: float | None = None,
    now: Any = None,
    dry_run: bool | None = None,
    naive_zone: dt.tzinfo = UTC,
) -> dict[str, Any]:
    """One delivery from a scheduler: plan it against SCHEDULE, run it, return the summary."""
    strategy = load_strategy()
    schedule = strategy.Schedule.parse(strategy.SCHEDULE)
    plan = plan_invocation(
        schedule,
        clock(now),
        parse_instant(scheduled, naive_zone),
        past_due=past_due,
        remaining_seconds=remaining_seconds,
    )
    if dry_run is None:
        dry_run = _truthy("TRADESHIP_DRY_RUN")
    return execute(plan, strategy, target, dry_run=dry_run)


# -- AWS ------------------------------------------------------------------------------------

_AWS_CREDENTIALS_LOADED = False


def load_aws_credentials() -> None:
    """Read the Alpaca credentials from the Secrets Manager secret $TRADESHIP_SECRET_ARN.

    The secret is a JSON object with APCA_API_KEY_ID and APCA_API_SECRET_KEY (and optionally
    APCA_API_BASE_URL). They go into this process's environment only, never into a log.
    Without TRADESHIP_SECRET_ARN the environment is used as it is.
    """
    global _AWS_CREDENTIALS_LOADED
    arn = os.environ.get("TRADESHIP_SECRET_ARN", "").strip()
    if _AWS_CREDENTIALS_LOADED or not arn:
        return
    import boto3  # provided by the AWS Lambda Python runtime

    answer = boto3.client("secretsmanager").get_secret_value(SecretId=arn)
    try:
        values = json.loads(answer.get("SecretString") or "{}")
    except ValueError:
        raise ValueError(
            "the secret TRADESHIP_SECRET_ARN names must be a JSON object with "
            "APCA_API_KEY_ID and APCA_API_SECRET_KEY"
        ) from None
    missing = [n for n in CREDENTIAL_NAMES[:2] if not values.get(n)]
    if missing:
        raise ValueError(f"the secret TRADESHIP_SECRET_ARN names lacks {', '.join(missing)}")
    for name in CREDENTIAL_NAMES:
        if values.get(name):
            os.environ[name] = str(values[name])
    _AWS_CREDENTIALS_LOADED = True


def lambda_event_time(event: Any) -> str | None:
    """The intended time in an EventBridge Scheduler or EventBridge rule event, if any."""
    if not isinstance(event, dict):
        return None
    for key in ("scheduled_time", "scheduledTime", "time"):
        value = event.get(key)
        if value and not str(value).startswith("<aws."):
            return str(value)
    return None


# -- Azure ----------------------------------------------------------------------------------


def azure_intended(timer: Any, now: dt.datetime) -> tuple[dt.datetime | None, bool]:
    """(intended occurrence, past_due) of an Azure timer invocation.

    With schedule monitoring (useMonitor, the default for timers longer than a minute) the
    host passes ScheduleStatus, whose ``Next`` is the occurrence this invocation was
    scheduled for (the status is the scheduler's, read before it moves on; a past-due run
    carries the missed occurrence). Its times are in the app's WEBSITE_TIME_ZONE when they
    have no offset. A ``Next`` in the future is not this invocation's and is ignored.
    """
    status = getattr(timer, "schedule_status", None) or {}
    past_due = bool(getattr(timer, "past_due", False))
    lowered = {str(k).lower(): v for k, v in dict(status).items()}
    zone = zone_named(os.environ.get("WEBSITE_TIME_ZONE"))
    try:
        upcoming = parse_instant(lowered.get("next"), zone)
    except ValueError:
        upcoming = None
    if upcoming is not None and upcoming > now + EARLY_TOLERANCE:
        upcoming = None
    return upcoming, past_due


def azure_timer(timer: Any, target: str = "azure") -> dict[str, Any]:
    """The body of every generated Azure timer function."""
    now = clock()
    scheduled, past_due = azure_intended(timer, now)
    return handle(target, scheduled=scheduled, past_due=past_due, now=now)


def main_guard() -> None:  # pragma: no cover - keeps `python bundle_runtime.py` honest
    print("bundle_runtime is imported by a deploy entry point; it does nothing on its own")
    sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main_guard()
