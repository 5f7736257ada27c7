"""What a run tells the building blocks: one object per Cerebro, never a global.

The backtest runner, an exported module's replay and the live store each attach a
`RunContext` to their Cerebro (`attach`); the blocks find it from the strategy
(`run_context`). A strategy run in plain Cerebro gets the defaults: serial Prophet fits,
fills at the next open, a 1% cash buffer, whole shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import backtrader as bt

from strategies.forecast import Forecaster, ProphetForecaster

FILL_MODES = ("open", "close")
_ATTRIBUTE = "tradeship_context"


@dataclass
class RunContext:
    forecaster: Forecaster = field(default_factory=ProphetForecaster)
    fill: str = "open"  # rebalance orders fill at the next session's "open" or "close"
    cash_buffer: float = 0.01  # fraction of value kept in cash against gaps at the fill
    fractional: bool = False
    declared: dict[str, float] | None = None  # weights the strategy asked for at this bar
    notes: list[str] = field(default_factory=list)  # what a report should say (first 20)

    def __post_init__(self) -> None:
        if self.fill not in FILL_MODES:
            raise ValueError(f"fill must be one of {', '.join(FILL_MODES)}, got {self.fill!r}")


def attach(cerebro: bt.Cerebro, context: RunContext) -> RunContext:
    setattr(cerebro, _ATTRIBUTE, context)
    return context


def run_context(owner: Any) -> RunContext:
    """The context of the Cerebro running `owner` (a strategy or one of its indicators)."""
    while owner is not None and not isinstance(owner, bt.Strategy):
        owner = getattr(owner, "_owner", None)
    cerebro = getattr(owner, "env", None)
    context = getattr(cerebro, _ATTRIBUTE, None)
    if context is None:
        context = RunContext()
        if cerebro is not None:
            attach(cerebro, context)
    return context
