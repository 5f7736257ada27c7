"""The point-in-time history a strategy reads: one DataFrame of (field, symbol) columns.

This is the input format of the decision contract (strategies.base), so it lives here:
backtests build it from loaded bars, live runs from freshly loaded bars, the live
Backtrader driver from its feeds' lines; all of them through `to_history`.
"""

from __future__ import annotations

import pandas as pd

HISTORY_FIELDS = ("open", "high", "low", "close", "volume")


def bars_frame(days: list, columns: dict[str, list[float]]) -> pd.DataFrame:
    """One symbol's bars from plain lists: float64 columns on a datetime64[ns] index of
    session dates (the unit and dtypes marketdata's frames have)."""
    index = pd.DatetimeIndex(days, name="date").as_unit("ns").normalize()
    return pd.DataFrame(columns, index=index, dtype="float64")


def to_history(bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Align per-symbol bars on the union of their dates.

    A symbol missing a session keeps its last price (volume 0): a causal forward fill, so
    the history of any prefix of dates is the prefix of the history. Before a symbol's first
    bar its prices stay NaN; strategies skip symbols without complete data.
    """
    symbols = sorted(bars)
    if not symbols:
        raise ValueError("no symbols to build a history from")
    index = pd.DatetimeIndex(sorted(set().union(*(bars[s].index for s in symbols))), name="date")
    parts = {}
    for field in HISTORY_FIELDS:
        wide = pd.DataFrame(
            {s: bars[s][field].reindex(index) for s in symbols}, index=index, dtype="float64"
        )
        parts[field] = wide.fillna(0.0).where(wide.ffill().notna()) if field == "volume" else wide
    closes = parts["close"].ffill()
    for field in ("open", "high", "low"):
        parts[field] = parts[field].fillna(closes)
    parts["close"] = closes
    return pd.concat(parts, axis=1, names=["field", "symbol"])


def history_until(history: pd.DataFrame, session: pd.Timestamp) -> pd.DataFrame:
    """Bars strictly before `session`: what a decision for that session may read."""
    position = history.index.searchsorted(pd.Timestamp(session), side="left")
    return history.iloc[:position]
