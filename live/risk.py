"""Pre-trade checks: every limit is checked before any order; one breach blocks the run.

Both live paths (the exported `run()` and the Backtrader store's broker) call the same two
functions: `trading_refusal` (kill switch, account gate) and `pretrade_problems` (every
limit, judged on the positions the orders would leave, valued at the last close).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from live.execution import PlannedOrder, positions_after, value_at_close
from live.settings import LiveSettings

GATE_FLAGS = ("trading_blocked", "account_blocked", "trade_suspended_by_user")


def account_gate_problems(account: Mapping[str, Any]) -> list[str]:
    """Why the account may not trade; an unknown flag counts as a problem."""
    problems = []
    for flag in GATE_FLAGS:
        value = account.get(flag)
        if value is None:
            problems.append(f"the account's {flag} is unknown")
        elif value:
            problems.append(f"the account has {flag}=true")
    status = account.get("status")
    if status is None:
        problems.append("the account status is unknown")
    elif str(status).upper() != "ACTIVE":
        problems.append(f"the account status is {status}, not ACTIVE")
    return problems


def trading_refusal(settings: LiveSettings, account: Mapping[str, Any]) -> str | None:
    """Why no order may be sent at all (kill switch first, then the account gate)."""
    killed = settings.kill_switch_reason()
    if killed:
        return killed
    gate = account_gate_problems(account)
    return "; ".join(gate) if gate else None


def pretrade_problems(
    orders: Sequence[PlannedOrder],
    positions: Mapping[str, float],
    cash: float,
    prices: Mapping[str, float],
    settings: LiveSettings,
    buying_power: float | None = None,
    effective: Mapping[str, float] | None = None,
) -> list[str]:
    """The pre-trade gate: `risk_problems` on the weights the book would have once `orders`
    fill, on top of `effective` (positions plus open orders; default `positions`), the book
    (`cash` + `positions`) valued at the last close."""
    value = value_at_close(cash, positions, prices)
    after = positions_after(positions if effective is None else effective, orders)
    weights = {
        s: abs(q) * float(prices.get(s, 0.0)) / value for s, q in sorted(after.items()) if value > 0
    }
    return risk_problems(weights, orders, settings, buying_power)


def risk_problems(
    weights: Mapping[str, float],
    orders: Sequence[PlannedOrder],
    settings: LiveSettings,
    buying_power: float | None,
) -> list[str]:
    """Every configured limit the plan breaches, each in a sentence that names the limit.

    `weights`: each symbol's share of the book once the orders fill (`pretrade_problems`).
    """
    problems = []
    for symbol, weight in sorted(weights.items()):
        if weight > settings.max_position_weight + 1e-12:
            problems.append(
                f"{symbol} would be {weight:.4f} of the book, over TRADESHIP_MAX_POSITION_WEIGHT "
                f"{settings.max_position_weight:g}"
            )
    gross = sum(abs(w) for w in weights.values())
    if gross > settings.max_gross_exposure + 1e-9:
        problems.append(
            f"gross exposure {gross:.4f} exceeds TRADESHIP_MAX_GROSS_EXPOSURE "
            f"{settings.max_gross_exposure:g}"
        )
    for order in orders:
        if order.notional > settings.max_order_notional:
            problems.append(
                f"{order.side} {order.qty:g} {order.symbol} (~{order.notional:,.2f}) exceeds "
                f"TRADESHIP_MAX_ORDER_NOTIONAL {settings.max_order_notional:,.2f}"
            )
    total = sum(o.notional for o in orders)
    if total > settings.max_run_notional:
        problems.append(
            f"this run would trade ~{total:,.2f}, over TRADESHIP_MAX_RUN_NOTIONAL "
            f"{settings.max_run_notional:,.2f}"
        )
    if len(orders) > settings.max_orders:
        problems.append(f"{len(orders)} orders exceed TRADESHIP_MAX_ORDERS {settings.max_orders}")
    if buying_power is not None:
        net_buys = sum(o.notional for o in orders if o.side == "buy") - sum(
            o.notional for o in orders if o.side == "sell"
        )
        if net_buys > buying_power + 1e-6:
            problems.append(
                f"net buys of ~{net_buys:,.2f} exceed the account's buying power "
                f"{buying_power:,.2f}"
            )
    return problems
