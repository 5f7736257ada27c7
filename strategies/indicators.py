"""Backtrader indicators built on the shared forecast functions."""

from __future__ import annotations

import backtrader as bt
import pandas as pd

from strategies.forecast import ProphetSettings, prophet_forecast


class ProphetForecast(bt.Indicator):
    """Prophet's forecast `horizon` weekdays ahead, fitted on a trailing window ending at t.

    At bar t it fits on the last `window` closes up to and including t (refit every
    `refit_every` bars, holding the last forecast in between), so the value at t never
    depends on a later bar. Expensive: one fit per refit per symbol. Strategies that only
    need forecasts on rebalance days call `prophet_forecast` for the names they trade.
    """

    lines = ("forecast",)
    params = (
        ("window", 252),
        ("refit_every", 1),
        ("horizon", 5),
        ("changepoint_prior_scale", 0.05),
        ("weekly_seasonality", False),
        ("yearly_seasonality", False),
        ("uncertainty_samples", 0),
    )

    def __init__(self) -> None:
        self.addminperiod(self.p.window)
        self._since_fit = None
        self._settings = ProphetSettings(
            changepoint_prior_scale=self.p.changepoint_prior_scale,
            weekly_seasonality=self.p.weekly_seasonality,
            yearly_seasonality=self.p.yearly_seasonality,
            uncertainty_samples=self.p.uncertainty_samples,
        )

    def next(self) -> None:
        if self._since_fit is not None and self._since_fit < self.p.refit_every:
            self._since_fit += 1
            self.lines.forecast[0] = self.lines.forecast[-1]
            return
        closes = self.data.close.get(size=self.p.window)
        dates = [bt.num2date(x) for x in self.data.datetime.get(size=self.p.window)]
        window = pd.Series(list(closes), index=pd.DatetimeIndex(dates).normalize())
        target = window.index[-1] + pd.offsets.BDay(self.p.horizon)
        self.lines.forecast[0] = prophet_forecast(window, target, self._settings)
        self._since_fit = 1
