"""Pre-trade checks: every limit is checked before any order; one breach blocks the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from live.execution import PlannedOrder
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


def risk_problems(
    targets: Mapping[str, float],
    orders: Sequence[PlannedOrder],
    settings: LiveSettings,
    buying_power: float | None,
) -> list[str]:
    """Every configured limit the plan breaches, each in a sentence that names the limit."""
    problems = []
    for symbol, weight in sorted(targets.items()):
        if weight > settings.max_position_weight + 1e-12:
            problems.append(
                f"{symbol} target weight {weight:.4f} exceeds TRADESHIP_MAX_POSITION_WEIGHT "
                f"{settings.max_position_weight:g}"
            )
    gross = sum(abs(w) for w in targets.values())
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
