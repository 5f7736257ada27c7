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


def _line_all_ones(data, name: str, size: int) -> bool:
    line = getattr(data.lines, name, None)
    return line is None or all(v == 1.0 for v in line.get(size=size))


def is_member(data) -> bool:
    """Whether the feed's symbol is in the universe on the session orders placed now trade in
    (tradeship's feeds carry point-in-time index membership; other feeds always are)."""
    line = getattr(data.lines, "member", None)
    return line is None or line[0] == 1.0


def top_n_momentum(strategy, n: int, lookback: int, datas=None) -> list:
    """The `n` feeds of `strategy` with the highest return over the last `lookback` bars.

    Point-in-time: only symbols that are universe members for the session being decided
    for and have real (not back-filled) bars over the whole lookback are ranked; ties go
    by name. The same numbers as `top_n_by_momentum` on the history frame.
    """
    if lookback < 1:
        raise ValueError(f"momentum_lookback must be at least 1 bar, got {lookback}")
    ranked = []
    for data in strategy.datas if datas is None else datas:
        if len(data) < lookback + 1 or not is_member(data):
            continue
        if not _line_all_ones(data, "listed", lookback + 1):
            continue
        first, last = float(data.close[-lookback]), float(data.close[0])
        if first != first or last != last:
            continue
        ranked.append((-(last / first - 1.0), data._name, data))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [data for _, _, data in ranked[: max(n, 0)]]
