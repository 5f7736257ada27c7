"""Turning a target weight into a share quantity: one rule for backtests and live runs.

The rule: whole shares (or 6-decimal fractions), rounded down, worth the weight of the
book valued at the last completed close, 1% of it kept in cash. The fill comes at the next
open (or close), which can gap past the buffer; the account absorbs that with margin, as
Alpaca's paper and margin accounts do (the backtest's broker: `backtests/broker.py`), so
an ordinary gap never costs the order, and backtest and live hold the same shares.
"""

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
