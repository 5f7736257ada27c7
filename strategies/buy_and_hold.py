"""buy_and_hold: equal weights of every symbol on the first decision, then never trade."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from strategies.base import Strategy


@dataclass(frozen=True)
class BuyAndHoldParams:
    pass


class BuyAndHold(Strategy):
    """The baseline: buys the universe once, in equal weights."""

    name = "buy_and_hold"
    Params = BuyAndHoldParams

    def targets(
        self,
        history: pd.DataFrame,
        holdings: Mapping[str, float],
        session: pd.Timestamp,
        state: Any,
    ) -> dict[str, float] | None:
        if holdings:
            return None  # already invested: hold
        last = history["close"].iloc[-1]
        tradable = sorted(str(s) for s in last.index[last.notna()])
        if not tradable:
            return None
        return {symbol: 1.0 / len(tradable) for symbol in tradable}
