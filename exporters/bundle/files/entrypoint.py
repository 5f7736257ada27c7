"""Container entry point of a tradeship bundle.

    python entrypoint.py              run on the strategy's SCHEDULE (New York time) until
                                      SIGTERM/SIGINT, sleeping between fires
    python entrypoint.py --once       one run for the latest fire time at or before now
                                      (a Kubernetes CronJob's container), then exit
    python entrypoint.py --once --scheduled-time 2025-03-10T15:00-04:00
                                      one run for that intended fire time

Logs go to stdout, one JSON summary line per run. SIGTERM lets a run in progress finish
(its orders are journaled before they are sent) and then exits 0. Exit codes of --once:
0 done/skipped/reconciled, 1 the run was refused (RunError: see the line above it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import threading
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bundle_runtime  # noqa: E402

STOP = threading.Event()
RECEIVED: list[str] = []
MAX_SLEEP = 60.0  # re-read the wall clock at least once a minute while waiting


def _stop(signum, _frame):
    # only flag it: printing here could re-enter a print the main thread is in
    RECEIVED.append(signal.Signals(signum).name)
    STOP.set()


def _say_stopping() -> None:
    if RECEIVED:
        print(f"received {RECEIVED[0]}: stopping", flush=True)


def run_once(scheduled: str | None, dry_run: bool) -> int:
    summary = bundle_runtime.handle("container", scheduled=scheduled, dry_run=dry_run or None)
    return 1 if summary["status"] == "blocked" else 0


def run_forever(dry_run: bool) -> int:
    strategy = bundle_runtime.load_strategy()
    schedule = strategy.Schedule.parse(strategy.SCHEDULE)
    print(f"{strategy.STRATEGY_ID}: running on {schedule.text!r} (New York time)", flush=True)
    while not STOP.is_set():
        fire = schedule.next_fire(dt.datetime.now(dt.UTC)).to_pydatetime()
        print(f"next run at {fire.isoformat()}", flush=True)
        while not STOP.is_set():
            left = (fire - dt.datetime.now(dt.UTC)).total_seconds()
            if left <= 0:
                break
            STOP.wait(min(left, MAX_SLEEP))
        if STOP.is_set():
            break
        try:
            bundle_runtime.handle(
                "container",
                scheduled=fire,
                now=dt.datetime.now(dt.UTC),
                dry_run=dry_run or None,
            )
        except Exception:  # noqa: BLE001 - one failed run must not end the schedule
            print("run failed with an unexpected error:", flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
    _say_stopping()
    print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one run, then exit (CronJob)")
    parser.add_argument(
        "--scheduled-time", help="with --once: the intended fire time (ISO 8601; naive = UTC)"
    )
    parser.add_argument("--dry-run", action="store_true", help="decide and print, send nothing")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.once or args.scheduled_time:
        code = run_once(args.scheduled_time, args.dry_run)
        _say_stopping()  # a run in progress was let finish
        return code
    return run_forever(args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
