"""Prophet forecasts of a price series: the one function every caller shares.

Backtests, the Backtrader indicator, the forecast cache and exported modules all go through
`prophet_forecast`, so a forecast for a given window is the same number everywhere.
A `Forecaster` decides *how* forecasts are produced (serially here; cached and in parallel
in backtests), never *what* they are.

Two fitters compute the same model: "prophet" (Prophet itself, through cmdstan: the
default) and "fast" (`strategies.fast_prophet`: Prophet's model and Stan's optimizer ported
to numpy, in-process, with no prophet or cmdstan installed). The fitter is a field of
`ProphetSettings`, so it is part of every forecast's cache key, and a forecaster built with
``fitter=`` applies it to every request it serves (`with_fitter`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

FITTERS = ("prophet", "fast")


@dataclass(frozen=True)
class ProphetSettings:
    """Everything besides the data that determines a Prophet forecast."""

    changepoint_prior_scale: float = 0.05
    weekly_seasonality: bool = False
    yearly_seasonality: bool = False
    seasonality_mode: str = "additive"
    uncertainty_samples: int = 0  # no sampling: decisions read yhat only
    fitter: str = "prophet"  # "prophet" (cmdstan) or "fast" (in-process, strategies.fast_prophet)


@dataclass(frozen=True)
class ForecastRequest:
    """One forecast: fit on `window` (a price series ending at the fit date), read `target`."""

    symbol: str
    window: pd.Series
    target: pd.Timestamp
    settings: ProphetSettings


def check_fitter(fitter: str) -> str:
    """`fitter` if it names a fitter; otherwise a ValueError saying which ones exist."""
    if fitter not in FITTERS:
        raise ValueError(f"unknown fitter {fitter!r}; use one of: {', '.join(FITTERS)}")
    return fitter


def with_fitter(requests: Sequence[ForecastRequest], fitter: str | None) -> list[ForecastRequest]:
    """`requests` with their settings' fitter set to `fitter` (None: left as they are).

    The one place a forecaster's fitter choice meets a strategy's settings.
    """
    if fitter is None:
        return list(requests)
    check_fitter(fitter)
    return [
        replace(r, settings=replace(r.settings, fitter=fitter))
        if r.settings.fitter != fitter
        else r
        for r in requests
    ]


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


def _inputs(
    window: pd.Series, target: pd.Timestamp
) -> tuple[pd.DatetimeIndex, np.ndarray, pd.Timestamp]:
    """A window's wall-clock dates, its prices (checked) and the target, as fits read them."""
    values = np.asarray(window.to_numpy(), dtype="float64")
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"cannot fit a forecast on {values.size} bars with missing prices")
    dates = pd.DatetimeIndex(window.index)
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    when = pd.Timestamp(target)
    if when.tzinfo is not None:
        when = when.tz_localize(None)
    return dates, values, when


def prophet_forecast(window: pd.Series, target: pd.Timestamp, settings: ProphetSettings) -> float:
    """Fit Prophet's model on `window` (date-indexed prices) and return yhat at `target`.

    The fit sees exactly the window it is given: callers cut the window at the decision
    time, which is what keeps forecasts free of lookahead. `settings.fitter` picks who fits.
    """
    if check_fitter(settings.fitter) == "fast":
        return forecast_requests([ForecastRequest("", window, target, settings)])[0]
    dates, values, when = _inputs(window, target)
    quiet_prophet_logs()
    from prophet import Prophet  # imported here: importing prophet costs ~1 s

    model = Prophet(
        changepoint_prior_scale=settings.changepoint_prior_scale,
        weekly_seasonality=settings.weekly_seasonality,
        yearly_seasonality=settings.yearly_seasonality,
        daily_seasonality=False,
        seasonality_mode=settings.seasonality_mode,
        uncertainty_samples=settings.uncertainty_samples,
    )
    model.fit(pd.DataFrame({"ds": dates, "y": values}))
    future = pd.DataFrame({"ds": [when]})
    return float(model.predict(future)["yhat"].iloc[0])


def forecast_requests(requests: Sequence[ForecastRequest]) -> list[float]:
    """yhat for each request, in order: fitter "fast" requests fitted together as batches
    (the same values as one at a time), fitter "prophet" ones one by one."""
    out: list[float | None] = [None] * len(requests)
    fast: list[int] = []
    for position, request in enumerate(requests):
        if check_fitter(request.settings.fitter) == "fast":
            fast.append(position)
        else:
            out[position] = prophet_forecast(request.window, request.target, request.settings)
    if fast:
        # only here: an export fitting with Prophet does not carry the fast fitter
        from strategies.fast_prophet import FitRequest
        from strategies.fast_prophet import forecast_many as fast_forecast_many

        fits, targets = [], []
        for position in fast:
            request = requests[position]
            dates, values, when = _inputs(request.window, request.target)
            settings = request.settings
            fits.append(
                FitRequest(
                    dates.as_unit("ns").asi8,
                    values,
                    changepoint_prior_scale=settings.changepoint_prior_scale,
                    weekly_seasonality=settings.weekly_seasonality,
                    yearly_seasonality=settings.yearly_seasonality,
                    seasonality_mode=settings.seasonality_mode,
                )
            )
            targets.append(int(when.as_unit("ns").value))
        for position, value in zip(fast, fast_forecast_many(fits, targets), strict=True):
            out[position] = value
    return [float(value) for value in out]  # type: ignore[arg-type]


class ProphetForecaster:
    """Fits every request in turn, no cache: the reference way, and the one live runs use.

    fitter: None keeps each request's own fitter; "prophet" or "fast" overrides it.
    """

    def __init__(self, fitter: str | None = None) -> None:
        with_fitter([], fitter)  # checks the name now, not at the first forecast
        self.fitter = fitter

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        return forecast_requests(with_fitter(requests, self.fitter))
