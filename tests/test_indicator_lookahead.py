"""The Prophet indicator never looks ahead: cutting later bars leaves every earlier value."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd

from strategies.indicators import ProphetForecast


class Record(bt.Strategy):
    def __init__(self):
        self.forecast = ProphetForecast(self.data, window=60, refit_every=7, horizon=5)
        self.recorded = {}

    def next(self):
        self.recorded[bt.num2date(self.data.datetime[0]).date()] = self.forecast[0]


def run(frame: pd.DataFrame) -> dict:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(Record)
    strategy = cerebro.run()[0]
    return strategy.recorded


def test_prophet_indicator_values_unchanged_when_later_bars_removed():
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2022-01-03", periods=160)
    close = 50 * np.exp(np.cumsum(rng.normal(0.001, 0.02, len(dates))))
    frame = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e5},
        index=dates,
    )
    full = run(frame)
    assert len(full) == 160 - (60 + 7 + 4) + 1  # minimum period: window + refit_every + 4
    for cut in (100, 131):
        partial = run(frame.iloc[:cut])
        assert partial, "the indicator produced no values"
        for day, value in partial.items():
            assert full[day] == value, f"value at {day} changed when bars after {cut} were cut"
    # and the forecast really depends on the data it saw (not a constant)
    assert len(set(full.values())) > 5
