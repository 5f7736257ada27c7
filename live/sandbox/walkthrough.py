"""A walk through the sandbox with alpaca-py, as a user moving to Alpaca would meet it.

    python -m live.sandbox.walkthrough            # prints each step; exits 1 on a surprise

It starts a sandbox on the built-in demo data (a margin account with $20,000, so pattern
day trader rules apply) and, with alpaca-py's `TradingClient` only (plus the sandbox's own
`/sandbox/clock` to move time), shows: the order lifecycle (accepted, new, filled at the
close with the simulated `filled_at`), a limit order that fills and one that does not,
day-order expiry, a short sale on margin, a day trade counted, opg and cls orders filling
at exactly the open and close of the data, and an opg order refused after 09:28.
`run()` returns what it saw, so a test can check every step.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from live.sandbox.app import Exchange
from live.sandbox.broker import load_market_data
from live.sandbox.server import SandboxServer

NEW_YORK = ZoneInfo("America/New_York")
DAY = "2024-03-01"  # a Friday: the walk starts at 15:00 New York
NEXT = "2024-03-04"  # the next session (Monday)


class Walk:
    """One sandbox, one alpaca-py client, and the steps' findings."""

    def __init__(self, sandbox: SandboxServer, say: Callable[[str], None]) -> None:
        self.sandbox = sandbox
        self.client = sandbox.trading_client()
        self.say = say
        self.bars = load_market_data("demo").bars
        self.seen: dict[str, Any] = {}

    def clock(self, when: str) -> None:
        """Move the simulated clock (naive = New York) with the sandbox-only endpoint."""
        request = urllib.request.Request(
            f"{self.sandbox.base_url}/sandbox/clock",
            data=json.dumps({"time": when}).encode(),
            headers={
                "APCA-API-KEY-ID": self.sandbox.key,
                "APCA-API-SECRET-KEY": self.sandbox.secret,
                "Content-Type": "application/json",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as answer:  # raises on 4xx/5xx
            answer.read()
        self.say(f"  clock -> {when}")

    def price(self, symbol: str, day: str, field: str) -> float:
        return float(self.bars[symbol].loc[day, field])

    def market(self, symbol: str, qty: float, side: OrderSide, tif: TimeInForce) -> Any:
        order = self.client.submit_order(
            MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=tif)
        )
        self.say(f"  {side.value} {qty} {symbol} market {tif.value} -> {order.status.value}")
        return order

    def limit(self, symbol: str, qty: float, side: OrderSide, price: float) -> Any:
        order = self.client.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=qty,
                side=side,
                time_in_force=TimeInForce.DAY,
                limit_price=price,
            )  # fmt: skip
        )
        self.say(f"  {side.value} {qty} {symbol} limit {price} day -> {order.status.value}")
        return order

    def status(self, order: Any) -> Any:
        return self.client.get_order_by_id(order.id)

    def limit_symbol(self) -> tuple[str, float, float]:
        """A symbol whose NEXT session traded down from the open by more than 2 cents:
        (symbol, a buy limit the low reaches, a buy limit below the low)."""
        for symbol in sorted(self.bars):
            low, opening = self.price(symbol, NEXT, "low"), self.price(symbol, NEXT, "open")
            reached = math.ceil(low * 100) / 100
            if reached < opening - 0.01 and low > 2:
                return symbol, reached, round(math.floor(low * 100) / 100 - 0.01, 2)
        raise RuntimeError("no demo symbol traded down on " + NEXT)


def run(
    say: Callable[[str], None] = print, on_exchange: Callable[[Exchange], None] | None = None
) -> dict[str, Any]:
    """Walk through every step; returns the findings (orders as alpaca-py models)."""
    with tempfile.TemporaryDirectory(prefix="tradeship-walk-") as tmp:
        db = Path(tmp) / "walk.db"
        with SandboxServer(db, date=DAY, cash=20_000, on_exchange=on_exchange) as sandbox:
            walk = Walk(sandbox, say)
            _steps(walk)
            return walk.seen


def _steps(w: Walk) -> None:
    buy, sell = OrderSide.BUY, OrderSide.SELL
    seen = w.seen
    account = w.client.get_account()
    seen["account"] = account
    w.say(f"margin account: multiplier {account.multiplier}, buying power {account.buying_power}")

    w.say("1. order lifecycle: accepted on submit, new once routed, filled at the close")
    order = w.market("SYN001", 10, buy, TimeInForce.DAY)
    seen["lifecycle"] = [order.status.value]
    w.clock(f"{DAY}T15:01")
    seen["lifecycle"].append(w.status(order).status.value)
    w.clock(f"{DAY}T16:00")
    filled = w.status(order)
    seen["lifecycle"].append(filled.status.value)
    seen["lifecycle_order"] = filled
    seen["lifecycle_close"] = w.price("SYN001", DAY, "close")
    w.say(f"  filled at {filled.filled_avg_price} at {filled.filled_at} (the close)")

    w.say("2./3. limit orders for the next session, sent after 19:00; day orders expire")
    w.clock(f"{DAY}T20:00")
    symbol, reached, below = w.limit_symbol()
    seen["limit_symbol"], seen["limit_prices"] = symbol, (reached, below)
    fills_limit = w.limit(symbol, 5, buy, reached)
    misses_limit = w.limit(symbol, 5, buy, below)

    w.say("4. a short sale on margin: sell what is not held")
    short = w.market("SYN003", 5, sell, TimeInForce.DAY)

    w.say("5. opg: buy at the next open (sent after 19:00), sell the same day: a day trade")
    opening = w.market("SYN004", 3, buy, TimeInForce.OPG)

    w.say("6. an opg order after 09:28 is refused, as Alpaca refuses it")
    w.clock(f"{NEXT}T09:29")
    try:
        w.market("SYN005", 1, buy, TimeInForce.OPG)
        seen["late_opg"] = None
    except APIError as exc:
        seen["late_opg"] = (exc.status_code, exc.message)
        w.say(f"  refused: {exc.status_code} {exc.message}")

    w.clock(f"{NEXT}T10:00")
    seen["after_open"] = {
        "short": w.status(short),
        "opg": w.status(opening),
        "fills_limit": w.status(fills_limit),
    }
    seen["next_open"] = {s: w.price(s, NEXT, "open") for s in ("SYN003", "SYN004")}
    closing = w.market("SYN004", 3, sell, TimeInForce.DAY)
    on_close = w.market("SYN001", 10, sell, TimeInForce.CLS)
    w.clock(f"{NEXT}T16:00")
    seen["limits"] = (w.status(fills_limit), w.status(misses_limit))
    seen["day_trade_sell"] = w.status(closing)
    seen["cls"] = w.status(on_close)
    seen["next_close"] = {s: w.price(s, NEXT, "close") for s in ("SYN001", "SYN004")}
    seen["short_position"] = w.client.get_open_position("SYN003")
    account = w.client.get_account()
    seen["account_after"] = account
    w.say(
        f"  limit at {reached}: {seen['limits'][0].status.value}; at {below}: "
        f"{seen['limits'][1].status.value}; short SYN003 qty "
        f"{seen['short_position'].qty}; daytrade_count {account.daytrade_count}"
    )
    seen["activities"] = w.client.get("/account/activities", {"activity_types": "FILL"})


def main() -> int:
    """Run the walk and print it; 1 when a step did not behave as documented."""
    seen = run()
    ok = (
        seen["lifecycle"] == ["accepted", "new", "filled"]
        and seen["late_opg"] is not None
        and seen["limits"][0].status.value == "filled"
        and seen["limits"][1].status.value == "expired"
        and float(seen["short_position"].qty) == -5
        and seen["account_after"].daytrade_count == 1
    )
    print("walkthrough: every step as documented" if ok else "walkthrough: a step differed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
