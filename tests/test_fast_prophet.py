"""Fitter "fast": Prophet's model and Stan's L-BFGS in-process (strategies/fast_prophet.py).

Prophet itself is the reference: its changepoint grid, its log density at its own fitted
parameters, and its forecasts on real windows. No mocks: tests that need Prophet fit it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import SP500_PARQUET, needs_parquet

from backtests.forecast_cache import ForecastCache, forecast_key, library_versions
from backtests.forecasting import FastForecaster
from strategies import fast_prophet
from strategies.forecast import (
    ForecastRequest,
    ProphetForecaster,
    ProphetSettings,
    prophet_forecast,
    quiet_prophet_logs,
    with_fitter,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = ProphetSettings(fitter="fast")
needs_prophet = pytest.mark.skipif(
    importlib.util.find_spec("prophet") is None, reason="prophet is not installed"
)


def _walk(n: int = 252, seed: int = 3, drift: float = 0.05) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2021-01-04", periods=n, name="date")
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(drift / 100, 0.015, n))), index=index)


def _next_day(window: pd.Series) -> pd.Timestamp:
    return window.index[-1] + pd.offsets.BDay(1)


def test_a_straight_line_is_forecast_on_the_line():
    index = pd.bdate_range("2022-01-03", periods=200)
    days = (index - index[0]).days.to_numpy()
    line = pd.Series(50.0 + 0.1 * days, index=index)
    target = index[-1] + pd.offsets.BDay(5)
    exact = 50.0 + 0.1 * (target - index[0]).days
    assert prophet_forecast(line, target, FAST) == pytest.approx(exact, rel=1e-3)


def test_same_window_same_bits_whatever_the_datetime_unit_or_zone():
    window = _walk()
    target = _next_day(window)
    first = prophet_forecast(window, target, FAST)
    as_us = window.copy()
    as_us.index = window.index.as_unit("us")
    in_ny = window.copy()
    in_ny.index = window.index.tz_localize("America/New_York")
    assert prophet_forecast(window, target, FAST) == first
    assert prophet_forecast(as_us, target, FAST) == first
    assert prophet_forecast(in_ny, target.tz_localize("America/New_York"), FAST) == first


def test_a_constant_series_forecasts_its_value_as_prophet_does():
    index = pd.bdate_range("2022-01-03", periods=60)
    flat = pd.Series(42.5, index=index)
    assert prophet_forecast(flat, index[-1] + pd.offsets.BDay(1), FAST) == 42.5


def test_bad_windows_and_settings_are_refused_with_a_sentence():
    window = _walk(30)
    with pytest.raises(ValueError, match="missing prices"):
        prophet_forecast(window.iloc[:1], _next_day(window), FAST)
    holes = window.copy()
    holes.iloc[3] = np.nan
    with pytest.raises(ValueError, match="missing prices"):
        prophet_forecast(holes, _next_day(window), FAST)
    with pytest.raises(ValueError, match="unknown fitter 'stan'; use one of: prophet, fast"):
        prophet_forecast(window, _next_day(window), ProphetSettings(fitter="stan"))
    multiplicative = ProphetSettings(
        fitter="fast", weekly_seasonality=True, seasonality_mode="multiplicative"
    )
    with pytest.raises(ValueError, match="additive seasonality only"):
        prophet_forecast(window, _next_day(window), multiplicative)


def test_a_forecaster_told_the_fitter_rewrites_every_request():
    window = _walk(120)
    request = ForecastRequest("X", window, _next_day(window), ProphetSettings())
    (rewritten,) = with_fitter([request], "fast")
    assert rewritten.settings == FAST and request.settings.fitter == "prophet"
    assert with_fitter([request], None) == [request]
    expected = prophet_forecast(window, request.target, FAST)
    assert ProphetForecaster(fitter="fast").forecast_many([request]) == [expected]
    with pytest.raises(ValueError, match="unknown fitter"):
        ProphetForecaster(fitter="Fast")


def test_the_cache_keys_forecasts_by_fitter_and_stores_fast_fits(tmp_path):
    window = _walk(120)
    request = ForecastRequest("X", window, _next_day(window), ProphetSettings())
    fast_request = with_fitter([request], "fast")[0]
    assert forecast_key(request) != forecast_key(fast_request)
    versions = dict(library_versions("fast"))
    assert "prophet" not in versions and versions["tradeship-fast-prophet"]
    cache = ForecastCache(tmp_path / "forecasts")
    with FastForecaster(cache=cache, workers=1, fitter="fast") as forecaster:
        (value,) = forecaster.forecast_many([request])
        assert forecaster.forecast_many([request]) == [value]
        assert forecaster.stats["fits"] == 1 and forecaster.stats["hits"] == 1
    assert value == prophet_forecast(window, request.target, FAST)
    assert cache.get(fast_request) == value and cache.get(request) is None


def test_fast_fits_run_where_prophet_cannot_be_imported():
    code = (
        "import sys; sys.modules['prophet'] = None; sys.modules['cmdstanpy'] = None\n"
        "import pandas as pd, numpy as np\n"
        "from strategies.forecast import ProphetSettings, prophet_forecast\n"
        "i = pd.bdate_range('2022-01-03', periods=80)\n"
        "w = pd.Series(np.linspace(10, 20, 80), index=i)\n"
        "print(prophet_forecast(w, i[-1] + pd.Timedelta(days=1), ProphetSettings(fitter='fast')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert 19.9 < float(done.stdout) < 20.5


@needs_prophet
@pytest.mark.parametrize("bars", [3, 10, 31, 99, 252, 600])
def test_the_changepoint_grid_is_prophets(bars):
    from prophet import Prophet

    window = _walk(bars)
    model = Prophet(daily_seasonality=False, weekly_seasonality=False, yearly_seasonality=False)
    model.history = model.setup_dataframe(
        pd.DataFrame({"ds": window.index, "y": window.to_numpy()}), initialize_scales=True
    )
    model.set_changepoints()
    ns = window.index.as_unit("ns").asi8
    t = (ns - ns[0]).astype("float64") / float(ns[-1] - ns[0])
    np.testing.assert_array_equal(fast_prophet.changepoint_grid(t), model.changepoints_t)


@needs_prophet
def test_the_objective_is_stans_log_density_at_prophets_own_fit():
    """-lp__ that Stan reports at its optimum equals our objective at Prophet's parameters."""
    from prophet import Prophet

    quiet_prophet_logs()
    window = _walk(252, seed=11)
    model = Prophet(daily_seasonality=False, weekly_seasonality=False, yearly_seasonality=False)
    model.fit(pd.DataFrame({"ds": window.index, "y": window.to_numpy()}))
    params = {
        name: np.asarray(value, dtype="float64").ravel() for name, value in model.params.items()
    }
    fitted = fast_prophet.fit(window.index.as_unit("ns").asi8, window.to_numpy())
    np.testing.assert_array_equal(fitted.changepoints_t, model.changepoints_t)
    objective = _objective(window, fitted)
    x = np.concatenate(
        [params["k"], params["m"], params["delta"], [math.log(float(params["sigma_obs"][0]))]]
    )
    (value,), _, _ = objective(x[None, :])
    assert value == pytest.approx(-float(params["lp__"][0]), rel=1e-6)
    # and the fast fit reaches (about) the same optimum, never a worse one by much
    (ours,), _, _ = objective(
        np.concatenate([[fitted.k, fitted.m], fitted.delta, [math.log(fitted.sigma_obs)]])[None]
    )
    assert ours <= value + 1.0


def _objective(window: pd.Series, fitted, weekly: bool = False) -> fast_prophet._Objective:
    """The objective a fit of `window` minimises, for a batch of one."""
    ns = window.index.as_unit("ns").asi8
    t = (ns - ns[0]).astype("float64") / float(ns[-1] - ns[0])
    seasonal = fast_prophet._fourier(ns, fast_prophet.seasonality_orders(weekly, False))
    return fast_prophet._Objective(
        t[None],
        np.searchsorted(t, fitted.changepoints_t)[None],
        seasonal[None],
        (window.to_numpy() / fitted.y_scale)[None],
        np.array([0.05]),
    )


def test_the_gradient_is_the_objectives():
    """Analytic gradient against central differences, seasonality included (kinks avoided)."""
    window = _walk(150, seed=5)
    fitted = fast_prophet.fit(window.index.as_unit("ns").asi8, window.to_numpy())
    objective = _objective(window, fitted, weekly=True)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.3, 2 + fitted.changepoints_t.size + 6 + 1)
    (_,), (grad,), _ = objective(x[None])
    step = 1e-6
    numeric = [
        (objective((x + step * e)[None])[0][0] - objective((x - step * e)[None])[0][0]) / (2 * step)
        for e in np.eye(x.size)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)


def test_a_fit_does_not_depend_on_its_batch():
    windows = [_walk(252, seed=s) for s in range(6)]
    requests = [fast_prophet.FitRequest(w.index.as_unit("ns").asi8, w.to_numpy()) for w in windows]
    targets = [int(_next_day(w).as_unit("ns").value) for w in windows]
    together = fast_prophet.forecast_many(requests, targets)
    alone = [
        fast_prophet.forecast_many([r], [t])[0] for r, t in zip(requests, targets, strict=True)
    ]
    shuffled = fast_prophet.forecast_many(requests[::-1], targets[::-1])[::-1]
    assert together == alone == shuffled
    forecasts = [ForecastRequest("X", w, _next_day(w), FAST) for w in windows]
    assert ProphetForecaster().forecast_many(forecasts) == together


def _windows(count: int, seed: int) -> list[tuple[pd.Series, pd.Timestamp]]:
    frame = pd.read_parquet(SP500_PARQUET, columns=["symbol", "date", "adjusted_close"])
    frame["date"] = pd.to_datetime(frame["date"])
    groups = {
        s: g.set_index("date")["adjusted_close"].sort_index() for s, g in frame.groupby("symbol")
    }
    symbols = sorted(s for s, g in groups.items() if len(g) > 300)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        series = groups[symbols[int(rng.integers(len(symbols)))]]
        end = int(rng.integers(252, len(series)))
        out.append((series.iloc[end - 252 : end], series.index[end]))
    return out


@pytest.mark.slow
@needs_prophet
@needs_parquet
def test_fast_forecasts_agree_with_prophet_on_real_windows():
    """100 real 252-bar windows. Measured (benchmarks/fast_prophet_acceptance.py, 1,000
    windows): see the figures there; Stan's stopping point depends on rounding, so Prophet
    does not agree with itself on prices nudged by 1e-12 more closely than this."""
    errors = []
    for window, target in _windows(100, seed=7):
        reference = prophet_forecast(window, target, ProphetSettings())
        errors.append(abs(prophet_forecast(window, target, FAST) / reference - 1))
    errors = np.array(errors)
    report = json.dumps({"within": float(np.mean(errors <= 0.005)), "worst": float(errors.max())})
    assert np.mean(errors <= 0.005) >= 0.90, report
    assert errors.max() <= 0.05, report
