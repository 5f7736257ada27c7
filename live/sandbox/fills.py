"""The sandbox's fill-price model for daily data: which price an order gets, and when.

Daily bars know four prices of a session and the time of two of them: the **open** (at
09:30 New York) and the **close** (at the session's close); the high and the low happened
at some unknown moment in between. So an order can only fill at one of those two instants:

- At the **open** of a session, every order waiting from before it (sent while the market
  was closed) is looked at first: market orders (`day`, `gtc`, `opg`) fill at the open;
  a limit order fills at the open if the open is at or through its limit; a stop order
  whose stop the open gapped through fills at the open (a stop-limit then becomes a limit).
  An `opg` order that did not fill at the open expires there.
- At the **close** of a session, market orders sent during it fill at the close (the next
  price the data has after the order: a market order at 15:00 fills at that day's close,
  `filled_at` = the close). `cls` orders fill at the close (a `cls` limit only if the
  close is at or through its limit). A limit or stop order still working is checked
  against the session's range: a buy limit fills at its limit price if the low reached it,
  a sell limit if the high did; a buy stop triggers if the high reached the stop and fills
  at the stop price (a sell stop: the low), a stop-limit then fills at its limit if that
  is reachable. Daily data cannot say whether the low came before or after an order sent
  mid-session: the range of the whole session is used (documented optimism), and the price
  is never better than the limit. `day` orders still open after the close expire there;
  `gtc` orders go on; `ioc`/`fok` orders that could not fill at their first price are
  canceled.
- A **trailing stop** fills at the open if the open is through its stop; at the close it
  is checked against the low (sell) / high (buy) with the stop as it stood, then its
  watermark moves to the session's high (sell) / low (buy) (`_trailing`).

The open and close are the same adjusted prices the backtest fills at, so `opg`/`cls`
orders fill exactly where the backtest's orders do.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

OPEN = "open"
CLOSE = "close"


@dataclass(frozen=True)
class Bar:
    """One session's adjusted prices as exact decimals."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True)
class Outcome:
    """What happens to an order at one price event: fill at `price`, or end as `status`."""

    price: Decimal | None = None
    status: str | None = None  # "expired" / "canceled" when it ends unfilled
    becomes: str | None = None  # a triggered stop-limit becomes a "limit"
    hwm: Decimal | None = None  # a trailing stop's new watermark (it did not fill)


WAIT = Outcome()


def _limit_reached(side: str, limit: Decimal, price: Decimal) -> bool:
    return price <= limit if side == "buy" else price >= limit


def _stop_reached(side: str, stop: Decimal, price: Decimal) -> bool:
    return price >= stop if side == "buy" else price <= stop


def _dec(text: Any) -> Decimal | None:
    return None if text in (None, "") else Decimal(str(text))


def trailing_stop_price(order: dict[str, Any], mark: Decimal) -> Decimal:
    """The stop of a trailing stop whose watermark is `mark` (a sell trails below the
    high-water mark, a buy above the low-water mark)."""
    sign = -1 if order["side"] == "sell" else 1
    if order.get("trail_price") not in (None, ""):
        return mark + sign * Decimal(str(order["trail_price"]))
    percent = Decimal(str(order["trail_percent"])) / 100
    return (mark * (1 + sign * percent)).quantize(Decimal("0.0001"))


def _trailing(order: dict[str, Any], bar: Bar, event: str) -> Outcome:
    """A trailing stop: at the open it fills at the open if the open is through its stop,
    else the watermark moves to the open. At the close it is checked against the session's
    low (sell) / high (buy) with the stop as it stood before the session's extremes, then
    the watermark moves to the high (sell) / low (buy): daily data cannot say which came
    first, and this order never triggers on a stop that only existed after the extreme."""
    sell = order["side"] == "sell"
    mark = Decimal(str(order["hwm"]))
    stop = trailing_stop_price(order, mark)
    if event == OPEN:
        if _stop_reached(order["side"], stop, bar.open):
            return Outcome(price=bar.open)
        return Outcome(hwm=max(mark, bar.open) if sell else min(mark, bar.open))
    if _stop_reached(order["side"], stop, bar.low if sell else bar.high):
        return Outcome(price=stop)
    moved = max(mark, bar.high) if sell else min(mark, bar.low)
    if order["time_in_force"] == "gtc":
        return Outcome(hwm=moved)
    return Outcome(status="expired")


def at_open(order: dict[str, Any], bar: Bar) -> Outcome:
    """An order sent before this session's open meets the open price."""
    side, kind, tif = order["side"], order["type"], order["time_in_force"]
    if kind == "trailing_stop":
        return _trailing(order, bar, OPEN)
    limit, stop = _dec(order.get("limit_price")), _dec(order.get("stop_price"))
    if tif == "cls":
        return WAIT
    if kind == "stop" and stop is not None and _stop_reached(side, stop, bar.open):
        return Outcome(price=bar.open)
    if kind == "stop_limit" and stop is not None and _stop_reached(side, stop, bar.open):
        assert limit is not None
        if _limit_reached(side, limit, bar.open):
            return Outcome(price=bar.open)
        return Outcome(becomes="limit")
    if kind == "market":
        return Outcome(price=bar.open)
    if kind == "limit" and limit is not None and _limit_reached(side, limit, bar.open):
        return Outcome(price=bar.open)
    if tif == "opg":
        return Outcome(status="expired")
    if tif in ("ioc", "fok"):
        return Outcome(status="canceled")
    return WAIT


def at_close(order: dict[str, Any], bar: Bar, sent_during_session: bool) -> Outcome:
    """An order still open when this session closes: fill at the close or in the range,
    else expire (`day`), cancel (`ioc`/`fok`) or wait (`gtc`)."""
    side, kind, tif = order["side"], order["type"], order["time_in_force"]
    limit, stop = _dec(order.get("limit_price")), _dec(order.get("stop_price"))
    if kind == "trailing_stop":
        return _trailing(order, bar, CLOSE)
    if tif == "cls":
        if kind == "market" or (limit is not None and _limit_reached(side, limit, bar.close)):
            return Outcome(price=bar.close)
        return Outcome(status="expired")
    if kind == "market":
        return Outcome(price=bar.close) if sent_during_session else Outcome(status="expired")
    extreme_for_limit = bar.low if side == "buy" else bar.high
    extreme_for_stop = bar.high if side == "buy" else bar.low
    if kind == "limit" and limit is not None and _limit_reached(side, limit, extreme_for_limit):
        return Outcome(price=limit)
    if kind == "stop" and stop is not None and _stop_reached(side, stop, extreme_for_stop):
        return Outcome(price=stop)
    if kind == "stop_limit" and stop is not None and limit is not None:
        if _stop_reached(side, stop, extreme_for_stop):
            if _limit_reached(side, limit, stop):
                return Outcome(price=stop)
            if _limit_reached(side, limit, extreme_for_limit):
                return Outcome(price=limit)
    if tif == "gtc":
        return WAIT
    if tif in ("ioc", "fok"):
        return Outcome(status="canceled")
    return Outcome(status="expired")
