"""Momentum universe selection: the top-N symbols by trailing return."""

from __future__ import annotations

import pandas as pd


def trailing_returns(closes: pd.DataFrame, lookback: int) -> pd.Series:
    """Return over the last `lookback` bars for every symbol with complete data for it.

    Symbols with a missing price in that span are left out rather than guessed.
    """
    if lookback < 1:
        raise ValueError(f"momentum_lookback must be at least 1 bar, got {lookback}")
    if len(closes) < lookback + 1:
        return pd.Series(dtype="float64")
    tail = closes.iloc[-(lookback + 1) :]
    complete = tail.columns[tail.notna().all()]
    first, last = tail[complete].iloc[0], tail[complete].iloc[-1]
    return (last / first - 1.0).astype("float64")


def top_n_by_momentum(closes: pd.DataFrame, lookback: int, n: int) -> list[str]:
    """The `n` symbols with the highest trailing return; ties broken by symbol name."""
    returns = trailing_returns(closes, lookback)
    ranked = sorted(returns.items(), key=lambda item: (-item[1], item[0]))
    return [symbol for symbol, _ in ranked[: max(n, 0)]]
