"""prophet_momentum: hold the top-N momentum names whose Prophet forecast beats the price.

A plain Backtrader strategy on tradeship's building blocks. At the bar before the first
session of each `rebalance_every`-weekday bucket:

1. rank the universe's members with complete closes over the last `momentum_lookback` bars
   by trailing return; the top `top_n` are the candidates (ties by symbol name);
2. read each candidate's Prophet forecast: fitted on its last `prophet_window` closes up to
   the refit bar (refit once per `refit_every`-weekday bucket), `horizon` weekdays ahead;
   signal = forecast / close - 1;
3. enter a candidate when signal >= threshold; keep a holding while it stays among the
   candidates and signal > -threshold; sell everything else;
4. hold the chosen names in equal weights (orders fill at the next session's open).

This follows the seed strategy (price vs Prophet trend among the top S&P 500 names by
return); the hysteresis band makes "exit when it falls below by the threshold" exact.
"""

from __future__ import annotations

import backtrader as bt

from strategies.indicators import ProphetForecast, read_forecasts
from strategies.rebalance import equal_weights, order_target_weights, rebalance_due
from strategies.universe import top_n_momentum


class Warmup(bt.Indicator):
    """No value: makes Backtrader wait `bars` bars before the strategy's first next()."""

    lines = ("ready",)
    params = (("bars", 1),)
    plotinfo = dict(plot=False)

    def __init__(self) -> None:
        self.addminperiod(int(self.p.bars))

    def next(self) -> None:
        self.lines.ready[0] = 1.0


class ProphetMomentum(bt.Strategy):
    """Top-N momentum universe, filtered by a Prophet forecast."""

    params = (
        ("top_n", 10),
        ("momentum_lookback", 126),
        ("rebalance_every", 5),
        ("threshold", 0.01),
        ("prophet_window", 252),
        ("refit_every", 5),
        ("horizon", 5),
        ("changepoint_prior_scale", 0.05),
        ("weekly_seasonality", False),
        ("yearly_seasonality", False),
    )

    def __init__(self) -> None:
        p = self.p
        for name in ("top_n", "momentum_lookback", "rebalance_every", "refit_every", "horizon"):
            if int(getattr(p, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(p, name)}")
        if p.prophet_window < 10:
            raise ValueError(f"prophet_window must be at least 10 bars, got {p.prophet_window}")
        if not 0 <= p.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {p.threshold}")
        if not p.changepoint_prior_scale > 0:
            raise ValueError("changepoint_prior_scale must be positive")
        self.forecast = {
            d: ProphetForecast(
                d,
                window=p.prophet_window,
                horizon=p.horizon,
                refit_every=p.refit_every,
                changepoint_prior_scale=p.changepoint_prior_scale,
                weekly_seasonality=p.weekly_seasonality,
                yearly_seasonality=p.yearly_seasonality,
            )
            for d in self.datas
        }
        Warmup(self.data0, bars=p.momentum_lookback + 1)

    def next(self) -> None:
        p = self.p
        if not rebalance_due(self, p.rebalance_every):
            return
        candidates = top_n_momentum(self, p.top_n, p.momentum_lookback)
        forecasts = read_forecasts(self.forecast[d] for d in candidates)
        chosen = []
        for d in candidates:
            yhat = forecasts[d._name]
            if yhat != yhat:
                continue  # no clean window to forecast from: never guess
            signal = yhat / float(d.close[0]) - 1.0
            held = bool(self.getposition(d).size)
            if signal >= p.threshold or (held and signal > -p.threshold):
                chosen.append(d._name)
        order_target_weights(self, equal_weights(chosen))
