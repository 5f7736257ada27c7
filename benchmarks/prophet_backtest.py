"""Benchmark: prophet_momentum the naive way vs FastForecaster, cold and warm cache.

    .venv/bin/python benchmarks/prophet_backtest.py [--quick] [--workers N]

One run, same data, same strategy parameters (``refit_every=1`` so that the naive way's
every-bar forecasts are the ones the decisions read):

naive   plain eager indicators: tradeship's Prophet indicator (strategies.indicators.
        ProphetForecast) on every symbol, read (so fitted) on every bar, serial, no cache,
        as a strategy reading its indicators in every next() would. A first
        Backtrader pass computes the indicator on every symbol for every bar from the first
        one a decision can read; the backtest then drives the same decision rule by reading
        the indicator's value at bar t-1 for each candidate. Both passes are timed.
cold    FastForecaster, fresh cache folder, all cores: fits only the top-N candidates on
        rebalance days, in parallel (worker start-up and shut-down included).
warm    the same again on the filled cache: no fit at all.

Data: 20 symbols of ../shared/data/sp500_daily.parquet (one year to trade, plus warm-up);
the built-in demo universe when that file is absent. The last line printed is
``speedup_cold=X speedup_warm=Y identical_decisions=true|false``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import backtrader as bt
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(PROJECT))

from backtests.forecast_cache import ForecastCache  # noqa: E402
from backtests.forecasting import FastForecaster, resolve_workers  # noqa: E402
from backtests.runner import BacktestConfig, BacktestResult, run_backtest  # noqa: E402
from marketdata import MarketData, load  # noqa: E402
from strategies.forecast import ForecastRequest, quiet_prophet_logs  # noqa: E402
from strategies.indicators import ProphetForecast  # noqa: E402
from strategies.registry import build_strategy  # noqa: E402

PARQUET = Path(__file__).resolve().parents[1].parent / "shared/data/sp500_daily.parquet"
SP500_SYMBOLS = [
    "AAPL", "MSFT", "AMZN", "GOOGL", "FB", "JPM", "JNJ", "V", "PG", "NVDA",
    "UNH", "HD", "MA", "DIS", "BAC", "XOM", "KO", "PFE", "INTC", "CSCO",
]  # fmt: skip
DEMO_SYMBOLS = [f"SYN{i:03d}" for i in range(20)]


@dataclass(frozen=True)
class Plan:
    symbols: int
    start: str  # first session to trade
    end: str
    params: dict


FULL = {
    "parquet": Plan(20, "2020-01-02", "2020-12-31", {"refit_every": 1}),
    "demo": Plan(20, "2023-01-03", "2023-12-29", {"refit_every": 1}),
}
QUICK_PARAMS = {"refit_every": 1, "prophet_window": 60, "momentum_lookback": 20, "top_n": 4}
QUICK = {
    "parquet": Plan(8, "2020-10-01", "2020-12-31", QUICK_PARAMS),
    "demo": Plan(8, "2023-10-02", "2023-12-29", QUICK_PARAMS),
}


class NoForecasts:
    """For the untimed dry run: forecasts the last close (no fit)."""

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        return [float(r.window.iloc[-1]) for r in requests]


class Recording:
    """Passes requests through and remembers each answer by (symbol, last window date)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.values: dict[tuple[str, object], float] = {}

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        values = self.inner.forecast_many(requests)
        for request, value in zip(requests, values, strict=True):
            self.values[(request.symbol, pd.Timestamp(request.window.index[-1]).date())] = value
        return values


class IndicatorForecaster:
    """The naive way's decisions: read the indicator value computed at the fit bar.

    With refit_every=1 a request's window ends at bar t-1 and its target is `horizon`
    weekdays later: exactly what the indicator fitted at bar t-1 forecast.
    """

    def __init__(self, table: dict, window: int, horizon: int) -> None:
        self.table, self.window, self.horizon = table, window, horizon

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        values = []
        for request in requests:
            last = pd.Timestamp(request.window.index[-1])
            if len(request.window) != self.window or pd.Timestamp(
                request.target
            ) != last + pd.offsets.BDay(self.horizon):
                raise AssertionError(
                    f"request {request.symbol} {last.date()} is not an indicator's"
                )
            values.append(self.table[(request.symbol, last.date())])
        return values


class RecordIndicators(bt.Strategy):
    """A ProphetForecast on every feed, refit every bar; records every value."""

    params = (("strategy_params", None), ("table", None), ("tick", None))

    def __init__(self) -> None:
        p = self.p.strategy_params
        self.forecasts = {
            data._name: ProphetForecast(
                data,
                window=p.prophet_window,
                refit_every=1,
                horizon=p.horizon,
                changepoint_prior_scale=p.changepoint_prior_scale,
                weekly_seasonality=p.weekly_seasonality,
                yearly_seasonality=p.yearly_seasonality,
            )
            for data in self.datas
        }

    def next(self) -> None:
        day = pd.Timestamp(bt.num2date(self.datas[0].datetime[0])).normalize().date()
        for name, indicator in self.forecasts.items():
            self.p.table[(name, day)] = float(indicator[0])  # read: fitted now, eagerly
        if self.p.tick is not None:
            self.p.tick(len(self.forecasts))


def feed_frame(history: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """OHLCV of one symbol as backtests.runner feeds it to Backtrader."""
    frame = history.xs(symbol, axis=1, level="symbol")[["open", "high", "low", "close", "volume"]]
    return frame.bfill().fillna({"volume": 0.0})


def naive_indicator_pass(history: pd.DataFrame, first_bar: int, strategy_params, tick) -> dict:
    """Every symbol's indicator on every bar from `first_bar` (the bars decisions can read)."""
    # the indicator's minimum period: a full window before its refit bar
    window = int(strategy_params.prophet_window) + int(strategy_params.refit_every) + 4
    frame = history.iloc[first_bar - window + 1 :]
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    for symbol in history.columns.get_level_values("symbol").unique():
        cerebro.adddata(bt.feeds.PandasData(dataname=feed_frame(frame, symbol)), name=symbol)
    table: dict = {}
    cerebro.addstrategy(RecordIndicators, strategy_params=strategy_params, table=table, tick=tick)
    cerebro.run(runonce=False, preload=True)
    return table


def csv_bytes(result: BacktestResult) -> bytes:
    return result.decisions.to_csv(index=False, float_format="%.17g").encode()


def progress_bar(total: int, label: str):
    from tqdm import tqdm

    disable = not sys.stderr.isatty()
    return tqdm(total=total, desc=label, unit="fit", file=sys.stderr, leave=False, disable=disable)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 symbols, 3 months, small windows")
    parser.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    args = parser.parse_args(argv)
    quiet_prophet_logs()

    kind = "parquet" if PARQUET.exists() else "demo"
    plan = (QUICK if args.quick else FULL)[kind]
    if kind == "parquet":
        source, symbols = f"parquet:{PARQUET}", SP500_SYMBOLS[: plan.symbols]
    else:
        print(f"note: {PARQUET} not found: using the synthetic demo universe instead")
        source, symbols = "demo", DEMO_SYMBOLS[: plan.symbols]
    config = BacktestConfig(
        strategy="prophet_momentum",
        params=dict(plan.params),
        source=source,
        symbols=symbols,
        start=plan.start,
        end=plan.end,
    )
    strategy_params = SimpleNamespace(**build_strategy(config.strategy, config.params).params)
    warmup = build_strategy(config.strategy, config.params).warmup_bars()
    start = pd.Timestamp(plan.start)
    # as backtests.runner loads it: enough calendar days to hold the warm-up bars
    data: MarketData = load(
        source, symbols, start - pd.Timedelta(days=int(warmup * 1.5) + 14), pd.Timestamp(plan.end)
    )
    workers = resolve_workers(args.workers)

    # untimed dry run: the history and first trading session every run shares
    dry = run_backtest(config, forecaster=NoForecasts(), market_data=data)
    history, trade_from = dry.history, dry.trade_from
    first_bar = int(history.index.get_loc(trade_from)) - 1  # the first bar a decision reads
    bars = len(history) - first_bar
    naive_fits = bars * len(data.bars)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # "plotly missing": no plots
    import prophet  # noqa: F401  (the ~1 s import is not charged to the naive way)

    print(
        f"prophet_momentum on {source if kind == 'demo' else 'sp500_daily.parquet'}: "
        f"{len(data.bars)} symbols, trading {trade_from.date()}..{history.index[-1].date()} "
        f"({len(history) - first_bar - 1} sessions) after {first_bar + 1} warm-up bars"
    )
    print(f"params: {dict(sorted(config.params.items()))} (others default); cores: {workers}")
    if args.quick:
        print("quick run: fewer symbols and bars, smaller windows than the full benchmark")

    # naive: the indicator on every symbol, every bar, then the decisions reading it
    bar = progress_bar(naive_fits, "naive")
    started = time.perf_counter()
    table = naive_indicator_pass(history, first_bar, strategy_params, bar.update)
    naive_result = run_backtest(
        config,
        forecaster=IndicatorForecaster(
            table, strategy_params.prophet_window, strategy_params.horizon
        ),
        market_data=data,
    )
    naive_seconds = time.perf_counter() - started
    bar.close()
    assert len(table) == naive_fits, (len(table), naive_fits)

    cache_dir = Path(tempfile.mkdtemp(prefix="tradeship-bench-cache-"))
    try:
        bar = progress_bar(0, "cold")
        started = time.perf_counter()
        with FastForecaster(ForecastCache(cache_dir), workers=workers, progress=bar) as fast:
            recorder = Recording(fast)
            cold_result = run_backtest(config, forecaster=recorder, market_data=data)
        cold_seconds = time.perf_counter() - started
        bar.close()
        cold_stats = dict(fast.stats)

        started = time.perf_counter()
        with FastForecaster(ForecastCache(cache_dir), workers=workers) as fast:
            warm_result = run_backtest(config, forecaster=fast, market_data=data)
        warm_seconds = time.perf_counter() - started
        warm_stats = dict(fast.stats)
        cache_info = ForecastCache(cache_dir).info()
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    identical = csv_bytes(naive_result) == csv_bytes(cold_result) == csv_bytes(warm_result)
    same_values = sum(
        table[key].hex() == value.hex() for key, value in recorder.values.items() if key in table
    )
    speedup_cold = naive_seconds / cold_seconds
    speedup_warm = naive_seconds / warm_seconds

    def per_fit(seconds: float, fits: float) -> str:
        return f"{1000 * seconds / fits:.1f}" if fits else "-"

    rows = [
        ("naive: indicator, serial", naive_seconds, naive_fits, per_fit(naive_seconds, naive_fits)),
        (
            f"cold cache, {workers} workers",
            cold_seconds,
            int(cold_stats["fits"]),
            per_fit(cold_stats["fit_seconds"], cold_stats["fits"]),
        ),
        ("warm cache", warm_seconds, int(warm_stats["fits"]), "-"),
    ]
    print()
    print(f"{'run':<28} {'seconds':>9} {'fits':>6} {'ms/fit':>7} {'speedup':>8}")
    for name, seconds, fits, ms in rows:
        print(f"{name:<28} {seconds:>9.2f} {fits:>6} {ms:>7} {naive_seconds / seconds:>7.1f}x")
    print()
    print(
        "naive ms/fit is its whole time per fit; cold ms/fit is one fit's time inside a worker"
    )
    print(
        f"cold: {int(cold_stats['requests'])} forecasts asked, {int(cold_stats['hits'])} hits; "
        f"warm: {int(warm_stats['hits'])}/{int(warm_stats['requests'])} hits; cache "
        f"{cache_info['entries']} entries, {cache_info['bytes'] / 1e6:.1f} MB"
    )
    print(
        f"forecasts bit-identical to the indicator's: {same_values}/{len(recorder.values)}; "
        f"decisions.csv rows: {len(naive_result.decisions)}"
    )
    print(
        f"speedup_cold={speedup_cold:.1f} speedup_warm={speedup_warm:.1f} "
        f"identical_decisions={'true' if identical else 'false'}",
        flush=True,
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
