"""Turning a target weight into a share quantity: one rule for backtests and live runs."""

from __future__ import annotations

import math


def target_quantity(
    weight: float,
    equity: float,
    price: float,
    *,
    cash_buffer: float = 0.01,
    fractional: bool = False,
) -> float:
    """Shares worth `weight` of `equity` at `price`, keeping `cash_buffer` of equity in cash.

    Whole shares round down so a rebalance never spends cash it does not have; fractional
    quantities keep 6 decimals (Alpaca's precision, rounded down as well).
    """
    if price <= 0 or weight <= 0 or equity <= 0:
        return 0.0
    raw = weight * equity * (1.0 - cash_buffer) / price
    if fractional:
        return math.floor(raw * 1e6) / 1e6
    return float(math.floor(raw + 1e-9))
