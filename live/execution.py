"""From target weights to orders: the plan is pure, so tests and dry runs see exactly it.

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
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class PlannedOrder:
    symbol: str
    side: str  # "buy" or "sell"
    qty: float
    client_order_id: str
    reference_price: float
    other_side_id: str = ""  # this slot's id for the opposite side of the same symbol

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


def plan_orders(
    targets: Mapping[str, float],
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    *,
    strategy_id: str,
    account: str,
    slot: str,
    cash_buffer: float = 0.01,
    fractional: bool = False,
    min_notional: float = 1.0,
) -> list[PlannedOrder]:
    """Orders that move `positions` (symbol -> shares) to `targets`; sells first."""
    orders: list[PlannedOrder] = []
    for symbol in sorted(set(targets) | {s for s, q in positions.items() if q}):
        price = float(prices.get(symbol, 0.0))
        if price <= 0:
            raise ValueError(f"{symbol}: no price to size an order with")
        wanted = target_quantity(
            float(targets.get(symbol, 0.0)),
            equity,
            price,
            cash_buffer=cash_buffer,
            fractional=fractional,
        )
        delta = round(wanted - float(positions.get(symbol, 0.0)), 6)
        if delta == 0 or abs(delta) * price < min_notional:
            continue
        side = "buy" if delta > 0 else "sell"
        other = "sell" if side == "buy" else "buy"
        orders.append(
            PlannedOrder(
                symbol,
                side,
                abs(delta),
                client_order_id(strategy_id, account, slot, symbol, side),
                price,
                client_order_id(strategy_id, account, slot, symbol, other),
            )
        )
    return sorted(orders, key=lambda o: (o.side != "sell", o.symbol))
