"""buy_and_hold: equal weights of every listed symbol at the first bar, then never trade."""

from __future__ import annotations

import backtrader as bt

from strategies.rebalance import equal_weights, order_target_weights
from strategies.universe import is_member


class BuyAndHold(bt.Strategy):
    """The baseline: buys the universe once, in equal weights (again while nothing is held,
    e.g. when the first orders could not be filled)."""

    def next(self) -> None:
        if any(self.getposition(d).size for d in self.datas):
            return
        listed = getattr(self.data0.lines, "listed", None)
        names = [
            d._name
            for d in self.datas
            if is_member(d) and (listed is None or d.lines.listed[0] == 1.0)
        ]
        if names:
            order_target_weights(self, equal_weights(names))
