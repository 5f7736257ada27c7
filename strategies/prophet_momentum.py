"""prophet_momentum: hold the top-N momentum names whose Prophet forecast beats the price.

The rule, for the decision for session t (bars through t-1, holdings at that moment):

1. Rebalance only on the first session of each `rebalance_every`-weekday bucket.
2. Rank symbols with complete closes over the last `momentum_lookback` bars by trailing
   return; the top `top_n` form the candidates (ties by symbol name).
3. For each candidate fit Prophet on its last `prophet_window` closes up to the refit bar
   (refit once per `refit_every`-weekday bucket) and read the forecast `horizon` weekdays
   after the last completed bar. signal = forecast / last close - 1.
4. Enter a candidate when signal >= threshold; keep a holding while it stays among the
   candidates and signal > -threshold; everything else (exits, names that left the top-N)
   goes to zero.
5. The chosen names get equal weights summing to 1.

This follows the seed strategy (price vs Prophet trend among the top-20 S&P 500 names by
return), with the hysteresis band making "exit when it falls below by the threshold" exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from strategies.base import Strategy
from strategies.forecast import (
    Forecaster,
    ForecastRequest,
    ProphetForecaster,
    ProphetSettings,
)
from strategies.schedule import is_first_of_bucket, refit_end
from strategies.universe import top_n_by_momentum


@dataclass(frozen=True)
class ProphetMomentumParams:
    top_n: int = 10
    momentum_lookback: int = 126
    rebalance_every: int = 5
    threshold: float = 0.01
    prophet_window: int = 252
    refit_every: int = 5
    horizon: int = 5
    changepoint_prior_scale: float = 0.05
    weekly_seasonality: bool = False
    yearly_seasonality: bool = False

    def __post_init__(self) -> None:
        for name in (
            "top_n",
            "momentum_lookback",
            "rebalance_every",
            "prophet_window",
            "refit_every",
            "horizon",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.prophet_window < 10:
            raise ValueError(f"prophet_window must be at least 10 bars, got {self.prophet_window}")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.changepoint_prior_scale <= 0:
            raise ValueError("changepoint_prior_scale must be positive")


class ProphetMomentum(Strategy):
    """Top-N momentum universe, filtered by a Prophet forecast."""

    name = "prophet_momentum"
    Params = ProphetMomentumParams

    def __init__(self, params: Any = None, forecaster: Forecaster | None = None, **overrides: Any):
        super().__init__(params, **overrides)
        self.forecaster: Forecaster = forecaster or ProphetForecaster()

    @property
    def settings(self) -> ProphetSettings:
        p = self.params
        return ProphetSettings(
            changepoint_prior_scale=float(p.changepoint_prior_scale),
            weekly_seasonality=bool(p.weekly_seasonality),
            yearly_seasonality=bool(p.yearly_seasonality),
        )

    def warmup_bars(self) -> int:
        p = self.params
        return max(p.momentum_lookback + 1, p.prophet_window + p.refit_every + 4)

    def is_rebalance(self, session: pd.Timestamp, previous_bar: pd.Timestamp | None) -> bool:
        return is_first_of_bucket(session, previous_bar, self.params.rebalance_every)

    def forecast_requests(
        self, closes: pd.DataFrame, candidates: list[str], session: pd.Timestamp
    ) -> list[ForecastRequest]:
        """The forecasts the decision for `session` reads: one per candidate with data."""
        p = self.params
        fit_end = refit_end(closes.index, session, p.refit_every)
        target = pd.Timestamp(closes.index[-1]) + pd.offsets.BDay(p.horizon)
        upto = closes.loc[:fit_end]
        requests = []
        for symbol in candidates:
            window = upto[symbol].iloc[-p.prophet_window :]
            if len(window) < p.prophet_window or window.isna().any():
                continue  # not enough clean history to forecast: never guess
            requests.append(ForecastRequest(symbol, window, target, self.settings))
        return requests

    def targets(
        self,
        history: pd.DataFrame,
        holdings: Mapping[str, float],
        session: pd.Timestamp,
        state: Any,
    ) -> dict[str, float]:
        p = self.params
        closes = history["close"]
        candidates = top_n_by_momentum(closes, p.momentum_lookback, p.top_n)
        requests = self.forecast_requests(closes, candidates, session) if candidates else []
        forecasts = self.forecaster.forecast_many(requests)
        last = closes.iloc[-1]
        chosen = []
        for request, yhat in zip(requests, forecasts, strict=True):
            signal = yhat / float(last[request.symbol]) - 1.0
            held = request.symbol in holdings
            if signal >= p.threshold or (held and signal > -p.threshold):
                chosen.append(request.symbol)
        weight = 1.0 / len(chosen) if chosen else 0.0
        return {symbol: weight for symbol in sorted(chosen)}
