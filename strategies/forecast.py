"""Prophet forecasts of a price series: the one function every caller shares.

Backtests, the Backtrader indicator, the forecast cache and exported modules all go through
`prophet_forecast`, so a forecast for a given window is the same number everywhere.
A `Forecaster` decides *how* forecasts are produced (serially here; cached and in parallel
in backtests), never *what* they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ProphetSettings:
    """Everything besides the data that determines a Prophet forecast."""

    changepoint_prior_scale: float = 0.05
    weekly_seasonality: bool = False
    yearly_seasonality: bool = False
    seasonality_mode: str = "additive"
    uncertainty_samples: int = 0  # no sampling: decisions read yhat only


@dataclass(frozen=True)
class ForecastRequest:
    """One forecast: fit on `window` (a price series ending at the fit date), read `target`."""

    symbol: str
    window: pd.Series
    target: pd.Timestamp
    settings: ProphetSettings


class Forecaster(Protocol):
    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        """Return yhat for each request, in order."""
        ...


def quiet_prophet_logs() -> None:
    """cmdstanpy logs every fit at INFO; a backtest makes thousands.

    cmdstanpy installs its own INFO handler unless its logger already has one, so give it
    a NullHandler first, then raise the level.
    """
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.ERROR)


def prophet_forecast(window: pd.Series, target: pd.Timestamp, settings: ProphetSettings) -> float:
    """Fit Prophet on `window` (date-indexed prices) and return yhat at `target`.

    The fit sees exactly the window it is given: callers cut the window at the decision
    time, which is what keeps forecasts free of lookahead.
    """
    quiet_prophet_logs()
    from prophet import Prophet  # imported here: importing prophet costs ~1 s

    values = np.asarray(window.to_numpy(), dtype="float64")
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"cannot fit a forecast on {values.size} bars with missing prices")
    model = Prophet(
        changepoint_prior_scale=settings.changepoint_prior_scale,
        weekly_seasonality=settings.weekly_seasonality,
        yearly_seasonality=settings.yearly_seasonality,
        daily_seasonality=False,
        seasonality_mode=settings.seasonality_mode,
        uncertainty_samples=settings.uncertainty_samples,
    )
    frame = pd.DataFrame({"ds": pd.DatetimeIndex(window.index).tz_localize(None), "y": values})
    model.fit(frame)
    future = pd.DataFrame({"ds": [pd.Timestamp(target).tz_localize(None)]})
    return float(model.predict(future)["yhat"].iloc[0])


class ProphetForecaster:
    """Fits every request in turn, no cache: the reference way, and the one live runs use."""

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        return [prophet_forecast(r.window, r.target, r.settings) for r in requests]
