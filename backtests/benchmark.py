"""The benchmark a backtest is compared with: equal-weight buy-and-hold, or one symbol.

``--benchmark equal-weight`` (the default) buys every symbol trading on the first session
in equal parts at its open and holds; ``--benchmark SPY`` (any symbol) buys that one symbol
at the first session's open and holds. A symbol outside the backtest's universe is loaded
from the same source over the same dates; one the source lacks is a clear error.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from marketdata import MarketData, load

EQUAL_WEIGHT = "equal-weight"


def parse_benchmark(text: str | None) -> str:
    """``equal-weight`` or an upper-case symbol; anything blank means equal-weight."""
    value = (text or "").strip()
    if not value or value.lower() in (EQUAL_WEIGHT, "equal", "ew"):
        return EQUAL_WEIGHT
    if any(c.isspace() or c == "," for c in value):
        raise ValueError(f"--benchmark takes one symbol or 'equal-weight', got {value!r}")
    return value.upper()


def benchmark_label(benchmark: str) -> str:
    """How reports name the benchmark."""
    if parse_benchmark(benchmark) == EQUAL_WEIGHT:
        return "Benchmark (equal-weight buy & hold)"
    return f"Benchmark ({parse_benchmark(benchmark)} buy & hold)"


def _with_start(series: pd.Series, history: pd.DataFrame, trade_from: pd.Timestamp, cash: float):
    """Prefix the session before `trade_from` at `cash`, so the curve starts with the equity."""
    before = history.index[history.index < trade_from]
    if len(before):
        series = pd.concat([pd.Series([cash], index=[before[-1]]), series])
    series.index.name = "date"
    return series.rename("benchmark")


def equal_weight_equity(
    history: pd.DataFrame, trade_from: pd.Timestamp, cash: float
) -> tuple[pd.Series, int]:
    """Equal-weight buy-and-hold of every symbol trading at `trade_from`, bought at its open.

    Returns the value curve and the number of symbols held.
    """
    closes = history["close"].loc[trade_from:]
    entry = history["open"].loc[trade_from]
    held = entry.index[entry.notna() & (entry > 0)]
    growth = closes[held].div(entry[held]).mean(axis=1)
    return _with_start(cash * growth, history, trade_from, cash), len(held)


def symbol_equity(
    opens: pd.Series, closes: pd.Series, history: pd.DataFrame, trade_from: pd.Timestamp,
    cash: float,
) -> pd.Series:  # fmt: skip
    """Buy-and-hold of one symbol (its adjusted opens and closes) from `trade_from`'s open."""
    index = history.index[history.index >= trade_from]
    closes = closes.reindex(closes.index.union(index)).ffill().reindex(index)
    entry = opens.get(trade_from)
    if entry is None or not pd.notna(entry) or entry <= 0:
        raise ValueError(
            f"the benchmark has no price on {pd.Timestamp(trade_from).date()}, the first "
            "trading session: pick a symbol listed by then, or --benchmark equal-weight"
        )
    return _with_start(cash * closes / float(entry), history, trade_from, cash)


def benchmark_equity(
    benchmark: str,
    history: pd.DataFrame,
    trade_from: pd.Timestamp,
    cash: float,
    *,
    source: str,
    loader: Callable[..., MarketData] = load,
) -> tuple[pd.Series, int]:
    """The benchmark's value curve on the backtest's sessions, and how many symbols it holds."""
    spec = parse_benchmark(benchmark)
    if spec == EQUAL_WEIGHT:
        return equal_weight_equity(history, trade_from, cash)
    symbols = history.columns.get_level_values("symbol")
    if spec in set(symbols):
        opens, closes = history["open"][spec], history["close"][spec]
    else:
        try:
            data = loader(source, [spec], history.index[0], history.index[-1])
        except ValueError as exc:  # marketdata's DataError: nothing loaded
            raise ValueError(
                f"benchmark {spec} could not be loaded from {source} ({exc}): pick a symbol "
                "the source has, or --benchmark equal-weight"
            ) from exc
        bars = data.bars.get(spec)
        if bars is None or bars.empty:
            raise ValueError(
                f"benchmark {spec} is not in {source}: pick a symbol the source has, "
                "or --benchmark equal-weight"
            )
        opens, closes = bars["open"], bars["close"]
        opens.index = pd.DatetimeIndex(opens.index)
        closes.index = pd.DatetimeIndex(closes.index)
    return symbol_equity(opens, closes, history, trade_from, cash), 1
