"""`tradeship paper` runs an exported module against Alpaca; `tradeship journal` shows runs."""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from tradeship.settings import Settings

PAPER_HELP = """\
Run an exported module (tradeship export) against APCA_API_BASE_URL: the local sandbox
(tradeship sandbox) or Alpaca's paper API with your keys. Credentials come only from
APCA_API_KEY_ID / APCA_API_SECRET_KEY. Paper by default: Alpaca's live URL is refused
unless TRADESHIP_PAPER=0 and TRADESHIP_ALLOW_LIVE=1.

Each run reads bars before the session it trades in, decides, and trades the difference
with deterministic client order ids, so running the same slot twice never orders twice.
It acts at the BROKER's clock (Alpaca's /v2/clock, the sandbox's simulated clock): --now
(or TRADESHIP_NOW) more than 5 minutes off it is refused, except with --dry-run (replay).
Orders follow the module's FILL, the backtest's fill assumption: "open" sends
market-on-open (opg) orders, before 09:28 New York (after a close: for the next
session); "close" market-on-close (cls) orders, before 10 minutes ahead of the close;
"market" plain market orders, which do NOT fill at the backtest's price. Every run is
journaled (TRADESHIP_JOURNAL, default sqlite under ~/.cache/tradeship): see
`tradeship journal`.

Without --once it runs on the module's SCHEDULE (New York time) until Ctrl-C.
Safety switches: TRADESHIP_KILL_SWITCH=1 (or the file TRADESHIP_KILL_FILE) stops all new
orders; TRADESHIP_MAX_POSITION_WEIGHT, _MAX_GROSS_EXPOSURE, _MAX_ORDER_NOTIONAL,
_MAX_RUN_NOTIONAL, _MAX_ORDERS block a run that breaches them.
"""

EXAMPLE = """\
example (offline, against the sandbox; an export with FILL "open" runs before the open):
  tradeship sandbox --date 2024-05-31 &      # its clock: Friday 15:00 New York
  export APCA_API_BASE_URL=http://127.0.0.1:8765 APCA_API_KEY_ID=... APCA_API_SECRET_KEY=...
  curl -X POST "$APCA_API_BASE_URL/sandbox/clock" -H "APCA-API-KEY-ID: $APCA_API_KEY_ID" \\
      -H "APCA-API-SECRET-KEY: $APCA_API_SECRET_KEY" -d '{"time": "2024-06-03T09:00"}'
  tradeship paper --module build/strategy.py --source demo --once   # opg orders for 09:30
"""


def cmd_paper(args: argparse.Namespace, settings: Settings) -> int:
    from exporters.parity import load_module

    module = load_module(args.module)
    if args.once or args.now:
        return _run_once(module, args, args.now)
    from live.schedule import Schedule

    schedule = Schedule.parse(module.SCHEDULE)
    print(f"running {module.STRATEGY_NAME} on schedule {schedule.text!r}; Ctrl-C stops")
    while True:
        fire = schedule.next_fire(pd.Timestamp.now(tz="America/New_York"))
        print(f"next run at {fire.isoformat()}")
        time.sleep(max(0.0, (fire - pd.Timestamp.now(tz="America/New_York")).total_seconds()))
        _run_once(module, args, fire.isoformat(), slot=schedule.slot(fire))


def _run_once(module, args: argparse.Namespace, now: str | None, slot: str | None = None) -> int:
    try:
        orders = module.run(now=now, dry_run=args.dry_run, source=args.source, slot=slot)
    except module.RunError as exc:
        print(f"error: {exc}")
        return 1
    print(f"{len(orders)} order(s)")
    return 0


def cmd_journal(args: argparse.Namespace, settings: Settings) -> int:
    from live.journal import open_journal

    runs = open_journal(args.journal).recent_runs(args.limit)
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    if not runs:
        print("no runs journaled yet")
    for run in runs:
        print(
            f"{run['run_id']}  {run.get('strategy_id', '')}  as of {run.get('as_of', '')}  "
            f"{run.get('status', '')}: {run.get('message', '')}"
        )
        for order in run.get("orders", []):
            print(
                f"    {order['side']} {order['qty']:g} {order['symbol']}  {order['state']}"
                f"  {order.get('broker_status') or ''}  {order['client_order_id']}"
            )
    return 0


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    paper = sub.add_parser(
        "paper",
        help="run an exported module against Alpaca (paper) or the local sandbox",
        description=PAPER_HELP,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    paper.add_argument("--module", required=True, help="the exported FILE.py")
    paper.add_argument(
        "--source", help="market data for the run (default: the module's, or TRADESHIP_SOURCE)"
    )
    paper.add_argument("--now", help="as-of time, ISO (New York if no zone); implies --once")
    paper.add_argument("--once", action="store_true", help="one run now instead of the schedule")
    paper.add_argument(
        "--dry-run", action="store_true", help="print and journal the orders, send none"
    )
    paper.set_defaults(func=cmd_paper)

    journal = sub.add_parser(
        "journal",
        help="show recent runs: inputs, decisions, orders and the broker's answers",
        description="Recent runs from the journal (TRADESHIP_JOURNAL: sqlite:PATH or s3://bucket/prefix).",
    )
    journal.add_argument(
        "--journal", help="journal URL (default: TRADESHIP_JOURNAL or the local SQLite file)"
    )
    journal.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")
    journal.add_argument("--json", action="store_true", help="everything, as JSON")
    journal.set_defaults(func=cmd_journal)
