"""Strict parsing of what clients send the sandbox: order bodies, quantities, prices, times.

Every function raises `AlpacaError` (Alpaca's 4xx status, code and a one-sentence message)
and never lets a `decimal`, `datetime` or overflow error escape: a bad input is the
client's mistake, never a server error.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from live.sandbox import clock as clk

QTY_PLACES = 9
MAX_QTY = Decimal(10) ** 9  # shares; far above any real order, far below Decimal trouble
MAX_NOTIONAL = Decimal(10) ** 12  # dollars
MAX_PRICE = Decimal(10) ** 7
MAX_CLIENT_ORDER_ID = 48
ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")  # no sign, exponent, "_" or spaces


class AlpacaError(Exception):
    """An error answer in Alpaca's shape: HTTP status plus {"code", "message"}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def invalid(message: str) -> AlpacaError:
    return AlpacaError(422, 40010001, message)


def unprocessable(message: str) -> AlpacaError:
    return AlpacaError(422, 42210000, message)


def parse_decimal(value: Any, name: str, places: int, maximum: Decimal) -> Decimal | None:
    """A positive amount from a JSON number or a plain decimal string, refused (never
    rounded) when it has more than `places` decimals or exceeds `maximum`."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise invalid(f"{name} must be a number or a decimal string")
    if isinstance(value, str):
        text = value.strip()
        if not _PLAIN_DECIMAL.fullmatch(text):
            raise invalid(f'invalid {name} {value!r}: write a plain decimal such as "10.5"')
    elif isinstance(value, int):
        text = str(value)
    else:
        text = repr(value)  # the shortest text that round-trips the float
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise invalid(f"invalid {name} {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise invalid(f"{name} must be > 0")
    if amount > maximum:
        raise invalid(f"{name} must be at most {maximum}")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise invalid(f"{name} {text} has more than {places} decimal places")
    return amount


def parse_price(value: Any, name: str) -> Decimal | None:
    """A limit/stop price under Alpaca's sub-penny rule (2 decimals from $1, else 4)."""
    price = parse_decimal(value, name, 4, MAX_PRICE)
    if price is not None and price >= 1:
        exponent = price.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2:
            raise unprocessable(
                f"invalid {name} {price}. sub-penny increment does not fulfill minimum "
                "pricing criteria"
            )
    return price


def parse_instant(text: str, name: str) -> dt.datetime:
    """An RFC 3339 time (naive = New York), or 422 naming the parameter."""
    try:
        return clk.parse_instant(text)
    except (ValueError, OverflowError):
        raise invalid(
            f"{name} must be an RFC 3339 time such as 2024-06-03T09:30:00-04:00"
        ) from None


def parse_day(text: str, name: str) -> dt.date:
    """A date (or an RFC 3339 time's New York date), or 422 naming the parameter."""
    try:
        return clk.parse_day(text)
    except (ValueError, OverflowError):
        raise invalid(f"{name} must be a date YYYY-MM-DD or an RFC 3339 time") from None


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    client_order_id: str
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    order_class: str = "simple"
    take_profit: Decimal | None = None  # a bracket/oto/oco exit: limit price
    stop_loss: Decimal | None = None  # a bracket/oto/oco exit: stop price
    stop_loss_limit: Decimal | None = None  # ... and its limit (a stop-limit exit)

    @property
    def fractional(self) -> bool:
        return self.notional is not None or (self.qty is not None and self.qty % 1 != 0)


def client_order_id_of(value: Any) -> str:
    if value in (None, ""):
        return str(uuid.uuid4())
    if not isinstance(value, str):
        raise invalid("client_order_id must be a string")
    if len(value) > MAX_CLIENT_ORDER_ID:
        raise invalid(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
    return value


def _exit_legs(
    body: dict[str, Any], order_class: str
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(take_profit.limit_price, stop_loss.stop_price, stop_loss.limit_price) of an
    advanced order, with Alpaca's rules on which legs each class needs."""
    legs = {}
    for name in ("take_profit", "stop_loss"):
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise invalid(f"{name} must be an object")
        legs[name] = value
    if order_class == "simple":
        if legs["take_profit"] or legs["stop_loss"]:
            raise invalid("take_profit/stop_loss need order_class bracket, oco or oto")
        return None, None, None
    take = legs["take_profit"] or {}
    stop = legs["stop_loss"] or {}
    take_profit = parse_price(take.get("limit_price"), "take_profit.limit_price")
    stop_loss = parse_price(stop.get("stop_price"), "stop_loss.stop_price")
    stop_loss_limit = parse_price(stop.get("limit_price"), "stop_loss.limit_price")
    if stop_loss_limit is not None and stop_loss is None:
        raise invalid("stop_loss.stop_price is required")
    needs_both = order_class in ("bracket", "oco")
    if needs_both and (take_profit is None or stop_loss is None):
        raise invalid(f"{order_class} orders need take_profit.limit_price and stop_loss.stop_price")
    if order_class == "oto" and (take_profit is None) == (stop_loss is None):
        raise invalid("oto orders need exactly one of take_profit and stop_loss")
    return take_profit, stop_loss, stop_loss_limit


def parse_order_request(body: Any) -> OrderRequest:
    """Check a POST /v2/orders body the way Alpaca does (422 with code 40010001/42210000)."""
    if not isinstance(body, dict):
        raise AlpacaError(400, 40010000, "request body format is invalid")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        raise invalid("symbol is required")
    side = body.get("side")
    if side not in ("buy", "sell"):
        raise invalid("side must be buy or sell")
    order_type = body.get("type", body.get("order_type"))
    if order_type is None:
        raise invalid("type is required")
    if order_type not in ORDER_TYPES:
        raise unprocessable(
            f"order type {order_type!r} is not supported by the sandbox "
            f"(use one of {', '.join(ORDER_TYPES)})"
        )
    tif = body.get("time_in_force")
    if tif is None:
        raise invalid("time_in_force is required")
    if tif not in TIME_IN_FORCE:
        raise invalid(f"invalid time_in_force {tif!r}")
    order_class = body.get("order_class") or "simple"
    if order_class not in ("simple", "bracket", "oco", "oto"):
        raise invalid(f"invalid order_class {order_class!r}")
    if body.get("extended_hours"):
        raise unprocessable("extended hours order must be DAY limit orders")
    qty = parse_decimal(body.get("qty"), "qty", QTY_PLACES, MAX_QTY)
    notional = parse_decimal(body.get("notional"), "notional", 2, MAX_NOTIONAL)
    if qty is not None and notional is not None:
        raise invalid("qty and notional cannot both be specified")
    if qty is None and notional is None:
        raise invalid("qty or notional is required")
    take_profit, stop_loss, stop_loss_limit = _exit_legs(body, order_class)
    limit_price = parse_price(body.get("limit_price"), "limit_price")
    if order_class == "oco":  # its own limit is the take-profit leg
        if limit_price not in (None, take_profit):
            raise invalid("an oco order's limit_price is its take_profit.limit_price")
        limit_price = take_profit
    stop_price = parse_price(body.get("stop_price"), "stop_price")
    if order_type in ("limit", "stop_limit") and limit_price is None:
        raise invalid("limit_price is required for limit orders")
    if order_type in ("stop", "stop_limit") and stop_price is None:
        raise invalid("stop_price is required for stop orders")
    if order_type in ("market", "stop") and limit_price is not None:
        raise invalid(f"limit_price must not be given for {order_type} orders")
    if order_type in ("market", "limit") and stop_price is not None:
        raise invalid(f"stop_price must not be given for {order_type} orders")
    trail_price = parse_price(body.get("trail_price"), "trail_price")
    trail_percent = parse_decimal(body.get("trail_percent"), "trail_percent", 4, Decimal(100))
    if order_type == "trailing_stop":
        if (trail_price is None) == (trail_percent is None):
            raise invalid("trailing_stop orders take exactly one of trail_price, trail_percent")
        if tif not in ("day", "gtc"):
            raise unprocessable("trailing_stop orders must be day or gtc orders")
    elif trail_price is not None or trail_percent is not None:
        raise invalid(f"trail_price/trail_percent must not be given for {order_type} orders")
    if tif in ("opg", "cls") and order_type not in ("market", "limit"):
        raise unprocessable(f"{tif} orders must be market or limit orders")
    if notional is not None and (order_type != "market" or tif != "day"):
        raise unprocessable("notional orders must be DAY market orders")
    if notional is not None and notional < 1:
        raise AlpacaError(403, 40310000, "cost basis must be >= 1")
    if order_class != "simple":
        if notional is not None or (qty is not None and qty % 1 != 0):
            raise unprocessable(f"{order_class} orders must be for whole shares (qty)")
        if tif not in ("day", "gtc"):
            raise unprocessable(f"{order_class} orders must be day or gtc orders")
        if order_type not in (("limit",) if order_class == "oco" else ("market", "limit")):
            raise unprocessable(f"{order_class} orders cannot be {order_type} orders")
        if take_profit is not None and stop_loss is not None:
            wrong_way = take_profit <= stop_loss if side == "buy" else take_profit >= stop_loss
            if order_class == "oco":  # exits of a position: sell tp above sl, buy below
                wrong_way = take_profit <= stop_loss if side == "sell" else take_profit >= stop_loss
            if wrong_way:
                raise unprocessable(
                    "take_profit.limit_price must be on the profit side of stop_loss.stop_price"
                )
    request = OrderRequest(
        symbol=symbol.strip().upper(),
        side=side,
        type=order_type,
        time_in_force=tif,
        qty=qty,
        notional=notional,
        limit_price=limit_price,
        stop_price=stop_price,
        client_order_id=client_order_id_of(body.get("client_order_id")),
        trail_price=trail_price,
        trail_percent=trail_percent,
        order_class=order_class,
        take_profit=take_profit,
        stop_loss=stop_loss,
        stop_loss_limit=stop_loss_limit,
    )
    if request.fractional and tif != "day":
        raise unprocessable("fractional orders must be DAY orders")
    return request
