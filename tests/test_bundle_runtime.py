"""The runtime every bundle ships: intended time -> slot, duplicates, lateness, guards, output."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from azure.functions.timer import TimerRequest

from exporters.bundle import runtime
from live.schedule import Schedule

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
DAILY = Schedule.parse("daily at 15:00")
EVERY_30 = Schedule.parse("every 30 min")


def ny(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NY)


def test_duplicate_and_retried_deliveries_map_to_the_same_slot():
    fire = ny("2025-03-10T15:00")
    first = runtime.plan_invocation(DAILY, fire + dt.timedelta(seconds=1), fire)
    retry = runtime.plan_invocation(DAILY, fire + dt.timedelta(minutes=4), fire)
    guessed = runtime.plan_invocation(DAILY, fire + dt.timedelta(seconds=40), None)
    assert first.slot == retry.slot == guessed.slot == "20250310"
    assert first.submit and retry.submit and guessed.submit
    assert first.intended == retry.intended == guessed.intended == fire
    intraday = runtime.plan_invocation(EVERY_30, ny("2025-03-10T10:31:10"), None)
    assert intraday.slot == "20250310-1030" and intraday.submit


def test_a_late_delivery_only_reconciles():
    fire = ny("2025-03-10T15:00")
    late = runtime.plan_invocation(DAILY, fire + dt.timedelta(minutes=11), fire, late_after=600)
    assert late.action == "run" and not late.submit and late.slot == "20250310"
    assert "TRADESHIP_LATE_AFTER_SECONDS=600" in late.reasons[0]
    past_due = runtime.plan_invocation(DAILY, fire + dt.timedelta(seconds=5), fire, past_due=True)
    assert not past_due.submit and "past due" in past_due.reasons[0]
    # a past-due Azure run without ScheduleStatus, the morning after a missed 15:00
    morning = runtime.plan_invocation(DAILY, ny("2025-03-11T09:00"), None, past_due=True)
    assert morning.action == "run" and not morning.submit and morning.slot == "20250310"


def test_too_little_time_left_only_reconciles(monkeypatch):
    fire = ny("2025-03-10T15:00")
    monkeypatch.setenv("TRADESHIP_MIN_REMAINING_SECONDS", "90")
    short = runtime.plan_invocation(DAILY, fire, fire, remaining_seconds=45)
    assert not short.submit and "TRADESHIP_MIN_REMAINING_SECONDS=90" in short.reasons[0]
    assert runtime.plan_invocation(DAILY, fire, fire, remaining_seconds=200).submit


def test_fires_outside_the_schedule_are_skipped():
    holiday = ny("2025-07-04T15:00")
    assert runtime.plan_invocation(DAILY, holiday, holiday).action == "skip"
    assert runtime.plan_invocation(DAILY, holiday, None).action == "skip"
    wrong_utc_hour = ny("2025-03-10T16:00")  # the 20:00 UTC fire in summer time
    plan = runtime.plan_invocation(DAILY, wrong_utc_hour, wrong_utc_hour)
    assert plan.action == "skip" and "not one of that session's fire times" in plan.reasons[0]
    early_close = ny("2025-07-03T13:30")  # NYSE closes at 13:00
    assert runtime.plan_invocation(EVERY_30, early_close, early_close).action == "skip"
    assert not runtime.plan_invocation(EVERY_30, early_close, None).submit


def test_environment_settings(monkeypatch):
    monkeypatch.setenv("TRADESHIP_LATE_AFTER_SECONDS", "30")
    fire = ny("2025-03-10T15:00")
    assert not runtime.plan_invocation(DAILY, fire + dt.timedelta(seconds=31), fire).submit
    monkeypatch.setenv("TRADESHIP_LATE_AFTER_SECONDS", "soon")
    with pytest.raises(ValueError, match="TRADESHIP_LATE_AFTER_SECONDS"):
        runtime.plan_invocation(DAILY, fire, fire)
    monkeypatch.setenv("TRADESHIP_NOW", "2025-03-10T15:00:05")
    assert runtime.clock() == ny("2025-03-10T15:00:05")


def test_parse_instants():
    expected = dt.datetime(2025, 3, 10, 19, 0, tzinfo=UTC)
    assert runtime.parse_instant("2025-03-10T19:00:00Z") == expected
    assert runtime.parse_instant("2025-03-10T15:00:00-04:00") == expected
    assert runtime.parse_instant("2025-03-10T15:00:00.0000000-04:00") == expected
    assert runtime.parse_instant("03/10/2025 15:00:00", NY) == expected
    assert runtime.parse_instant("", NY) is None
    with pytest.raises(ValueError):
        runtime.parse_instant("tomorrow")


def test_lambda_event_time():
    assert runtime.lambda_event_time({"scheduled_time": "2025-03-10T19:00:00Z"}).endswith("Z")
    assert runtime.lambda_event_time({"time": "2025-03-10T19:00:00Z"})  # an EventBridge rule
    assert runtime.lambda_event_time({"scheduled_time": "<aws.scheduler.scheduled-time>"}) is None
    assert runtime.lambda_event_time(None) is None


def test_azure_schedule_status_names_the_intended_occurrence(monkeypatch):
    now = ny("2025-03-10T15:00:02")
    timer = TimerRequest(
        past_due=False,
        schedule_status={
            "Last": "2025-03-07T15:00:00-05:00",
            "Next": "2025-03-10T15:00:00-04:00",
            "LastUpdated": "2025-03-07T15:00:00-05:00",
        },
    )
    assert runtime.azure_intended(timer, now) == (ny("2025-03-10T15:00"), False)
    monkeypatch.setenv("WEBSITE_TIME_ZONE", "Eastern Standard Time")  # Windows zone id
    naive = TimerRequest(schedule_status={"next": "2025-03-10T15:00:00"}, past_due=True)
    assert runtime.azure_intended(naive, now) == (ny("2025-03-10T15:00"), True)
    monkeypatch.setenv("WEBSITE_TIME_ZONE", "America/New_York")  # Linux
    assert runtime.azure_intended(naive, now)[0] == ny("2025-03-10T15:00")
    monkeypatch.delenv("WEBSITE_TIME_ZONE")  # UTC: a Linux Consumption app
    utc = TimerRequest(schedule_status={"Next": "2025-03-10T19:00:00"})
    assert runtime.azure_intended(utc, now)[0] == ny("2025-03-10T15:00")
    later = TimerRequest(schedule_status={"Next": "2025-03-11T15:00:00-04:00"})
    assert runtime.azure_intended(later, now) == (None, False)  # not this invocation's
    assert runtime.azure_intended(TimerRequest(), now) == (None, False)


class Refused(RuntimeError):
    pass


def fake_strategy(outcome):
    def run(now=None, dry_run=False, source=None, slot=None, submit=True):
        calls.append({"now": now, "slot": slot, "submit": submit, "dry_run": dry_run})
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    calls: list[dict] = []
    module = SimpleNamespace(
        run=run,
        RunError=Refused,
        STRATEGY_ID="demo-1",
        SCHEDULE="daily at 15:00",
        Schedule=Schedule,
    )
    return module, calls


def test_execute_prints_one_line_on_run_error_and_a_json_summary(capsys):
    module, calls = fake_strategy(Refused("stale data: the last completed bar is 2025-03-06"))
    fire = ny("2025-03-10T15:00")
    plan = runtime.plan_invocation(DAILY, fire, fire)
    summary = runtime.execute(plan, module, "lambda")
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert (
        lines[0] == "run blocked, no order sent: stale data: the last completed bar is 2025-03-06"
    )
    assert json.loads(lines[1]) == json.loads(json.dumps(summary, sort_keys=True))
    assert "Traceback" not in out.out + out.err
    assert summary["status"] == "blocked" and summary["slot"] == "20250310"
    assert calls == [
        {
            "now": fire.astimezone(UTC).isoformat(),
            "slot": "20250310",
            "submit": True,
            "dry_run": False,
        }
    ]


def test_execute_skips_without_calling_run(capsys):
    module, calls = fake_strategy([])
    holiday = ny("2025-07-04T15:00")
    summary = runtime.execute(runtime.plan_invocation(DAILY, holiday, holiday), module, "azure")
    assert calls == [] and summary["status"] == "skipped" and summary["orders"] == []
    assert capsys.readouterr().out.startswith("skipped: 2025-07-04 15:00 EDT is not a fire time")


def test_load_aws_credentials_from_secrets_manager(monkeypatch):
    import boto3
    from moto import mock_aws

    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL"):
        monkeypatch.setenv(name, "")  # so that monkeypatch restores whatever was there
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(runtime, "_AWS_CREDENTIALS_LOADED", False)
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="alpaca",
            SecretString=json.dumps({"APCA_API_KEY_ID": "PKTEST", "APCA_API_SECRET_KEY": "s3"}),
        )["ARN"]
        monkeypatch.setenv("TRADESHIP_SECRET_ARN", arn)
        runtime.load_aws_credentials()
    import os

    assert os.environ["APCA_API_KEY_ID"] == "PKTEST" and os.environ["APCA_API_SECRET_KEY"] == "s3"
    monkeypatch.setattr(runtime, "_AWS_CREDENTIALS_LOADED", False)
