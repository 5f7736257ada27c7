"""Running one backtest: data in, Backtrader driving the strategy, results out."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

from backtests.metrics import compute_metrics
from marketdata import MarketData, load
from strategies.base import Strategy
from strategies.bt_driver import DecisionDriver, DriverLog
from strategies.forecast import Forecaster
from strategies.history import to_history
from strategies.registry import full_params, parse_params, strategy_class

CASH_SYMBOL = "$CASH"  # decisions.csv row holding the weight left in cash


@dataclass
class BacktestConfig:
    """Everything that determines a backtest's result."""

    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    source: str = "demo"
    symbols: list[str] | None = None
    start: str | None = None
    end: str | None = None
    cash: float = 100_000.0
    commission: float = 0.0  # fraction of traded value (Alpaca: 0)
    slippage: float = 0.0  # fraction of price, against the trade
    fill: str = "open"  # fill at the decided session's "open" or "close"
    cash_buffer: float = 0.01
    fractional: bool = False


@dataclass
class BacktestResult:
    config: BacktestConfig
    strategy: Strategy
    data: MarketData
    history: pd.DataFrame
    trade_from: pd.Timestamp
    equity: pd.Series
    benchmark: pd.Series
    orders: pd.DataFrame
    decisions: pd.DataFrame
    decided: dict[pd.Timestamp, dict[str, float] | None]  # every rebalance session's answer
    holdings: dict[pd.Timestamp, dict[str, float]]  # the book each decision saw
    metrics: dict[str, Any]
    notes: list[str]


def build_strategy(
    name: str, params: dict[str, Any], forecaster: Forecaster | None = None
) -> Strategy:
    cls = strategy_class(name)
    typed = parse_params(cls, params)
    if forecaster is not None and "forecaster" in cls.__init__.__code__.co_varnames:
        return cls(typed, forecaster=forecaster)
    return cls(typed)


def warmup_start(start: pd.Timestamp | None, bars: int) -> pd.Timestamp | None:
    """A calendar date early enough to hold `bars` sessions before `start`."""
    if start is None:
        return None
    return start - pd.Timedelta(days=int(bars * 1.5) + 14)


def _feed_frame(history: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """OHLCV for one Backtrader feed on the shared index.

    Before a symbol's first bar the feed repeats that first bar (volume 0) so every feed has
    the same length; strategies never trade a symbol before it has real history.
    """
    frame = history.xs(symbol, axis=1, level="symbol")[["open", "high", "low", "close", "volume"]]
    return frame.bfill().fillna({"volume": 0.0})


def decisions_frame(log: DriverLog) -> pd.DataFrame:
    """One row per (rebalance, symbol) for every target or holding, plus the cash left."""
    rows = []
    for record in log.decisions:
        if record.targets is None:
            continue
        day = record.session.date().isoformat()
        for symbol in sorted(set(record.targets) | set(record.holdings)):
            rows.append((day, symbol, float(record.targets.get(symbol, 0.0))))
        rows.append((day, CASH_SYMBOL, max(0.0, 1.0 - sum(record.targets.values()))))
    return pd.DataFrame(rows, columns=["date", "symbol", "target_weight"])


def benchmark_equity(history: pd.DataFrame, trade_from: pd.Timestamp, cash: float) -> pd.Series:
    """Equal-weight buy-and-hold of every symbol trading at `trade_from`, bought at its open."""
    closes = history["close"].loc[trade_from:]
    entry = history["open"].loc[trade_from]
    held = entry.index[entry.notna() & (entry > 0)]
    growth = closes[held].div(entry[held]).mean(axis=1)
    before = history.index[history.index < trade_from]
    series = cash * growth
    if len(before):
        series = pd.concat([pd.Series([cash], index=[before[-1]]), series])
    series.index.name = "date"
    return series.rename("benchmark")


def run_backtest(
    config: BacktestConfig,
    *,
    forecaster: Forecaster | None = None,
    market_data: MarketData | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> BacktestResult:
    """Run `config` and return everything a report, a parity check or a sweep needs.

    Without a `forecaster`, forecasts come from the shared on-disk cache, misses fitted in
    parallel on all cores (a pool that lives for this call only).
    """
    if forecaster is None:
        from backtests.forecast_cache import ForecastCache
        from backtests.forecasting import FastForecaster

        with FastForecaster(cache=ForecastCache.default()) as owned:
            return run_backtest(
                config, forecaster=owned, market_data=market_data, progress=progress
            )
    strategy = build_strategy(config.strategy, config.params, forecaster)
    start = pd.Timestamp(config.start) if config.start else None
    end = pd.Timestamp(config.end) if config.end else None
    if market_data is None:
        market_data = load(
            config.source, config.symbols, warmup_start(start, strategy.warmup_bars()), end
        )
    if not market_data.bars:
        raise ValueError(f"no data loaded from {config.source}: {market_data.problems}")
    history = to_history(market_data.bars)
    warmup = strategy.warmup_bars()
    if len(history) <= warmup + 1:
        raise ValueError(
            f"{config.strategy} needs {warmup} bars of history before it trades, but "
            f"{config.source} has {len(history)} sessions in the range: widen --start/--end"
        )
    earliest = pd.Timestamp(history.index[warmup])
    trade_from = max(earliest, start) if start is not None else earliest
    trade_from = pd.Timestamp(history.index[history.index.searchsorted(trade_from)])
    notes = list(_notes(config, market_data, trade_from, start))

    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    cerebro.broker.setcash(config.cash)
    cerebro.broker.setcommission(commission=config.commission)
    if config.slippage:
        cerebro.broker.set_slippage_perc(config.slippage)
    for symbol in history.columns.get_level_values("symbol").unique():
        cerebro.adddata(bt.feeds.PandasData(dataname=_feed_frame(history, symbol)), name=symbol)
    log = DriverLog()
    on_bar = progress(len(history)) if progress else None
    cerebro.addstrategy(
        DecisionDriver,
        decider=strategy,
        history=history,
        state=strategy.prepare(history),
        trade_from=trade_from,
        fill=config.fill,
        cash_buffer=config.cash_buffer,
        fractional=config.fractional,
        log=log,
        on_bar=on_bar,
    )
    cerebro.run(runonce=False, preload=True)

    equity = pd.Series(dict(log.equity), name="equity", dtype="float64")
    equity.index = pd.DatetimeIndex(equity.index, name="date")
    first = history.index[history.index.searchsorted(trade_from) - 1]
    equity = equity.loc[first:]
    benchmark = benchmark_equity(history, trade_from, config.cash)
    orders = pd.DataFrame(
        log.fills, columns=["date", "symbol", "side", "quantity", "price", "commission"]
    )
    metrics = compute_metrics(equity, trades=len(orders))
    metrics["benchmark"] = compute_metrics(benchmark, trades=_held(history, trade_from))
    metrics["strategy"] = strategy.name
    metrics["params"] = full_params(strategy)
    metrics["source"] = market_data.source
    metrics["synthetic"] = bool(market_data.synthetic)
    metrics["symbols"] = len(market_data.bars)
    notes.extend(log.rejected[:20])
    return BacktestResult(
        config=config,
        strategy=strategy,
        data=market_data,
        history=history,
        trade_from=trade_from,
        equity=equity,
        benchmark=benchmark,
        orders=orders,
        decisions=decisions_frame(log),
        decided={r.session: r.targets for r in log.decisions},
        holdings={r.session: r.holdings for r in log.decisions},
        metrics=metrics,
        notes=notes,
    )


def _held(history: pd.DataFrame, trade_from: pd.Timestamp) -> int:
    entry = history["open"].loc[trade_from]
    return int((entry.notna() & (entry > 0)).sum())


def _notes(
    config: BacktestConfig, data: MarketData, trade_from: pd.Timestamp, start: pd.Timestamp | None
):
    if data.synthetic:
        yield "SYNTHETIC DEMO DATA: generated prices, not a real market. Results mean nothing."
    else:
        yield (
            "Universe = the symbols the source has today: survivorship bias flatters results "
            "(delisted names are missing)."
        )
    if start is not None and trade_from > start:
        yield f"Trading starts {trade_from.date()}, after the warm-up the strategy needs."
    for name, problem in sorted(data.problems.items()):
        yield f"Not loaded: {name}: {problem}"


def write_outputs(result: BacktestResult, out_dir: str | Path) -> Path:
    """Write metrics.json, equity.csv, orders.csv, decisions.csv, report.html and PNGs."""
    from backtests.report import write_report  # matplotlib only when writing reports

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(
        json.dumps(result.metrics, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
    pd.DataFrame({"equity": result.equity, "benchmark": result.benchmark}).rename_axis(
        "date"
    ).to_csv(out / "equity.csv", date_format="%Y-%m-%d", float_format="%.6f")
    result.orders.to_csv(out / "orders.csv", index=False, float_format="%.6f")
    result.decisions.to_csv(out / "decisions.csv", index=False, float_format="%.10f")
    title = f"{result.strategy.name} on {result.data.source}"
    return write_report(
        out,
        title=title,
        equity=result.equity,
        benchmark=result.benchmark,
        orders=result.orders,
        metrics=result.metrics,
        notes=result.notes
        + [f"Parameters: {json.dumps(result.metrics['params'], sort_keys=True)}"],
    )
