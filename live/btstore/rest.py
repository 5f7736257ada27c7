"""The HTTP side of the store: `live.alpaca_broker.AlpacaBroker`, plus market data.

One adapter serves the store, its feeds and its broker. It is the retrying adapter of
`live/alpaca_broker.py` (timeouts, pacing under 200 requests/minute, bounded retries of
429/5xx, orders looked up by client_order_id before any re-send) with four additions a
long-running process needs:

- `fresh_budget()`: the retry budget is per operation (one poll, one order), not spent
  once for the life of the process.
- `once(label, fn)`: one attempt, errors classified like `_call`'s but never slept on.
  Polls use it: the poll loop itself is the retry, at the store's reconnect pace.
- richer order dicts (`filled_qty`, `filled_avg_price`, `filled_at`, `submitted_at`) so
  fills can reach Backtrader.
- `data_client`: alpaca-py's `StockHistoricalDataClient` on the same HTTP session (same
  timeout and pacer), at `data_url` (Alpaca's data host by default; the sandbox serves
  both APIs on one URL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from live.alpaca_broker import (
    RETRY_STATUSES,
    AlpacaBroker,
    BrokerAuthError,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    _api_error_message,
    credentials_problem,
)
from live.settings import LiveSettings


class RestAdapter(AlpacaBroker):
    """`AlpacaBroker` for a process that runs for days (see the module docstring)."""

    def __init__(
        self,
        settings: LiveSettings,
        *,
        data_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        problem = credentials_problem(settings)
        if problem:
            raise BrokerError(problem)
        super().__init__(settings, sleep=sleep, monotonic=monotonic)
        from alpaca.data.historical.stock import StockHistoricalDataClient

        self.data_url = data_url.rstrip("/") if data_url else None
        self.data_client = StockHistoricalDataClient(
            settings.api_key_id.get_secret_value(),
            settings.api_secret_key.get_secret_value(),
            url_override=self.data_url,
        )
        self.data_client._retry = 0  # retries are ours, as for the trading client
        self.data_client._session = self.client._session  # same timeout and pacer

    def fresh_budget(self) -> None:
        """Start a new operation with the whole retry budget (TRADESHIP_RETRY_BUDGET)."""
        self._budget_left = self.settings.retry_budget

    def call(self, label: str, fn: Callable[[], Any]) -> Any:
        """`fn()` with the adapter's bounded retries, on a fresh budget."""
        self.fresh_budget()
        return self._call(label, fn)

    def once(self, label: str, fn: Callable[[], Any]) -> Any:
        """`fn()` once; failures raise the adapter's error classes, without waiting."""
        import requests
        from alpaca.common.exceptions import APIError
        from pydantic import ValidationError

        try:
            return fn()
        except APIError as exc:
            status, message = _api_error_message(exc)
            if status in (401, 403) and "buying power" not in message.lower():
                raise BrokerAuthError(
                    f"Alpaca refused the credentials ({status}: {message}) during {label}: "
                    "check APCA_API_KEY_ID, APCA_API_SECRET_KEY and APCA_API_BASE_URL"
                ) from None
            if status in RETRY_STATUSES:
                raise BrokerUnavailable(f"{label}: Alpaca answered {status} ({message})") from None
            raise BrokerRejected(f"{label}: Alpaca answered {status}: {message}", status) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise BrokerUnavailable(
                f"{label}: no answer from {self.base_url} ({type(exc).__name__})"
            ) from None
        except (ValueError, ValidationError) as exc:
            raise BrokerUnavailable(
                f"{label}: malformed answer from the broker ({type(exc).__name__})"
            ) from None

    @staticmethod
    def _order_dict(order: Any) -> dict[str, Any]:
        base = AlpacaBroker._order_dict(order)
        price = getattr(order, "filled_avg_price", None)
        return {
            **base,
            "filled_qty": float(order.filled_qty or 0.0),
            "filled_avg_price": None if price in (None, "") else float(price),
            "filled_at": getattr(order, "filled_at", None),
            "submitted_at": getattr(order, "submitted_at", None),
        }

    def account(self) -> dict[str, Any]:
        """The account fields the broker needs (cash included), with retries."""
        account = self.call("reading the account", self.client.get_account)
        status = getattr(account.status, "value", account.status)
        return {
            "id": str(account.id),
            "status": None if status is None else str(status),
            "trading_blocked": account.trading_blocked,
            "account_blocked": account.account_blocked,
            "trade_suspended_by_user": account.trade_suspended_by_user,
            "cash": float(account.cash or 0.0),
            "equity": float(account.equity or 0.0),
            "buying_power": float(account.buying_power or 0.0),
        }

    def position_rows(self) -> list[dict[str, float | str]]:
        rows = self.call("reading positions", self.client.get_all_positions)
        return [
            {
                "symbol": p.symbol,
                "qty": float(p.qty),
                "avg_entry_price": float(p.avg_entry_price or 0.0),
                "current_price": float(p.current_price or 0.0),
            }
            for p in rows
        ]

    def orders_since(self, after: Any) -> list[dict[str, Any]]:
        """Every order (any status) submitted after `after`, oldest first, in one request."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        request = GetOrdersRequest(
            status=QueryOrderStatus.ALL, after=after, limit=500, direction="asc"
        )
        rows = self.once("reading orders", lambda: self.client.get_orders(request))
        return [self._order_dict(o) for o in rows]
