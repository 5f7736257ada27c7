"""The Prophet forecast as a Backtrader indicator that fits only what a strategy reads.

    self.fc = {d: ProphetForecast(d, window=252, horizon=5, refit_every=5) for d in self.datas}
    ...
    value = self.fc[d][0]                      # one forecast, fitted on demand
    values = read_forecasts(self.fc[d] for d in names)   # several, fitted in one batch

A forecast read at bar t is fitted on the last `window` closes up to the refit bar (the last
bar before the `refit_every`-weekday bucket of the session after t began: one fit per
bucket, on dates alone, so a replay that starts anywhere agrees with a backtest that started
in 2012) and read `horizon` weekdays after t. Nothing after bar t is ever seen. Fits go
through the run's `Forecaster` (cached and parallel in backtests; see strategies.context).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import backtrader as bt
import pandas as pd

from strategies.context import run_context
from strategies.forecast import ForecastRequest, ProphetSettings
from strategies.rebalance import bar_date
from strategies.schedule import refit_end


class ProphetForecast(bt.Indicator):
    """Prophet's forecast `horizon` weekdays ahead, computed lazily when read."""

    lines = ("forecast",)
    params = (
        ("window", 252),
        ("horizon", 5),
        ("refit_every", 5),
        ("changepoint_prior_scale", 0.05),
        ("weekly_seasonality", False),
        ("yearly_seasonality", False),
    )
    plotinfo = dict(subplot=False)

    def __init__(self) -> None:
        for name in ("window", "horizon", "refit_every"):
            if int(getattr(self.p, name)) < 1:
                raise ValueError(f"ProphetForecast {name} must be at least 1")
        # the first read always has a full window before its refit bar
        self.addminperiod(self.p.window + self.p.refit_every + 4)
        self.settings = ProphetSettings(
            changepoint_prior_scale=float(self.p.changepoint_prior_scale),
            weekly_seasonality=bool(self.p.weekly_seasonality),
            yearly_seasonality=bool(self.p.yearly_seasonality),
        )
        self._values: dict[float, float] = {}  # bar date number -> forecast

    def next(self) -> None:
        self.lines.forecast[0] = math.nan  # filled in when a strategy reads it

    def __getitem__(self, ago: int) -> float:
        return self.value(ago)

    def value(self, ago: int = 0) -> float:
        """The forecast as of the bar `ago` back (0: now); NaN without clean history."""
        return read_forecasts([self], ago)[self.data._name]

    def request(self, ago: int = 0) -> ForecastRequest | None:
        """The fit this indicator's value at bar `ago` needs, or None without enough data."""
        data, back = self.data, -int(ago)
        available = len(data) - back
        if available < 2:
            return None
        session = _session_after(self, back)
        if session is None:
            return None
        span = min(available, self.p.window + 3 * self.p.refit_every + 10)
        stamps = data.datetime.get(ago=-back, size=span)
        dates = pd.DatetimeIndex([bt.num2date(x).date() for x in stamps])
        try:
            fit_end = refit_end(dates, session, self.p.refit_every)
        except ValueError:
            return None
        end = dates.get_loc(fit_end)  # position of the refit bar within `dates`
        if end + 1 < self.p.window:
            return None
        offset = span - 1 - end  # bars from the refit bar to bar `ago`
        closes = data.close.get(ago=-back - offset, size=self.p.window)
        listed = _listed(data, back + offset, self.p.window)
        if len(closes) < self.p.window or not listed:
            return None
        window = pd.Series(
            list(closes), index=dates[end + 1 - self.p.window : end + 1], name=data._name
        )
        if window.isna().any():
            return None
        target = pd.Timestamp(dates[-1]) + pd.offsets.BDay(self.p.horizon)
        return ForecastRequest(data._name, window, target, self.settings)


def _session_after(indicator: ProphetForecast, back: int) -> pd.Timestamp | None:
    line = getattr(indicator.data.lines, "next_session", None)
    if line is None:
        from strategies.rebalance import next_session

        return next_session(indicator._owner) if back == 0 else None
    value = line[-back]
    return None if value != value else pd.Timestamp(bt.num2date(value).date())


def _listed(data: bt.feed.DataBase, back: int, size: int) -> bool:
    line = getattr(data.lines, "listed", None)
    if line is None:
        return True
    return all(v == 1.0 for v in line.get(ago=-back, size=size))


def read_forecasts(indicators: Iterable[ProphetForecast], ago: int = 0) -> dict[str, float]:
    """Each indicator's forecast at bar `ago` (by feed name), missing fits made in one batch.

    NaN where a symbol lacks a clean window. A batch lets the run's forecaster fit in
    parallel; the values are exactly those of reading each indicator alone.
    """
    indicators = list(indicators)
    values: dict[str, float] = {}
    todo: list[tuple[ProphetForecast, float, ForecastRequest]] = []
    for indicator in indicators:
        key = indicator.data.datetime[int(ago)]
        if key in indicator._values:
            values[indicator.data._name] = indicator._values[key]
            continue
        request = indicator.request(ago)
        if request is None:
            indicator._values[key] = values[indicator.data._name] = math.nan
        else:
            todo.append((indicator, key, request))
    if todo:
        forecaster = run_context(todo[0][0]).forecaster
        fitted = forecaster.forecast_many([request for _, _, request in todo])
        for (indicator, key, _), value in zip(todo, fitted, strict=True):
            indicator._values[key] = values[indicator.data._name] = float(value)
    if int(ago) == 0:
        for indicator in indicators:
            indicator.lines.forecast[0] = values[indicator.data._name]
    return values


__all__ = ["ProphetForecast", "read_forecasts", "bar_date"]
