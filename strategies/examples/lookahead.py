"""A deliberately broken strategy: its precomputation peeks at future prices.

`prepare` computes each day's *forward* 5-day return with ``shift(-5)``, a classic
lookahead. In a backtest, where `prepare` sees the whole range, it picks tomorrow's
winners and looks brilliant; cut the data at the decision date and the future rows are
gone, so the decisions change. `tradeship check lookahead` and `verify-parity` both
catch it. Run either on ``strategies.examples.lookahead:PeekingMomentum`` to see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from strategies.base import Strategy


@dataclass(frozen=True)
class PeekingParams:
    top_n: int = 3
    peek: int = 5


class PeekingMomentum(Strategy):
    """Holds the names with the best *next* `peek`-day return. Do not trade this."""

    name = "peeking_momentum"
    Params = PeekingParams

    def warmup_bars(self) -> int:
        return 2

    def prepare(self, history: pd.DataFrame) -> pd.DataFrame:
        closes = history["close"]
        return closes.shift(-self.params.peek) / closes - 1.0  # LOOKAHEAD

    def targets(
        self,
        history: pd.DataFrame,
        holdings: Mapping[str, float],
        session: pd.Timestamp,
        state: Any,
    ) -> dict[str, float]:
        scores = state.loc[history.index[-1]].dropna()
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[: self.params.top_n]
        return {symbol: 1.0 / len(best) for symbol, _ in best} if best else {}
