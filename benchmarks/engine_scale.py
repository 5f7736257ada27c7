"""Benchmark: the whole S&P 500 through Backtrader, before and after bulk feeds, the data
cache and fitter "fast", measured in one run.

    .venv/bin/python benchmarks/engine_scale.py [--start 2018-01-02] [--end 2020-12-31]
        [--symbols N] [--windows 100] [--engine-options]

prophet_momentum with default parameters on every symbol of the shared S&P 500 data,
in this process (``--workers 1`` semantics: no worker pool), timed wall clock:

cold_fast   fresh forecast and data caches, fitter "fast": load, validate, fit every
            forecast, backtest.
warm        the same again: both caches warm, bulk feeds. This is ``warm_s``.
today       the same warm forecast cache with today's input path: Backtrader's PandasData
            feed (the reference below) and no data cache. Its decisions.csv and orders.csv
            must equal warm's byte for byte (printed: identical_outputs).
fits        ``--windows`` real 252-bar windows drawn from the same data, fitted by Prophet
            one by one and by fitter "fast" (one batch; and one at a time): per-fit time
            ratio and the share of forecasts within 0.5 % of Prophet's.

``--engine-options`` also times the warm run under Backtrader's other run modes (runonce,
no preload, exactbars) and says whether each leaves the outputs identical.

The first line printed is the issue's:
    warm_s=.. (today's feed: ..) speedup_warm=X cold_fast_s=.. speedup_fit_fast=Y
    yhat_within_0.5pct=Z%
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(PROJECT))

import backtests.runner as runner  # noqa: E402
import strategies.engine as engine  # noqa: E402
from backtests.forecast_cache import ForecastCache  # noqa: E402
from backtests.forecasting import FastForecaster  # noqa: E402
from marketdata import load  # noqa: E402
from marketdata.cache import DataCache  # noqa: E402
from strategies.feeds import history_feeds  # noqa: E402

PARQUET = PROJECT.parent / "shared" / "data" / "sp500_daily.parquet"


# today's feed: Backtrader's PandasData over one frame per symbol (the reference) --------


class ReferenceData(bt.feeds.PandasData):
    lines = ("listed", "member", "next_session")
    params = (
        ("datetime", None),
        ("openinterest", None),
        ("listed", "listed"),
        ("member", "member"),
        ("next_session", "next_session"),
    )


def reference_feeds(history, members=None, after_last=None):
    """The feeds as built before bulk loading, kept as the oracle for tests/test_feeds.py."""
    following = list(history.index[1:]) + [None if after_last is None else after_last]
    sessions = np.array(
        [np.nan if d is None else bt.date2num(pd.Timestamp(d).to_pydatetime()) for d in following]
    )
    symbols = sorted(history.columns.get_level_values("symbol").unique())
    ahead = None
    if members is not None:
        keys = pd.DatetimeIndex([pd.NaT if d is None else d for d in following])
        ahead = members.reindex(index=keys, columns=symbols).fillna(False).astype(bool)
        ahead.index = history.index
    feeds = []
    for symbol in symbols:
        fields = ["open", "high", "low", "close", "volume"]
        frame = history.xs(symbol, axis=1, level="symbol")[fields]
        listed = frame["close"].notna().to_numpy(dtype="float64")
        frame = frame.bfill().fillna({"volume": 0.0})
        frame["listed"] = listed
        frame["member"] = 1.0 if ahead is None else ahead[symbol].to_numpy(dtype="float64")
        frame["next_session"] = sessions
        feeds.append((symbol, ReferenceData(dataname=frame)))
    return feeds


# one timed backtest ----------------------------------------------------------------------


@contextlib.contextmanager
def input_path(*, bulk: bool, data_cache: DataCache | None, run_kwargs: dict | None = None
               ) -> Iterator[None]:  # fmt: skip
    """Run backtests with the bulk or the reference feed, a data cache or none, and
    (optionally) other Cerebro.run keywords. Restores everything afterwards."""
    saved_feeds, saved_load, saved_run = engine.history_feeds, runner.load, bt.Cerebro.run
    engine.history_feeds = history_feeds if bulk else reference_feeds
    runner.load = functools.partial(load, cache=data_cache) if data_cache else load
    if run_kwargs:

        def run(self, **kwargs):
            return saved_run(self, **{**kwargs, **run_kwargs})

        bt.Cerebro.run = run
    try:
        yield
    finally:
        engine.history_feeds, runner.load, bt.Cerebro.run = saved_feeds, saved_load, saved_run


def backtest(config, forecasts: Path, out: Path) -> tuple[float, dict, dict[str, bytes]]:
    """(seconds, forecaster stats, decisions.csv and orders.csv bytes)."""
    started = time.perf_counter()
    with FastForecaster(ForecastCache(forecasts), workers=1, fitter="fast") as forecaster:
        result = runner.run_backtest(config, forecaster=forecaster)
        stats = dict(forecaster.stats)
    seconds = time.perf_counter() - started
    runner.write_outputs(result, out)
    files = {name: (out / name).read_bytes() for name in ("decisions.csv", "orders.csv")}
    return seconds, stats, files


# fits ------------------------------------------------------------------------------------


def fit_figures(count: int, seed: int = 0) -> dict[str, float]:
    """Prophet against fitter "fast" on `count` real 252-bar windows, timed in this run."""
    from benchmarks.fast_prophet_acceptance import draw_windows
    from strategies.forecast import ForecastRequest, ProphetSettings, forecast_requests

    windows = draw_windows(count, seed)
    prophet, fast = ProphetSettings(), ProphetSettings(fitter="fast")
    forecast_requests([ForecastRequest(*windows[0], prophet)])  # Prophet's import, untimed
    started = time.perf_counter()
    reference = np.array(forecast_requests([ForecastRequest(*w, prophet) for w in windows]))
    prophet_s = time.perf_counter() - started
    started = time.perf_counter()
    batch = np.array(forecast_requests([ForecastRequest(*w, fast) for w in windows]))
    batch_s = time.perf_counter() - started
    singles = windows[: max(1, count // 10)]
    started = time.perf_counter()
    alone = [forecast_requests([ForecastRequest(*w, fast)])[0] for w in singles]
    single_s = (time.perf_counter() - started) / len(singles) * count
    errors = np.abs(batch / reference - 1)
    worst = int(np.argmax(errors))
    return {
        "prophet_ms": 1000 * prophet_s / count,
        "fast_ms": 1000 * batch_s / count,
        "fast_single_ms": 1000 * single_s / count,
        "speedup": prophet_s / batch_s,
        "speedup_single": prophet_s / single_s,
        "within": 100 * float(np.mean(errors <= 0.005)),
        "worst": 100 * float(errors[worst]),
        "worst_window": f"{windows[worst][0]} {windows[worst][1].index[-1].date()}",
        "same_alone": bool(np.array_equal(alone, batch[: len(singles)])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2018-01-02")
    parser.add_argument("--end", default="2020-12-31")
    parser.add_argument("--symbols", type=int, default=0, help="first N symbols (0: all)")
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--engine-options", action="store_true")
    parser.add_argument("--keep", metavar="DIR", help="copy the runs' outputs to DIR")
    args = parser.parse_args(argv)
    if not PARQUET.is_file():
        print(f"shared S&P 500 data not found at {PARQUET}", file=sys.stderr)
        return 2
    symbols = None
    if args.symbols:
        everything = pd.read_parquet(PARQUET, columns=["symbol"])["symbol"].unique()
        symbols = sorted(everything)[: args.symbols]
    config = runner.BacktestConfig(
        strategy="prophet_momentum",
        source=f"parquet:{PARQUET}",
        symbols=symbols,
        start=args.start,
        end=args.end,
    )
    root = Path(tempfile.mkdtemp(prefix="tradeship-engine-scale-"))
    try:
        forecasts, data = root / "forecasts", DataCache(root / "data")
        with input_path(bulk=True, data_cache=data):
            cold_s, cold_stats, cold_files = backtest(config, forecasts, root / "cold")
            warm_s, _, warm_files = backtest(config, forecasts, root / "warm")
        with input_path(bulk=False, data_cache=None):
            today_s, _, today_files = backtest(config, forecasts, root / "today")
        fits = fit_figures(args.windows)
        print(
            f"warm_s={warm_s:.1f} (today's feed: {today_s:.1f}) speedup_warm={today_s / warm_s:.1f}"
            f" cold_fast_s={cold_s:.1f} speedup_fit_fast={fits['speedup']:.1f}"
            f" yhat_within_0.5pct={fits['within']:.1f}%"
        )
        print(
            f"identical_outputs={warm_files == today_files == cold_files}"
            f" fits_cold={int(cold_stats['fits'])} fit_s_cold={cold_stats['fit_seconds']:.1f}"
            f" prophet_fit_ms={fits['prophet_ms']:.1f} fast_fit_ms={fits['fast_ms']:.1f}"
            f" (one at a time: {fits['fast_single_ms']:.1f},"
            f" speedup {fits['speedup_single']:.1f}) worst={fits['worst']:.2f}%"
            f" ({fits['worst_window']}) same_bits_alone={fits['same_alone']}"
            f" windows={args.windows} symbols={len(symbols) if symbols else 'all'}"
        )
        if args.engine_options:
            for name, options in (
                ("runonce", {"runonce": True}),
                ("no_preload", {"preload": False}),
                ("exactbars_1", {"exactbars": 1}),
            ):
                try:
                    with input_path(bulk=True, data_cache=data, run_kwargs=options):
                        seconds, _, files = backtest(config, forecasts, root / name)
                    same = files == warm_files
                    print(f"engine {name}: {seconds:.1f}s (warm {warm_s:.1f}s) identical={same}")
                except Exception as exc:  # an option the engine cannot run under
                    print(f"engine {name}: fails ({type(exc).__name__}: {exc})")
        if args.keep:
            shutil.copytree(
                root,
                args.keep,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("*.json", "*.parquet"),
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
