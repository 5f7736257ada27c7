"""Bulk feeds (strategies/feeds.py) give Backtrader exactly what PandasData gave it.

The reference is the feed tradeship used before (a PandasData over one frame per symbol,
kept in benchmarks/engine_scale.py as the oracle): every line of every feed must hold the
same values, and a backtest's decisions.csv and orders.csv must be byte-identical with
either feed.
"""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from shared_data import SP500_PARQUET, needs_parquet

import strategies.engine as engine
from backtests.forecast_cache import ForecastCache
from backtests.forecasting import FastForecaster
from backtests.runner import BacktestConfig, run_backtest, write_outputs
from benchmarks.engine_scale import reference_feeds  # the feed of old: PandasData, the oracle
from strategies.feeds import HistoryData, history_feeds

# --- helpers


def _history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three symbols: one listed late, one with a gap in volume; and a membership frame."""
    index = pd.bdate_range("2023-01-02", periods=40, name="date")
    rng = np.random.default_rng(4)
    data = {}
    for symbol, first in (("AAA", 0), ("BBB", 12), ("CCC", 3)):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
        block = {
            "open": close * 0.99,
            "high": close * 1.01,
            "low": close * 0.98,
            "close": close,
            "volume": rng.integers(1, 10_000, len(index)).astype("float64"),
        }
        for field, values in block.items():
            values = values.copy()
            values[:first] = np.nan
            data[(field, symbol)] = values
    history = pd.DataFrame(data, index=index)
    history.columns = pd.MultiIndex.from_tuples(history.columns, names=["field", "symbol"])
    history.loc[index[20], ("volume", "CCC")] = 0.0
    members = pd.DataFrame(True, index=index.append(pd.DatetimeIndex(["2023-03-01"])),
                           columns=["AAA", "BBB", "CCC"])  # fmt: skip
    members.loc[index[25] :, "AAA"] = False
    return history, members


class Nothing(bt.Strategy):
    def next(self) -> None:
        pass


def _lines(feeds, *, preload: bool) -> list[tuple[str, dict[str, np.ndarray]]]:
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    for name, feed in feeds:
        cerebro.adddata(feed, name=name)
    cerebro.addstrategy(Nothing)
    cerebro.run(runonce=False, preload=preload)
    return [
        (
            name,
            {alias: np.array(getattr(feed.lines, alias).array) for alias in feed.getlinealiases()},
        )
        for name, feed in feeds
    ]


def _assert_same_lines(expected, actual) -> None:
    assert [name for name, _ in expected] == [name for name, _ in actual]
    for (name, want), (_, got) in zip(expected, actual, strict=True):
        assert want.keys() == got.keys()
        for alias in want:
            np.testing.assert_array_equal(got[alias], want[alias], err_msg=f"{name}.{alias}")


# --- tests


@pytest.mark.parametrize("preload", [True, False])
@pytest.mark.parametrize("with_members", [False, True])
def test_every_line_holds_pandasdatas_values(preload, with_members):
    history, members = _history()
    members = members if with_members else None
    after = pd.Timestamp("2023-03-01")
    expected = _lines(reference_feeds(history, members, after), preload=True)
    actual = _lines(history_feeds(history, members, after), preload=preload)
    _assert_same_lines(expected, actual)
    bbb = dict(actual)["BBB"]
    assert bbb["listed"][:12].sum() == 0 and bbb["listed"][12:].all()
    # before its listing a feed repeats the first bar, volume included (the rule of old)
    assert (bbb["close"][:12] == bbb["close"][12]).all()
    assert (bbb["volume"][:12] == bbb["volume"][12]).all()
    assert np.isnan(bbb["openinterest"]).all()


def test_feeds_are_history_data_in_symbol_order():
    history, _ = _history()
    feeds = history_feeds(history)
    assert [name for name, _ in feeds] == ["AAA", "BBB", "CCC"]
    assert all(isinstance(feed, HistoryData) for _, feed in feeds)


def _backtest_outputs(tmp_path, monkeypatch, feeds, config, cache) -> dict[str, bytes]:
    monkeypatch.setattr(engine, "history_feeds", feeds)
    with FastForecaster(ForecastCache(cache), workers=1, fitter="fast") as forecaster:
        result = run_backtest(config, forecaster=forecaster)
    out = tmp_path / feeds.__name__
    write_outputs(result, out)
    return {name: (out / name).read_bytes() for name in ("decisions.csv", "orders.csv")}


def _same_backtest(tmp_path, monkeypatch, config) -> None:
    cache = tmp_path / "forecasts"
    before = _backtest_outputs(tmp_path, monkeypatch, reference_feeds, config, cache)
    after = _backtest_outputs(tmp_path, monkeypatch, history_feeds, config, cache)
    assert before["orders.csv"].count(b"\n") > 5  # it traded
    assert after == before


@pytest.mark.slow
def test_demo_backtest_is_byte_identical_with_either_feed(tmp_path, monkeypatch):
    config = BacktestConfig(
        strategy="prophet_momentum", source="demo", start="2023-01-02", end="2023-12-29"
    )
    _same_backtest(tmp_path, monkeypatch, config)


@pytest.mark.slow
@needs_parquet
def test_sp50_backtest_is_byte_identical_with_either_feed(tmp_path, monkeypatch):
    from pathlib import Path

    symbols = (Path(__file__).parent / "fixtures/before_rewrite/sp50_symbols.txt").read_text()
    config = BacktestConfig(
        strategy="prophet_momentum",
        source=f"parquet:{SP500_PARQUET}",
        symbols=symbols.strip().split(","),
        start="2019-01-02",
        end="2019-12-31",
    )
    _same_backtest(tmp_path, monkeypatch, config)
