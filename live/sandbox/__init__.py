"""A local Alpaca-compatible paper broker ("sandbox") for tests and offline dry runs.

Alpaca cannot be reached from every machine, so tradeship ships a paper broker that speaks
Alpaca's Trading API over real HTTP: the real `alpaca-py` client talks to it unchanged.

    from live.sandbox import SandboxServer
    with SandboxServer("sandbox.db", date="2024-03-01") as sandbox:
        client = sandbox.trading_client()  # TradingClient(key, secret, url_override=...)

or `tradeship sandbox --date 2024-03-01` and point APCA_API_BASE_URL at it.

Alpaca endpoints (headers APCA-API-KEY-ID / APCA-API-SECRET-KEY required, else 401
{"code": 40110000, "message": "request is not authorized"}):

    GET    /v2/account                      cash, equity, buying power (a cash account)
    GET    /v2/clock                        simulated time, is_open, next_open, next_close
    GET    /v2/calendar?start=&end=         NYSE sessions (early closes included)
    POST   /v2/orders                       market orders: qty or notional, buy/sell,
                                            time_in_force day|gtc|opg, client_order_id
    GET    /v2/orders?status=&limit=&after=&until=&direction=&symbols=&side=
    GET    /v2/orders/{id}
    GET    /v2/orders:by_client_order_id?client_order_id=
    DELETE /v2/orders/{id}                  204; 422 if no longer open (e.g. filled)
    DELETE /v2/orders                       207, one {"id", "status", "body"} per order
    GET    /v2/positions
    GET    /v2/positions/{symbol_or_asset_id}
    GET    /v2/assets/{symbol_or_asset_id}  every symbol of the data source; fractionable
    GET    /v2/stocks/bars?symbols=&timeframe=1Day&start=&end=&limit=&page_token=
                                            Market Data API: completed daily bars only
                                            (no lookahead), adjusted, n/vw null

Errors as Alpaca sends them: duplicate client_order_id (even of a canceled order) → 422
{"code": 40010001, "message": "client_order_id must be unique"}; insufficient buying power
→ 403 {"code": 40310000, ...}; unknown symbol → 422 {"code": 42210000, ...}.
Every response carries X-Ratelimit-Limit (200), X-Ratelimit-Remaining and
X-Ratelimit-Reset (unix seconds); the 201st /v2 request within a minute gets 429.

Sandbox-only endpoints (same auth headers; they do not count against the rate limit):

    POST   /sandbox/advance  {"sessions": 1}       to 15:00 New York of the next session
                                                   (queued orders fill at its open)
    POST   /sandbox/clock    {"time": "2024-03-01T17:00:00-05:00"}   move forward to a time
                                                   (naive = New York); fills at opens crossed
    POST   /sandbox/faults   inject faults for the next matching /v2 requests:
             {"status": 429|500|502|503|504, "times": N, "paths": ["/v2/account"],
              "methods": ["GET"]}                  answer that error, request not run
             {"delay": seconds, "times": N}        answer late
             {"malformed": true, "times": N}       run the request, send truncated JSON
             {"timeout_after_accept": seconds, "times": N}
                                                   POST /v2/orders stores the order, then
                                                   sleeps before answering
    DELETE /sandbox/faults                          clear pending faults
    GET    /sandbox/state                           clock, cash, equity, positions, order
                                                   counts, pending faults, rate limit

Fills and valuation (details in live.sandbox.broker): the clock is simulated and stands
still until moved. A market order fills entirely at the open of the session it executes in
(the price the backtest fills the same decision at): at once while the market is open,
else at the next open the clock crosses. Positions are valued at the session's open while
the market is open in it and at its close after it. State is in SQLite: a restart on the
same file keeps account, clock and orders; faults and the rate-limit window are in memory.
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
