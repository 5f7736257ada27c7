"""`tradeship sandbox`: a local Alpaca-compatible paper broker on a simulated clock."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tradeship.settings import Settings

SANDBOX_HELP = """\
Serve a local paper broker that speaks Alpaca's Trading API over HTTP, so the real
alpaca-py client (and an exported module's run()) can trade offline, on history.

It runs on a SIMULATED clock that stands still until you move it: it opens at 15:00 New
York (12:00 on an early-close day) of session --date (default: the last session of
--source). Account, clock and orders live in the SQLite file --db: stop and start again
on it and nothing is lost.

Order lifecycle, as on Alpaca: POST /v2/orders answers `accepted`; once the clock moves
while the market is open the order is `new`; it fills only when the clock crosses a
price the daily data has, and filled_at is that simulated time.

Fill prices (daily data knows the open at 09:30 and the close at the close, and the
session's high and low at unknown moments):
  opg  (market on open)   the session's OPEN; refused from 09:28 to 19:00 of a session
  cls  (market on close)  the session's CLOSE; refused from 10 min before the close to 19:00
  market, sent while closed   the next OPEN (what the backtest's default fill uses)
  market, sent in a session   that session's CLOSE (the next price the data has; for
                              an intraday round trip buy opg and sell cls)
  limit / stop            at the open if it is through the limit / stop, else against the
                          session's range at the close: a limit fills at its limit price
                          if the low (buy) / high (sell) reached it, a stop at its stop
                          price if the high (buy) / low (sell) did; the whole session's
                          range is used even for an order sent mid-session
  trailing_stop           at the open if through its stop; else against the low (sell) /
                          high (buy) at the close, then the watermark moves to the high /
                          low
  bracket / oto / oco     exit legs held until the entry fills; one fill cancels the
                          other; a day that reached both exits leaves at the stop
Open, close, high and low are --source's adjusted prices, the ones the backtest fills at,
so opg/cls orders fill exactly where the backtest does. day orders expire at the close,
gtc orders stay, ioc/fok are canceled when their first price does not fill them.

Accounts (--account): margin (default, as Alpaca paper) has Reg T buying power (2 x
equity - positions, from $2,000 of equity), sells of a symbol not held open shorts, and
day trades are counted over 5 sessions (under $25,000 of equity the 4th is refused).
cash: buying power is the cash, no shorts.

Credentials: it accepts only APCA_API_KEY_ID / APCA_API_SECRET_KEY from the environment,
or the fixed sandbox values it prints when they are unset. Point a client at it with
  export APCA_API_BASE_URL=http://127.0.0.1:PORT
or in Python
  TradingClient(KEY, SECRET, paper=True, url_override="http://127.0.0.1:PORT")

Alpaca endpoints: /v2/account, /v2/account/activities[/{type}] (fills),
/v2/account/portfolio/history (1D), /v2/clock, /v2/calendar, /v2/orders (POST, GET,
DELETE), /v2/orders/{id} (GET, PATCH, DELETE), /v2/orders:by_client_order_id,
/v2/positions[/{symbol}] (GET, DELETE), /v2/assets[/{symbol}]; rate-limit headers and
Alpaca's error bodies included.
Market Data API: GET /v2/stocks/bars and /v2/stocks/{symbol}/bars (daily bars of sessions
already closed on the simulated clock, the adjusted prices of --source).

Sandbox endpoints (same key headers):
  POST   /sandbox/advance  {"sessions": 1}      to 15:00 of the next session; orders fill
                                                at the opens and closes crossed
  POST   /sandbox/clock    {"time": "2024-06-03T17:00"}   move forward (naive = New York)
  POST   /sandbox/faults   {"status": 500, "times": 2, "paths": ["/v2/orders"]}
                           {"delay": 3} {"malformed": true} {"timeout_after_accept": 5}
  DELETE /sandbox/faults   clear injected faults
  GET    /sandbox/state    clock, cash, equity, positions, orders, faults
"""

EXAMPLE = """\
examples:
  tradeship sandbox --date 2024-06-03
  tradeship sandbox --date 2024-06-03 --account cash --db out/cash.db
  tradeship sandbox --source parquet:../shared/data/sp500_daily.parquet --date 2020-03-16 \\
      --cash 50000 --db out/sandbox-2020.db --port 8800
  curl -H "APCA-API-KEY-ID: $APCA_API_KEY_ID" -H "APCA-API-SECRET-KEY: $APCA_API_SECRET_KEY" \\
      -X POST http://127.0.0.1:8765/sandbox/advance
"""


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from live.sandbox.server import DEFAULT_KEY, DEFAULT_SECRET, serve
    from tradeship.options import parse_symbols

    source = args.source
    if source is None and not Path(args.db).exists():
        source = settings.source  # a new database: TRADESHIP_SOURCE, else demo
    return serve(
        port=args.port,
        source=source,
        cash=args.cash,
        date=args.date,
        db_path=args.db,
        key=os.environ.get("APCA_API_KEY_ID") or DEFAULT_KEY,
        secret=os.environ.get("APCA_API_SECRET_KEY") or DEFAULT_SECRET,
        symbols=parse_symbols(args.symbols),
        account=args.account,
    )


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    sandbox = sub.add_parser(
        "sandbox",
        help="serve a local Alpaca-compatible paper broker on a simulated clock",
        description=SANDBOX_HELP,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sandbox.add_argument(
        "--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 = any free)"
    )
    sandbox.add_argument(
        "--source",
        help=(
            "market data for prices (default: what --db was created with, else "
            f"{settings.source!r}); 'demo', 'parquet:PATH', 'csv:DIR' or 'yfinance' "
            "(with --symbols)"
        ),
    )
    sandbox.add_argument("--symbols", help="comma-separated symbols (default: all of --source)")
    sandbox.add_argument(
        "--cash",
        type=float,
        help="starting cash of a new --db (default 100000; an existing --db keeps its own)",
    )
    sandbox.add_argument(
        "--account",
        choices=("margin", "cash"),
        help=(
            "account type of a new --db: margin (default, as Alpaca paper: 2x buying power, "
            "shorts, day trades counted) or cash (an existing --db keeps its own)"
        ),
    )
    sandbox.add_argument(
        "--date",
        help=(
            "NYSE session YYYY-MM-DD to open on, at 15:00 New York (default: the last "
            "session of the data; an existing --db can only move forward)"
        ),
    )
    sandbox.add_argument(
        "--db",
        default="sandbox.db",
        help="SQLite file with the sandbox's state (default sandbox.db)",
    )
    sandbox.set_defaults(func=cmd_sandbox)
