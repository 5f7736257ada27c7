"""Market data for sweep points: one load per worker process, each point's range cut from it.

Cutting is exact: `marketdata.load` validates and adjusts a symbol's whole series and only
then clips it to [start, end], so a clip of a wider load is the load of the narrower range.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from backtests.runner import BacktestConfig, backtest_warmup, warmup_start
from backtests.sweep_common import iso_day
from marketdata import DataError, MarketData, load
from marketdata.calendar import calendar_day


@functools.lru_cache(maxsize=8)
def load_market_data(
    source: str, symbols: tuple[str, ...] | None, start: str | None, end: str | None
) -> MarketData:
    """`marketdata.load`, once per process for the same arguments (every point shares it)."""
    return load(source, list(symbols) if symbols else None, start, end)


def clip_market_data(data: MarketData, start: Any, end: Any) -> MarketData:
    """`data` cut to [start, end] exactly as `marketdata.load` would have cut it."""
    lo = calendar_day(start) if start is not None else None
    hi = calendar_day(end) if end is not None else None
    bars: dict[str, pd.DataFrame] = {}
    problems = dict(data.problems)
    for symbol, frame in data.bars.items():
        keep = pd.Series(True, index=frame.index)
        if lo is not None:
            keep &= frame.index >= lo
        if hi is not None:
            keep &= frame.index <= hi
        window = frame.loc[keep.to_numpy()]
        if window.empty:
            problems[symbol] = f"{symbol}: no bars in the range"
            continue
        bars[symbol] = window
    if not bars:
        raise DataError(f"nothing loaded from {data.source} between {lo} and {hi}")
    return MarketData(
        bars=bars, problems=dict(sorted(problems.items())), source=data.source,
        synthetic=data.synthetic,
    )  # fmt: skip


def point_data(config: BacktestConfig, load_start: str | None, load_end: str | None) -> MarketData:
    """The bars `run_backtest(config)` would load, cut from the batch's cached load.

    load_start/load_end: the range every point of the batch loads; widened here when this
    point reaches further.
    """
    start = warmup_start(pd.Timestamp(config.start) if config.start else None,
                         backtest_warmup(config))  # fmt: skip
    symbols = tuple(config.symbols) if config.symbols else None
    if start is None:
        load_start = None
    elif load_start is None or calendar_day(load_start) > start:
        load_start = iso_day(start)  # the batch's range is too short for this point
    if config.end is None:
        load_end = None
    elif load_end is None or calendar_day(load_end) < calendar_day(config.end):
        load_end = iso_day(config.end)
    data = load_market_data(config.source, symbols, load_start, load_end)
    return clip_market_data(data, start, config.end)
