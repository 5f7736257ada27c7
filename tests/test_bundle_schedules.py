"""Each target's rendered schedule fires at the intended New York times through both 2025 DST
changes, and every extra cron fire (NYSE holidays, after early closes, the wrong UTC hour)
is a no-op of the runtime's guard. Checked with croniter against the exchange calendar."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from zoneinfo import ZoneInfo

import pytest
import yaml
from cfnlint.decode import decode
from croniter import croniter
from test_bundle_support import export_module

from exporters.bundle import build_bundle
from exporters.bundle.common import read_module
from exporters.bundle.lambda_target import render_template
from exporters.bundle.runtime import plan_invocation
from exporters.bundle.schedules import compact, cron_groups
from live.schedule import Schedule
from marketdata import nyse_sessions

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
YEAR_START, YEAR_END = "2025-01-01", "2025-12-31"
# 15:00 New York on the weekdays around both 2025 changes: EST (UTC-5) / EDT (UTC-4)
DST_CHECKS = {
    "2025-03-07": "20:00",  # Friday before the spring change (EST)
    "2025-03-10": "19:00",  # Monday after it (EDT)
    "2025-10-31": "19:00",  # Friday before the fall change (EDT)
    "2025-11-03": "20:00",  # Monday after it (EST)
}
TARGETS = ("eventbridge", "azure-new-york", "azure-utc", "kubernetes")
SCHEDULES = ("daily at 15:00", "every 30 min")


def cron_fires(expression: str, zone, start: str, end: str, seconds_first=False):
    """Every fire of a cron line in [start, end] (dates in `zone`), as UTC instants."""
    begin = dt.datetime.fromisoformat(start).replace(tzinfo=zone) - dt.timedelta(seconds=1)
    stop = dt.datetime.fromisoformat(end).replace(tzinfo=zone) + dt.timedelta(days=1)
    it = croniter(expression, begin, second_at_beginning=seconds_first)
    fires = []
    while (moment := it.get_next(dt.datetime)) < stop:
        fires.append(moment.astimezone(UTC))
    return fires


def eventbridge_to_cron(expression: str) -> str:
    """cron(M H ? * MON-FRI *) -> 'M H * * MON-FRI' (croniter has no '?' nor a year)."""
    inner = re.fullmatch(r"cron\((.*)\)", expression)[1].split()
    assert len(inner) == 6 and inner[5] == "*"
    return " ".join(field.replace("?", "*") for field in inner[:5])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Every target's schedule as its generated files state it, per schedule."""
    found = {}
    for text in SCHEDULES:
        root = tmp_path_factory.mktemp(text.replace(" ", "_").replace(":", ""))
        module_path = export_module(root / "export", schedule=text)
        module = read_module(module_path)
        template = root / "template.yaml"
        template.write_text(render_template(module, python="3.11", image=False))
        parsed, problems = decode(str(template))
        assert not problems
        resources = parsed["Resources"].values()
        schedules = [r["Properties"] for r in resources if r["Type"] == "AWS::Scheduler::Schedule"]
        assert all(p["ScheduleExpressionTimezone"] == "America/New_York" for p in schedules)
        entries = {
            "eventbridge": [
                (eventbridge_to_cron(p["ScheduleExpression"]), NY, False) for p in schedules
            ]
        }
        for clock in ("new-york", "utc"):
            out = root / f"azure-{clock}"
            build_bundle("azure", module_path, out, clock=clock, log=lambda *_: None)
            entries[f"azure-{clock}"] = [
                (expr, UTC if clock == "utc" else NY, True) for expr in azure_schedules(out)
            ]
        out = root / "container"
        build_bundle("container", module_path, out, log=lambda *_: None)
        jobs = list(yaml.safe_load_all((out / "kubernetes" / "cronjob.yaml").read_text()))
        cronjobs = [j for j in jobs if j["kind"] == "CronJob"]
        assert all(j["spec"]["timeZone"] == "America/New_York" for j in cronjobs)
        entries["kubernetes"] = [(j["spec"]["schedule"], NY, False) for j in cronjobs]
        found[text] = entries
    return found


def azure_schedules(folder) -> list[str]:
    """The NCRONTAB of every timer function, read from the app the Functions host indexes."""
    sys.path.insert(0, str(folder))
    try:
        for name in ("function_app", "bundle_runtime", "exported_strategy"):
            sys.modules.pop(name, None)
        import function_app

        expressions = []
        for function in function_app.app.get_functions():
            binding = json.loads(function.get_function_json())["bindings"][0]
            assert binding["type"] == "timerTrigger" and binding["runOnStartup"] is False
            assert binding["useMonitor"] is True
            expressions.append(binding["schedule"])
        return expressions
    finally:
        sys.path.remove(str(folder))
        for name in ("function_app", "bundle_runtime", "exported_strategy"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("schedule_text", SCHEDULES)
@pytest.mark.parametrize("target", TARGETS)
def test_rendered_schedule_fires_at_intended_new_york_times_through_2025(
    bundles, target, schedule_text
):
    schedule = Schedule.parse(schedule_text)
    intended = {
        t.to_pydatetime().astimezone(UTC) for t in schedule.fire_times(YEAR_START, YEAR_END)
    }
    fires = set()
    for expression, zone, seconds_first in bundles[schedule_text][target]:
        fires |= set(cron_fires(expression, zone, YEAR_START, YEAR_END, seconds_first))
    missing = sorted(intended - fires)
    assert not missing, f"{target} never fires at {missing[:3]}"
    if schedule_text == "daily at 15:00":
        for day, utc_time in DST_CHECKS.items():
            at = dt.datetime.fromisoformat(f"{day}T{utc_time}:00+00:00")
            assert at in intended and at in fires, (target, day)
    sessions = {d.date() for d in nyse_sessions(YEAR_START, YEAR_END)}
    for fire in sorted(intended):  # every intended fire trades, in its own slot
        plan = plan_invocation(schedule, fire + dt.timedelta(seconds=3), fire)
        assert plan.action == "run" and plan.submit, (fire, plan)
        assert plan.slot == schedule.slot(fire)
    extras = sorted(fires - intended)
    holidays = [f for f in extras if f.astimezone(NY).date() not in sessions]
    assert holidays, "2025 has weekday NYSE holidays: cron fires on them"
    for fire in extras:
        arrival = fire + dt.timedelta(seconds=3)
        # with the platform's intended time (EventBridge, Azure ScheduleStatus, the loop)
        told = plan_invocation(schedule, arrival, fire)
        assert told.action == "skip" and not told.submit, (target, fire, told)
        # without it (a CronJob's --once, an Azure timer without schedule monitoring)
        guessed = plan_invocation(schedule, arrival, None)
        assert not guessed.submit, (target, fire, guessed)
        if fire.astimezone(NY).date() not in sessions:
            assert guessed.action == "skip", (target, fire, guessed)


def test_cron_groups_cover_each_schedule_exactly():
    for text in (
        "daily at 15:00",
        "daily at 09:30",
        "every 30 min",
        "every 15 min",
        "every 5 min",
        "every 13 min",
        "every 390 min",
    ):
        schedule = Schedule.parse(text)
        times = {  # a full session and an early close (2025-07-03 closes at 13:00)
            (t.hour, t.minute)
            for day in ("2025-01-08", "2025-07-03")
            for t in schedule.fire_times(day, day)
        }
        groups = cron_groups(schedule)
        covered = {(h, m) for g in groups for h in g.hours for m in g.minutes}
        assert covered == times, text
    assert [(g.minutes, g.hours) for g in cron_groups("daily at 15:00")] == [((0,), (12, 15))]
    assert [(g.minutes, g.hours) for g in cron_groups("every 30 min")] == [
        ((30,), (9, 10, 11, 12, 13, 14, 15)),
        ((0,), (10, 11, 12, 13, 14, 15)),
    ]


def test_compact_cron_lists():
    assert compact([9, 10, 11, 12, 13, 14, 15]) == "9-15"
    assert compact([0, 15]) == "0,15"
    assert compact([19, 20]) == "19,20"
    assert compact([1, 2, 3, 7, 9, 10, 11]) == "1-3,7,9-11"
