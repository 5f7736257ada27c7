"""The Alpaca side of a run, through the official alpaca-py SDK, made safe to retry.

- Every HTTP request has a timeout (alpaca-py sets none) and passes a pacer that keeps the
  run under Alpaca's 200 requests/minute.
- 429 and 5xx are retried with backoff inside a bounded time budget, honouring
  `X-Ratelimit-Reset`; auth errors and other 4xx are not retried and are reported plainly.
- alpaca-py's own blind re-send of POSTs is switched off: an order whose answer was lost
  (timeout, 5xx, malformed body, "client_order_id must be unique") is looked up by its
  client_order_id, never re-sent under a new id.

Credentials come from LiveSettings (APCA_API_KEY_ID, APCA_API_SECRET_KEY,
APCA_API_BASE_URL) and are never logged or written anywhere.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from live.execution import PlannedOrder
from live.settings import LiveSettings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REQUESTS_PER_MINUTE = 190  # Alpaca allows 200; keep a margin


class BrokerError(RuntimeError):
    """The broker cannot be used, or refused; the message says what happened and what to do."""


class BrokerAuthError(BrokerError):
    pass


class BrokerRejected(BrokerError):
    """A 4xx answer: the request itself is wrong; retrying would not help."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class BrokerUnavailable(BrokerError):
    """No usable answer within the retry budget (timeouts, 429s, 5xx, malformed bodies)."""


def credentials_problem(settings: LiveSettings) -> str | None:
    """Why a broker cannot be built from `settings`: missing keys, paper/live contradictions."""
    missing = [
        name
        for name, value in (
            ("APCA_API_KEY_ID", settings.api_key_id),
            ("APCA_API_SECRET_KEY", settings.api_secret_key),
        )
        if value is None or not value.get_secret_value()
    ]
    if missing:
        return f"set {' and '.join(missing)} (Alpaca credentials) to trade"
    return settings.broker_config_problem()


def broker_from_env(settings: LiveSettings | None = None, **kwargs: Any) -> AlpacaBroker:
    settings = settings or LiveSettings()
    problem = credentials_problem(settings)
    if problem:
        raise BrokerError(problem)
    return AlpacaBroker(settings, **kwargs)


def _api_error_message(exc: Exception) -> tuple[int | None, str]:
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "_error", "") or exc)
    try:
        message = json.loads(text).get("message", text)
    except (ValueError, AttributeError):
        message = text[:200] or type(exc).__name__
    return status, str(message)


def _reset_wait(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    reset = headers.get("X-Ratelimit-Reset") or headers.get("x-ratelimit-reset")
    try:
        return max(0.0, float(reset) - time.time()) if reset else None
    except ValueError:
        return None


class BrokerPort(Protocol):
    """The one broker port both live paths use (the exported run() and live.btstore)."""

    def account_snapshot(self) -> dict[str, Any]: ...
    def clock(self) -> dict[str, Any]: ...
    def positions(self) -> dict[str, float]: ...
    def open_orders(self) -> list[dict[str, Any]]: ...
    def submit_once(self, order: PlannedOrder) -> dict[str, Any]: ...
    def order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None: ...


class AlpacaBroker:
    """Account, clock, positions and idempotent orders via alpaca-py's TradingClient."""

    def __init__(
        self,
        settings: LiveSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        import requests
        from alpaca.trading.client import TradingClient

        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.client = TradingClient(
            settings.api_key_id.get_secret_value(),
            settings.api_secret_key.get_secret_value(),
            paper=settings.paper,
            url_override=self.base_url,
        )
        # alpaca-py re-sends 429/504 itself and sets no timeout: retries are ours (below),
        # and every request gets the configured timeout.
        self.client._retry = 0
        session = requests.Session()
        original = session.request
        timeout = settings.request_timeout

        def request_with_timeout(method: str, url: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            self._pace()
            return original(method, url, **kwargs)

        session.request = request_with_timeout  # type: ignore[method-assign]
        self.client._session = session
        self._sleep, self._monotonic = sleep, monotonic
        self._sent: collections.deque[float] = collections.deque()
        self._budget_left = settings.retry_budget
        self.requests_made = 0

    # -- plumbing -------------------------------------------------------------------------

    def _pace(self) -> None:
        now = self._monotonic()
        while self._sent and now - self._sent[0] > 60:
            self._sent.popleft()
        if len(self._sent) >= REQUESTS_PER_MINUTE:
            self._sleep(max(0.0, 60 - (now - self._sent[0])))
        self._sent.append(self._monotonic())
        self.requests_made += 1

    def _wait(self, seconds: float, why: str) -> None:
        if seconds > self._budget_left:
            raise BrokerUnavailable(
                f"{why}; the retry budget of {self.settings.retry_budget:g} s is used up: "
                "no order was sent blindly, run again later (the same slot is safe to rerun)"
            )
        self._budget_left -= seconds
        self._sleep(seconds)

    def _call(self, label: str, fn: Callable[[], Any]) -> Any:
        """`fn()` with retries on 429/5xx/timeouts/malformed answers; 4xx raise at once."""
        import requests
        from alpaca.common.exceptions import APIError
        from pydantic import ValidationError

        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except APIError as exc:
                status, message = _api_error_message(exc)
                if status in (401, 403) and "buying power" not in message.lower():
                    raise BrokerAuthError(
                        f"Alpaca refused the credentials ({status}: {message}) during {label}: "
                        "check APCA_API_KEY_ID, APCA_API_SECRET_KEY and APCA_API_BASE_URL"
                    ) from None
                if status not in RETRY_STATUSES:
                    raise BrokerRejected(
                        f"{label}: Alpaca answered {status}: {message}", status
                    ) from None
                why = f"{label}: Alpaca answered {status} ({message})"
                wait = _reset_wait(exc) if status == 429 else None
            except (requests.Timeout, requests.ConnectionError) as exc:
                why = f"{label}: no answer from {self.base_url} ({type(exc).__name__})"
                wait = None
            except (ValueError, ValidationError) as exc:
                why = f"{label}: malformed answer from the broker ({type(exc).__name__})"
                wait = None
            if attempt >= self.settings.max_attempts:
                raise BrokerUnavailable(f"{why}; gave up after {attempt} attempts")
            self._wait(wait if wait is not None else min(8.0, 0.5 * 2 ** (attempt - 1)), why)

    # -- reads ----------------------------------------------------------------------------

    def account_snapshot(self) -> dict[str, Any]:
        account = self._call("reading the account", self.client.get_account)
        status = getattr(account.status, "value", account.status)
        return {
            "id": str(account.id),
            "status": None if status is None else str(status),
            "trading_blocked": account.trading_blocked,
            "account_blocked": account.account_blocked,
            "trade_suspended_by_user": account.trade_suspended_by_user,
            "equity": float(account.equity or 0.0),
            "cash": float(account.cash or 0.0),
            "buying_power": float(account.buying_power or 0.0),
        }

    def clock(self) -> dict[str, Any]:
        """The broker's clock (`/v2/clock`): the time a run that places orders acts at."""
        import pandas as pd

        clock = self._call("reading the market clock", self.client.get_clock)
        stamp = pd.Timestamp(clock.timestamp)
        stamp = stamp.tz_localize("America/New_York") if stamp.tzinfo is None else stamp
        return {"timestamp": stamp.tz_convert("America/New_York"), "is_open": bool(clock.is_open)}

    def market_is_open(self) -> bool:
        return bool(self.clock()["is_open"])

    def positions(self) -> dict[str, float]:
        rows = self._call("reading positions", self.client.get_all_positions)
        return {p.symbol: float(p.qty) for p in rows}

    def open_orders(self) -> list[dict[str, Any]]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        rows = self._call(
            "reading open orders",
            lambda: self.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)),
        )
        return [self._order_dict(o) for o in rows]

    def order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None:
        try:
            order = self._call(
                f"looking up order {client_order_id}",
                lambda: self.client.get_order_by_client_id(client_order_id),
            )
        except BrokerRejected as exc:
            if exc.status == 404:
                return None
            raise
        return self._order_dict(order)

    @staticmethod
    def _order_dict(order: Any) -> dict[str, Any]:
        qty = float(order.qty or 0.0)
        filled = float(order.filled_qty or 0.0)
        return {
            "id": str(order.id),
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": getattr(order.side, "value", order.side),
            "qty": qty,
            "remaining": max(0.0, qty - filled),
            "status": str(getattr(order.status, "value", order.status)),
        }

    # -- orders ---------------------------------------------------------------------------

    def submit_once(self, order: PlannedOrder) -> dict[str, Any]:
        """Submit `order` unless its client_order_id is already at the broker.

        Returns the broker's view of the order plus `outcome`: "submitted",
        "already_submitted" or "already_traded_in_slot". A lost answer leads to a lookup,
        never to a new id.
        """
        existing = self.order_by_client_id(order.client_order_id)
        if existing is not None:
            return {**existing, "outcome": "already_submitted"}
        if order.other_side_id:
            # a rerun of the slot after fills can plan a small opposite trade: the slot
            # has traded this symbol already, and one decision trades it once
            opposite = self.order_by_client_id(order.other_side_id)
            if opposite is not None:
                return {**opposite, "outcome": "already_traded_in_slot"}
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        request = MarketOrderRequest(
            symbol=order.symbol,
            qty=order.qty,
            side=OrderSide.BUY if order.side == "buy" else OrderSide.SELL,
            time_in_force=TimeInForce(order.time_in_force),
            client_order_id=order.client_order_id,
        )

        outcome = {"value": "submitted"}

        def send_or_find() -> Any:
            try:
                return self.client.submit_order(request)
            except Exception as exc:  # noqa: BLE001 - any lost answer: look the id up first
                _, message = _api_error_message(exc)
                duplicate = "client_order_id must be unique" in message
                found = self._lookup_quietly(order.client_order_id)
                if found is not None:
                    # a lost answer to our own order, or a concurrent run that won the race
                    outcome["value"] = "already_submitted" if duplicate else "submitted"
                    return found
                if duplicate:
                    raise BrokerRejected(
                        f"{order.client_order_id} exists at the broker but cannot be read", 422
                    ) from None
                raise

        placed = self._call(f"submitting {order.side} {order.qty:g} {order.symbol}", send_or_find)
        result = placed if isinstance(placed, dict) else self._order_dict(placed)
        return {**result, "outcome": outcome["value"]}

    def _lookup_quietly(self, client_order_id: str) -> dict[str, Any] | None:
        try:
            order = self.client.get_order_by_client_id(client_order_id)
        except Exception:  # noqa: BLE001 - the caller's retry loop decides what next
            return None
        return self._order_dict(order)
