"""From a decision to orders: the plan is pure, so tests and dry runs see exactly it.

One path for every live run (the exported `run()` and the Backtrader store's broker):

- the book is valued at the last completed close (`value_at_close`), as Backtrader's broker
  values it in the backtest at the bar that decides, never at the broker's intraday equity;
- the decision's answer becomes target shares in ONE function, `target_shares` (with
  `decision_holdings`, the only place that knows whether the decision contract speaks in
  weights or in shares);
- `plan_orders` trades only the difference `target - (position + open orders)`, sells first.

Order ids are deterministic (strategy, account, decision slot, symbol, side): a second run
for the same slot produces the same ids, which the broker refuses to accept twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from strategies.sizing import target_quantity

CLIENT_ORDER_ID_MAX = 48
CASH_KEY = "$CASH"  # the account book's cash entry (decision contract: shares + cash)
# The two decision contracts. "shares" (Backtrader classes, exported `decide`): decide()
# reads the book {symbol: shares, "$CASH": cash} and returns target shares for the symbols
# its next() asked to change. "weights" (the former `Strategy.decide`): it reads symbol ->
# portfolio weight and returns target weights for the whole book.
DECISION_UNITS = ("shares", "weights")
# --fill of the backtest -> the Alpaca time_in_force whose fill matches it
FILL_TIME_IN_FORCE = {"open": "opg", "close": "cls", "market": "day"}
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class PlannedOrder:
    symbol: str
    side: str  # "buy" or "sell"
    qty: float
    client_order_id: str
    reference_price: float
    other_side_id: str = ""  # this slot's id for the opposite side of the same symbol
    time_in_force: str = "day"  # "opg" (at the open), "cls" (at the close) or "day"

    @property
    def notional(self) -> float:
        return self.qty * self.reference_price

    def as_dict(self) -> dict:
        return asdict(self)


def client_order_id(strategy_id: str, account: str, slot: str, symbol: str, side: str) -> str:
    """A readable, deterministic id of at most 48 characters of [A-Za-z0-9_-].

    The readable prefix helps a person in the broker's UI; the hash makes it unique to the
    full (strategy, account, slot, symbol, side) even after the prefix is truncated.
    """
    digest = hashlib.sha256(
        "|".join((strategy_id, account, slot, symbol, side)).encode()
    ).hexdigest()
    prefix = _UNSAFE_ID_CHARS.sub("-", f"ts-{slot}-{symbol}-{side[0]}")
    return f"{prefix[: CLIENT_ORDER_ID_MAX - 17]}-{digest[:16]}"


def planned_order(
    symbol: str,
    side: str,
    qty: float,
    price: float,
    *,
    strategy_id: str,
    account: str,
    slot: str,
    time_in_force: str = "day",
    id_slot: str | None = None,
) -> PlannedOrder:
    """One order of a decision slot with its deterministic ids (both live paths build
    orders here). `id_slot` (default `slot`) names a second order of the same slot, symbol
    and side (the Backtrader store's ``-2``); only a first order knows its opposite id."""
    other = "sell" if side == "buy" else "buy"
    return PlannedOrder(
        symbol,
        side,
        float(qty),
        client_order_id(strategy_id, account, id_slot or slot, symbol, side),
        float(price),
        client_order_id(strategy_id, account, slot, symbol, other)
        if id_slot in (None, slot)
        else "",
        time_in_force,
    )


def value_at_close(
    cash: float, positions: Mapping[str, float], prices: Mapping[str, float]
) -> float:
    """Cash plus every position at its last completed close: the value the backtest sizes
    with at the deciding bar (Alpaca's intraday `equity` would size on a different price)."""
    return float(cash) + sum(float(q) * float(prices[s]) for s, q in positions.items() if q)


def decision_holdings(
    positions: Mapping[str, float], cash: float, prices: Mapping[str, float], units: str
) -> dict[str, float]:
    """The `holdings` argument of decide(), in the contract's `units`."""
    if units == "shares":
        book = {s: float(q) for s, q in sorted(positions.items()) if q}
        return {**book, CASH_KEY: float(cash)}
    value = value_at_close(cash, positions, prices)
    if value <= 0:
        return {}
    return {s: float(q) * float(prices[s]) / value for s, q in sorted(positions.items()) if q}


def target_shares(
    decision: Mapping[str, float],
    positions: Mapping[str, float],
    cash: float,
    prices: Mapping[str, float],
    *,
    units: str,
    cash_buffer: float = 0.01,
    fractional: bool = False,
) -> dict[str, float]:
    """Target shares per symbol the decision wants traded: the one contract conversion.

    Shares contract: the decision's own numbers (sized by the strategy at the last close,
    with the same `strategies.sizing` rule). Weights contract: `shares_for_weights`.
    """
    if units not in DECISION_UNITS:
        raise ValueError(f"unknown decision units {units!r}: {' or '.join(DECISION_UNITS)}")
    if units == "shares":
        return {str(s): float(q) for s, q in sorted(decision.items()) if s != CASH_KEY}
    return shares_for_weights(
        decision, positions, cash, prices, cash_buffer=cash_buffer, fractional=fractional
    )


def shares_for_weights(
    weights: Mapping[str, float],
    positions: Mapping[str, float],
    cash: float,
    prices: Mapping[str, float],
    *,
    cash_buffer: float = 0.01,
    fractional: bool = False,
) -> dict[str, float]:
    """Every target and every holding (absent = 0) in shares, sized by
    `strategies.sizing.target_quantity` on the book valued at the last close."""
    value = value_at_close(cash, positions, prices)
    wanted = {}
    for symbol in sorted(set(weights) | {s for s, q in positions.items() if q}):
        if symbol == CASH_KEY:
            continue
        price = float(prices.get(symbol, 0.0))
        if price <= 0:
            raise ValueError(f"{symbol}: no price to size an order with")
        wanted[symbol] = target_quantity(
            float(weights.get(symbol, 0.0)),
            value,
            price,
            cash_buffer=cash_buffer,
            fractional=fractional,
        )
    return wanted


def plan_orders(
    wanted: Mapping[str, float],
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    *,
    strategy_id: str,
    account: str,
    slot: str,
    time_in_force: str = "day",
    min_notional: float = 1.0,
) -> list[PlannedOrder]:
    """Orders that move `positions` (symbol -> shares, open orders included) to `wanted`
    (symbol -> target shares; symbols absent from it are left alone); sells first.

    Whole-share orders are never dropped (the backtest trades them too). A fractional
    order under `min_notional` is (Alpaca refuses fractional orders under $1).
    """
    orders: list[PlannedOrder] = []
    for symbol in sorted(wanted):
        price = float(prices.get(symbol, 0.0))
        if price <= 0:
            raise ValueError(f"{symbol}: no price to size an order with")
        delta = round(float(wanted[symbol]) - float(positions.get(symbol, 0.0)), 6)
        if delta == 0:
            continue
        if delta != int(delta) and abs(delta) * price < min_notional:
            continue
        side = "buy" if delta > 0 else "sell"
        orders.append(
            planned_order(
                symbol,
                side,
                abs(delta),
                price,
                strategy_id=strategy_id,
                account=account,
                slot=slot,
                time_in_force=time_in_force,
            )
        )
    return sorted(orders, key=lambda o: (o.side != "sell", o.symbol))


def positions_after(
    positions: Mapping[str, float], orders: list[PlannedOrder] | tuple[PlannedOrder, ...]
) -> dict[str, float]:
    """Shares per symbol once `orders` fill: what the pre-trade gate judges."""
    result = {s: float(q) for s, q in positions.items()}
    for order in orders:
        sign = 1.0 if order.side == "buy" else -1.0
        result[order.symbol] = result.get(order.symbol, 0.0) + sign * order.qty
    return {s: q for s, q in result.items() if abs(q) > 1e-9}
