"""A local Alpaca-compatible paper broker ("sandbox") for tests and offline dry runs.

Alpaca cannot be reached from every machine, so tradeship ships a paper broker that speaks
Alpaca's Trading API over real HTTP: the real `alpaca-py` client talks to it unchanged.

    from live.sandbox import SandboxServer
    with SandboxServer("sandbox.db", date="2024-03-01") as sandbox:
        client = sandbox.trading_client()  # TradingClient(key, secret, url_override=...)

or `tradeship sandbox --date 2024-03-01` and point APCA_API_BASE_URL at it.

Alpaca endpoints (headers APCA-API-KEY-ID / APCA-API-SECRET-KEY required, else 401
{"code": 40110000, "message": "request is not authorized"}): account, account activities
(fills), portfolio history (1D), clock, calendar, orders (POST, GET, PATCH, DELETE; market,
limit, stop, stop_limit, trailing_stop; simple, bracket, oto, oco; day, gtc, opg, cls, ioc,
fok), positions (GET, DELETE), assets, and the Market Data API's daily bars
(/v2/stocks/bars, /v2/stocks/{symbol}/bars). The full list, the fill-price model and the
account rules are in live/sandbox/README.md.

Orders answer `accepted`, become `new` when the clock moves while the market is open, and
fill only when the simulated clock crosses a price the daily data has: the open (opg
orders, and market orders sent while the market was closed) or the close (cls orders, and
market orders sent during the session); limit and stop orders at the open or against the
session's range (live.sandbox.fills). A margin account (default) or a cash account.

Sandbox-only endpoints (same auth headers; they do not count against the rate limit):
POST /sandbox/advance {"sessions": 1}, POST /sandbox/clock {"time": "..."},
POST|DELETE /sandbox/faults, GET /sandbox/state.

State is in SQLite: a restart on the same file keeps account, clock and orders; faults
and the rate-limit window are in memory.
"""

from live.sandbox.app import Exchange, create_app
from live.sandbox.broker import AlpacaError, SandboxBroker
from live.sandbox.server import DEFAULT_KEY, DEFAULT_PORT, DEFAULT_SECRET, SandboxServer, serve

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_PORT",
    "DEFAULT_SECRET",
    "AlpacaError",
    "Exchange",
    "SandboxBroker",
    "SandboxServer",
    "create_app",
    "serve",
]
