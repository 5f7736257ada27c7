"""How a backtest's Backtrader broker is configured: cash, commission, slippage, fills, margin.

One place for the broker rules, so the backtest fills where a live run's orders fill:

- **Sizing** (`strategies.sizing.target_quantity`, shared with live runs): whole shares,
  rounded down, 1% of value kept in cash, priced at the last completed close.
- **Margin, as Alpaca's paper accounts have** (the gap-proof rule): an order is checked at
  submission against cash at the deciding close (sells first free their cash), and at the
  fill the account may borrow, cash going below zero by at most ``(multiplier - 1) x`` the
  account's value (Reg T overnight buying power: multiplier 2). An ordinary gap at the open
  (+3.4% on a book sized with a 1% buffer) costs a little borrowing, never the order:
  Backtrader's default cash account would refuse the whole buy as ``Margin``. Live, the
  Alpaca margin account fills the same order, so both sides hold the same shares.
- **Slippage** (``--slippage``): the full nominal fraction against every fill, at the open
  and at the close, even past the bar's high/low (Backtrader's default caps it at the bar's
  range and skips market-on-close fills).
- **Commission** (``--commission``): a fraction of traded value.

Backtrader's broker class is the runner's; `configure_broker` adds the two fill rules to it.
"""

from __future__ import annotations

import math
from typing import Any

import backtrader as bt

MARGIN_MULTIPLIER = 2.0  # Alpaca margin accounts: overnight buying power = 2 x equity


def require_non_negative(name: str, value: Any, *, positive: bool = False) -> float:
    """`value` as a finite float >= 0 (> 0 when `positive`); else ValueError naming `name`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return number


class FillRules:
    """Mixin for Backtrader's BackBroker: margin borrowing at the fill, slippage at the close.

    `margin_credit` is how far below zero cash may go at a real fill (0: a cash account).
    """

    margin_multiplier: float = 1.0

    def margin_credit(self) -> float:
        value = float(self.getvalue())
        return max(0.0, value) * max(0.0, self.margin_multiplier - 1.0)

    def _execute(self, order, ago=None, price=None, cash=None, position=None, dtcoc=None):
        if ago is None:  # submission check at the deciding close: no borrowing
            return super()._execute(order, ago, price, cash, position, dtcoc)
        credit = self.margin_credit()
        self.cash += credit  # Backtrader refuses a fill that leaves cash < 0: allow -credit
        try:
            return super()._execute(order, ago, price, cash, position, dtcoc)
        finally:
            self.cash -= credit

    def _try_exec_close(self, order, pclose):
        slipped = self._slip_up(math.inf, pclose) if order.isbuy() else self._slip_down(0.0, pclose)
        return super()._try_exec_close(order, slipped)


def with_fill_rules(broker_cls: type) -> type:
    """`broker_cls` (a BackBroker) with `FillRules` mixed in; idempotent."""
    if issubclass(broker_cls, FillRules):
        return broker_cls
    return type(f"{broker_cls.__name__}WithFillRules", (FillRules, broker_cls), {})


def configure_broker(
    cerebro: bt.Cerebro, config: Any, *, multiplier: float = MARGIN_MULTIPLIER
) -> None:
    """Apply `config`'s commission and slippage and the margin rule to `cerebro.broker`.

    `config` needs ``commission`` and ``slippage`` (fractions, >= 0); call it after the
    broker and its cash are in place (``cerebro.broker.setcash``).
    """
    commission = require_non_negative("--commission", config.commission)
    slippage = require_non_negative("--slippage", config.slippage)
    broker = cerebro.broker
    broker.__class__ = with_fill_rules(type(broker))
    broker.margin_multiplier = require_non_negative("margin multiplier", multiplier)
    broker.setcommission(commission=commission)
    if slippage:
        # slip_open: market orders at the open slip too; slip_out: never capped at the range
        broker.set_slippage_perc(slippage, slip_open=True, slip_match=True, slip_out=True)
