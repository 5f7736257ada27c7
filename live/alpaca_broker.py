"""The Alpaca side of a run, through the official alpaca-py SDK.

Credentials come from APCA_API_KEY_ID, APCA_API_SECRET_KEY and APCA_API_BASE_URL only;
they are never logged or written anywhere.
"""

from __future__ import annotations

import os
from typing import Any

from live.execution import PlannedOrder

PAPER_URL = "https://paper-api.alpaca.markets"


class BrokerError(RuntimeError):
    """The broker cannot be used as configured; the message says what to set."""


def broker_from_env() -> AlpacaBroker:
    key = os.environ.get("APCA_API_KEY_ID", "")
    secret = os.environ.get("APCA_API_SECRET_KEY", "")
    url = os.environ.get("APCA_API_BASE_URL", PAPER_URL)
    missing = [n for n, v in (("APCA_API_KEY_ID", key), ("APCA_API_SECRET_KEY", secret)) if not v]
    if missing:
        raise BrokerError(f"set {' and '.join(missing)} (Alpaca credentials) to trade")
    return AlpacaBroker(key, secret, url)


class AlpacaBroker:
    """Account, positions and orders via alpaca-py's TradingClient."""

    def __init__(self, key: str, secret: str, base_url: str) -> None:
        from alpaca.trading.client import TradingClient

        paper = "paper" in base_url or not base_url.startswith("https://api.alpaca.markets")
        self.base_url = base_url.rstrip("/")
        self.client = TradingClient(key, secret, paper=paper, url_override=self.base_url)

    def account_snapshot(self) -> dict[str, Any]:
        account = self.client.get_account()
        return {
            "id": str(account.id),
            "equity": float(account.equity or 0.0),
            "buying_power": float(account.buying_power or 0.0),
        }

    def positions(self) -> dict[str, float]:
        return {p.symbol: float(p.qty) for p in self.client.get_all_positions()}

    def submit(self, order: PlannedOrder) -> dict[str, Any]:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        request = MarketOrderRequest(
            symbol=order.symbol,
            qty=order.qty,
            side=OrderSide.BUY if order.side == "buy" else OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=order.client_order_id,
        )
        placed = self.client.submit_order(request)
        return {"id": str(placed.id), "status": str(placed.status.value)}
