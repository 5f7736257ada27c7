"""Hand-computable checks for backtests.metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from backtests.metrics import compute_metrics, drawdown_series

KEYS = {
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "volatility",
    "max_drawdown",
    "trades",
    "final_value",
    "start",
    "end",
    "days",
}


def _series(values: list[float], start: str = "2024-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D"))


def _assert_json_safe(m: dict) -> None:
    json.dumps(m, allow_nan=False)  # raises on NaN/inf
    for k, v in m.items():
        if isinstance(v, float):
            assert math.isfinite(v), k


def test_keys_and_types() -> None:
    m = compute_metrics(_series([100.0, 101.0, 99.0, 102.0]), trades=3)
    assert KEYS <= m.keys()
    assert m["trades"] == 3 and isinstance(m["trades"], int)
    assert m["start"] == "2024-01-01" and m["end"] == "2024-01-04"
    assert m["days"] == 3
    assert m["final_value"] == 102.0
    for k in ("total_return", "cagr", "sharpe", "sortino", "volatility", "max_drawdown"):
        assert type(m[k]) is float, k
    _assert_json_safe(m)


def test_constant_growth_known_cagr() -> None:
    # 2020-01-01 -> 2024-01-01 is 1461 days = exactly 4.0 years of 365.25 days.
    idx = pd.date_range("2020-01-01", "2024-01-01", freq="D")
    n = len(idx) - 1
    equity = pd.Series(1000.0 * 2.0 ** (np.arange(n + 1) / n), index=idx)
    m = compute_metrics(equity, trades=0, periods_per_year=365)
    assert m["days"] == 1461
    assert m["total_return"] == pytest.approx(1.0)
    assert m["cagr"] == pytest.approx(2.0**0.25 - 1.0)
    assert m["max_drawdown"] == 0.0
    assert m["volatility"] == pytest.approx(0.0, abs=1e-9)
    # Zero-variance returns: Sharpe/Sortino are defined as 0, never inf/huge noise.
    assert m["sharpe"] == 0.0
    assert m["sortino"] == 0.0
    _assert_json_safe(m)


def test_known_50pct_drawdown() -> None:
    m = compute_metrics(_series([100.0, 200.0, 100.0, 150.0]), trades=2)
    assert m["max_drawdown"] == pytest.approx(-0.5)
    assert m["total_return"] == pytest.approx(0.5)


def test_drawdown_series_values() -> None:
    dd = drawdown_series(_series([100.0, 120.0, 90.0, 60.0, 130.0, 117.0]))
    assert dd.tolist() == pytest.approx([0.0, 0.0, -0.25, -0.5, 0.0, -0.1])
    assert (dd <= 0).all()


def test_flat_series_all_zero() -> None:
    m = compute_metrics(_series([500.0] * 10), trades=0)
    for k in ("total_return", "cagr", "sharpe", "sortino", "volatility", "max_drawdown"):
        assert m[k] == 0.0, k
    _assert_json_safe(m)


def test_sharpe_sortino_volatility_by_hand() -> None:
    # Returns +10%, -10%, +10%: mean 1/30, sample var 0.04/3, downside var 0.01/3.
    m = compute_metrics(_series([100.0, 110.0, 99.0, 108.9]), trades=0)
    ann = math.sqrt(252)
    mean, std, down = 1 / 30, math.sqrt(0.04 / 3), math.sqrt(0.01 / 3)
    assert m["volatility"] == pytest.approx(std * ann)
    assert m["sharpe"] == pytest.approx(mean / std * ann)
    assert m["sortino"] == pytest.approx(mean / down * ann)
    assert m["max_drawdown"] == pytest.approx(-0.1)


def test_risk_free_reduces_sharpe() -> None:
    equity = _series([100.0, 110.0, 99.0, 108.9])
    m = compute_metrics(equity, trades=0, risk_free=0.0252, periods_per_year=252)
    excess_mean = 1 / 30 - 0.0252 / 252
    assert m["sharpe"] == pytest.approx(excess_mean / math.sqrt(0.04 / 3) * math.sqrt(252))


def test_no_downside_sortino_zero() -> None:
    m = compute_metrics(_series([100.0, 101.0, 103.0, 104.0]), trades=0)
    assert m["sharpe"] > 0
    assert m["sortino"] == 0.0


def test_single_point_and_two_points() -> None:
    m1 = compute_metrics(_series([100.0]), trades=0)
    assert m1["days"] == 0 and m1["total_return"] == 0.0 and m1["cagr"] == 0.0
    assert m1["sharpe"] == 0.0 and m1["volatility"] == 0.0
    _assert_json_safe(m1)
    m2 = compute_metrics(_series([100.0, 110.0]), trades=1)  # one return: no sample std
    assert m2["sharpe"] == 0.0 and m2["volatility"] == 0.0
    assert m2["total_return"] == pytest.approx(0.1)
    _assert_json_safe(m2)


def test_wipeout_stays_json_safe() -> None:
    m = compute_metrics(_series([100.0, 50.0, 0.0, 0.0]), trades=1)
    assert m["total_return"] == pytest.approx(-1.0)
    assert m["cagr"] == -1.0
    assert m["max_drawdown"] == pytest.approx(-1.0)
    _assert_json_safe(m)


def test_unsorted_nan_and_tz_index() -> None:
    idx = pd.date_range("2024-03-01", periods=4, freq="D", tz="America/New_York")
    equity = pd.Series([100.0, np.nan, 200.0, 100.0], index=idx)[::-1]
    m = compute_metrics(equity, trades=0)
    assert m["start"] == "2024-03-01" and m["end"] == "2024-03-04"
    assert m["total_return"] == pytest.approx(0.0)
    assert m["max_drawdown"] == pytest.approx(-0.5)


def test_empty_raises() -> None:
    with pytest.raises(ValueError):
        compute_metrics(pd.Series([], dtype=float, index=pd.DatetimeIndex([])), trades=0)
