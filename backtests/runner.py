"""Running one backtest: data in, Backtrader driving the strategy, results out."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

from backtests.benchmark import benchmark_equity
from backtests.broker import MARGIN_MULTIPLIER, configure_broker
from backtests.forecast_skill import ForecastRecord
from backtests.metrics import compute_metrics
from backtests.report_kit import data_note
from marketdata import MarketData, load
from marketdata.cache import DataCache
from marketdata.universe import coverage, coverage_sentence, parse_universe
from strategies.context import RunContext
from strategies.engine import run_strategy_class
from strategies.forecast import Forecaster
from strategies.history import to_history
from strategies.recorder import CASH, BarDecision, DecisionLog
from strategies.registry import StrategySpec, build_strategy, full_params

CASH_SYMBOL = CASH  # decisions.csv row holding the weight left in cash
ACCOUNTS = ("margin", "cash")  # as the local paper broker's --account


@dataclass
class BacktestConfig:
    """Everything that determines a backtest's result."""

    strategy: str | type  # a name ("prophet_momentum", "package.module:Class") or the class
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
    benchmark: str = "equal-weight"  # or a SYMBOL bought and held (backtests/benchmark.py)
    universe: str | None = None  # membership:PATH, symbols:A,B or all (default: see README)
    warmup: int | None = None  # bars before the first trade, at least the strategy's minimum
    account: str = "margin"  # "margin" (Alpaca paper's default: gaps borrow) or "cash"


@dataclass
class BacktestResult:
    config: BacktestConfig
    strategy: StrategySpec
    data: MarketData
    history: pd.DataFrame
    trade_from: pd.Timestamp
    equity: pd.Series
    benchmark: pd.Series
    orders: pd.DataFrame
    decisions: pd.DataFrame
    decided: dict[pd.Timestamp, dict[str, float] | None]  # target shares asked for, by session
    holdings: dict[pd.Timestamp, dict[str, float]]  # the book (shares, $CASH) at every session
    metrics: dict[str, Any]
    notes: list[str]
    members: pd.DataFrame | None = None  # universe membership on each session (None: all)
    universe: str = "all"  # the universe rule


def warmup_start(start: pd.Timestamp | None, bars: int) -> pd.Timestamp | None:
    """A calendar date early enough to hold `bars` sessions before `start`."""
    if start is None:
        return None
    return start - pd.Timedelta(days=int(bars * 1.5) + 14)


def decisions_frame(log: DecisionLog) -> pd.DataFrame:
    """What every decision asked for, one row per (session, symbol).

    Strategies that move to weights (`order_target_weights`) get ``date, symbol,
    target_weight`` for every target or holding, plus the weight left in cash; others get
    ``date, symbol, target_size``: the position next() asked for, in shares.
    """
    decisions = [d for d in log.decisions if d.session is not None]
    if all(d.weights is not None for d in decisions):
        rows = []
        for record in decisions:
            day = record.session.date().isoformat()
            held = {s for s in record.book if s != CASH}
            for symbol in sorted(set(record.weights) | held):
                rows.append((day, symbol, float(record.weights.get(symbol, 0.0))))
            rows.append((day, CASH_SYMBOL, max(0.0, 1.0 - sum(record.weights.values()))))
        return pd.DataFrame(rows, columns=["date", "symbol", "target_weight"])
    rows = [
        (record.session.date().isoformat(), symbol, size)
        for record in decisions
        for symbol, size in sorted((record.targets or {}).items())
    ]
    return pd.DataFrame(rows, columns=["date", "symbol", "target_size"])


def _configure_broker(config: BacktestConfig) -> Callable[[bt.Cerebro], None]:
    if config.account not in ACCOUNTS:
        raise ValueError(f"account must be one of {', '.join(ACCOUNTS)}, got {config.account!r}")

    def configure(cerebro: bt.Cerebro) -> None:
        multiplier = MARGIN_MULTIPLIER if config.account == "margin" else 1.0
        configure_broker(cerebro, config, multiplier=multiplier)

    return configure


def backtest_warmup(config: BacktestConfig, spec: StrategySpec | None = None) -> int:
    """The bars `run_backtest(config)` warms up on before its first trade: the strategy's
    minimum period (probed on the config's symbols, or 20 stand-ins), at least
    ``config.warmup``."""
    spec = spec or build_strategy(config.strategy, config.params)
    probe = list(config.symbols or [f"S{i:02d}" for i in range(20)])
    return max(spec.warmup_bars(probe), int(config.warmup or 0))


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
    spec = build_strategy(config.strategy, config.params)
    start = pd.Timestamp(config.start) if config.start else None
    end = pd.Timestamp(config.end) if config.end else None
    warmup = backtest_warmup(config, spec)
    if market_data is None:
        market_data = load(
            config.source,
            config.symbols,
            warmup_start(start, warmup),
            end,
            cache=DataCache.default(),  # validated, adjusted bars, keyed by content
        )
    if not market_data.bars:
        raise ValueError(f"no data loaded from {config.source}: {market_data.problems}")
    history = to_history(market_data.bars)
    if len(history) <= warmup + 1:
        raise ValueError(
            f"{spec.name} needs {warmup} bars of history before it trades, but "
            f"{config.source} has {len(history)} sessions in the range: widen --start/--end"
        )
    earliest = pd.Timestamp(history.index[warmup])
    trade_from = max(earliest, start) if start is not None else earliest
    trade_from = pd.Timestamp(history.index[history.index.searchsorted(trade_from)])
    universe = parse_universe(config.universe, config.source, config.symbols)
    symbols = sorted(market_data.bars)
    membership = universe.load(symbols)
    members = None if universe.kind != "membership" else membership.matrix(history.index, symbols)
    notes = [universe.describe()]
    if members is not None:
        traded = history.index[history.index >= trade_from]
        bars = {s: frame.index for s, frame in market_data.bars.items()}
        notes.append(coverage_sentence(coverage(membership, traded, bars)))
    notes += list(_notes(config, market_data, trade_from, start))

    context = RunContext(
        forecaster=forecaster,
        fill=config.fill,
        cash_buffer=config.cash_buffer,
        fractional=config.fractional,
    )
    run = run_strategy_class(
        spec.cls,
        spec.params,
        history,
        context=context,
        members=members,
        trade_from=trade_from,
        cash=config.cash,
        configure_broker=_configure_broker(config),
        on_bar=progress(len(history)) if progress else None,
    )
    log = run.log
    equity = pd.Series(dict(log.equity), name="equity", dtype="float64")
    equity.index = pd.DatetimeIndex(equity.index, name="date")
    first = history.index[history.index.searchsorted(trade_from) - 1]
    equity = equity.loc[first:]
    benchmark, benchmark_held = benchmark_equity(
        config.benchmark, history, trade_from, config.cash, source=config.source
    )
    orders = pd.DataFrame(
        log.fills, columns=["date", "symbol", "side", "quantity", "price", "commission"]
    )
    metrics = compute_metrics(equity, trades=len(orders))
    metrics["benchmark"] = compute_metrics(benchmark, trades=benchmark_held)
    metrics["strategy"] = spec.name
    metrics["params"] = full_params(spec)
    metrics["source"] = market_data.source
    metrics["synthetic"] = bool(market_data.synthetic)
    metrics["symbols"] = len(market_data.bars)
    metrics["universe"] = universe.rule
    left = _left_universe(log.decisions, members)
    if left:
        notes.append(
            f"Sold because they left the universe: {len(left)} holding(s), e.g. "
            + ", ".join(left[:8])
        )
    notes.extend(log.rejected[:20])
    decided = [d for d in log.decisions if d.session is not None]
    return BacktestResult(
        config=config,
        strategy=spec,
        data=market_data,
        history=history,
        trade_from=trade_from,
        equity=equity,
        benchmark=benchmark,
        orders=orders,
        decisions=decisions_frame(log),
        decided={d.session: d.targets for d in decided},
        holdings=dict(log.books),
        metrics=metrics,
        notes=notes,
        members=members,
        universe=universe.rule,
    )


def _left_universe(decisions: list[BarDecision], members: pd.DataFrame | None) -> list[str]:
    """"SYMBOL on DATE" for each holding a decision sold while it was not a member."""
    if members is None:
        return []
    found = []
    for record in decisions:
        if record.session is None or not record.targets:
            continue
        row = members.loc[record.session] if record.session in members.index else None
        for symbol, size in record.targets.items():
            held = record.book.get(symbol, 0.0)
            if row is not None and held and size == 0 and not bool(row.get(symbol, True)):
                found.append(f"{symbol} on {record.session.date()}")
    return found


def _notes(
    config: BacktestConfig, data: MarketData, trade_from: pd.Timestamp, start: pd.Timestamp | None
):
    yield data_note(data.synthetic)
    if start is not None and trade_from > start:
        yield f"Trading starts {trade_from.date()}, after the warm-up the strategy needs."
    for name, problem in sorted(data.problems.items()):
        yield f"{'Repaired' if name in data.bars else 'Not loaded'}: {name}: {problem}"


def write_outputs(
    result: BacktestResult, out_dir: str | Path, forecasts: Sequence[ForecastRecord] = ()
) -> Path:
    """Write metrics.json, equity.csv, orders.csv, decisions.csv, report.html and PNGs.

    ``forecasts`` (a `RecordingForecaster`'s records) add forecasts.csv and the report's
    forecast-skill section.
    """
    from backtests.benchmark import benchmark_label
    from backtests.forecast_skill import forecast_skill
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
        history=result.history,
        fill=result.config.fill,
        benchmark_label=benchmark_label(result.config.benchmark),
        skill=forecast_skill(forecasts, result.history["close"], result.metrics["params"]),
    )
