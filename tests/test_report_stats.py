"""The tearsheet's statistics equal quantstats' (an independent implementation) to 1e-9.

Checked on a seeded synthetic curve always, and on the shared S&P 500 data (50 symbols,
2010-2020, their equal-weight buy-and-hold curve) when it is present. Where a figure is
defined differently from quantstats, the test pins the documented difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import quantstats as qs
from shared_data import SP500_PARQUET, needs_parquet

from backtests.benchmark import equal_weight_equity
from backtests.metrics import compute_metrics
from backtests.tearsheet import MONTHS, ROLLING_WINDOW, return_stats

TOL = 1e-9
SP50 = Path(__file__).parent / "fixtures" / "before_rewrite" / "sp50_symbols.txt"


def _synthetic() -> pd.Series:
    rng = np.random.default_rng(7)
    idx = pd.bdate_range("2015-01-02", periods=900)
    steps = rng.normal(0.0004, 0.012, len(idx))
    return pd.Series(100_000.0 * np.cumprod(1 + steps), index=idx, name="equity")


def _sp50() -> pd.Series:
    from marketdata import load
    from strategies.history import to_history

    symbols = SP50.read_text().strip().split(",")
    data = load(f"parquet:{SP500_PARQUET}", symbols, "2010-01-01", "2020-12-31")
    history = to_history(data.bars)
    curve, held = equal_weight_equity(history, history.index[0], 100_000.0)
    assert held >= 45  # the symbols trading on the first session
    return curve


def _check_against_quantstats(equity: pd.Series) -> None:
    stats = return_stats(equity)
    r = stats.returns
    assert len(r) == len(equity) - 1

    # Monthly and yearly compounded returns.
    q = qs.stats.monthly_returns(r)
    ours = stats.monthly
    assert list(ours.index) == [int(y) for y in q.index]
    for month in MONTHS:
        # quantstats fills months without data with 0; ours leaves them empty.
        np.testing.assert_allclose(ours[month].fillna(0.0), q[month.upper()], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours["Year"], q["EOY"], atol=TOL, rtol=0)

    # Rolling 6-month Sharpe and volatility.
    roll_sharpe = qs.stats.rolling_sharpe(r, rolling_period=ROLLING_WINDOW)
    roll_vol = qs.stats.rolling_volatility(r, rolling_period=ROLLING_WINDOW)
    np.testing.assert_allclose(stats.rolling["sharpe"], roll_sharpe, atol=TOL, rtol=0)
    np.testing.assert_allclose(stats.rolling["volatility"], roll_vol, atol=TOL, rtol=0)
    assert stats.rolling["sharpe"].notna().sum() == len(r) - ROLLING_WINDOW + 1

    # Calmar: both use the annual return over len(returns) / 252 years.
    assert stats.figures["calmar"] == pytest.approx(qs.stats.calmar(r), abs=TOL, rel=0)
    assert stats.figures["skew"] == pytest.approx(qs.stats.skew(r), abs=TOL)
    assert stats.figures["kurtosis"] == pytest.approx(qs.stats.kurtosis(r), abs=TOL)
    assert stats.figures["best_day"] == pytest.approx(qs.stats.best(r, aggregate=None), abs=TOL)
    assert stats.figures["worst_day"] == pytest.approx(qs.stats.worst(r, aggregate=None), abs=TOL)

    # The headline metrics (backtests.metrics) agree too.
    m = compute_metrics(equity, trades=0)
    assert m["total_return"] == pytest.approx(qs.stats.comp(r), abs=TOL, rel=0)
    assert m["sharpe"] == pytest.approx(qs.stats.sharpe(r), abs=TOL, rel=0)
    assert m["sortino"] == pytest.approx(qs.stats.sortino(r), abs=TOL, rel=0)
    assert m["volatility"] == pytest.approx(qs.stats.volatility(r), abs=TOL, rel=0)
    assert m["max_drawdown"] == pytest.approx(qs.stats.max_drawdown(equity), abs=TOL, rel=0)

    # Worst drawdowns: same depth and trough; quantstats starts one session after the peak.
    details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(r))
    details = details.sort_values("max drawdown", kind="mergesort").head(len(stats.drawdowns))
    worst = stats.drawdowns
    np.testing.assert_allclose(
        worst["depth"].to_numpy() * 100, details["max drawdown"].to_numpy(), atol=TOL * 100
    )
    assert [d.date() for d in worst["trough"]] == [
        pd.Timestamp(d).date() for d in details["valley"]
    ]
    sessions = equity.index
    for ours_start, their_start in zip(worst["start"], details["start"], strict=True):
        assert sessions[sessions.get_loc(ours_start) + 1] == pd.Timestamp(their_start)


def test_statistics_equal_quantstats_on_a_synthetic_curve() -> None:
    _check_against_quantstats(_synthetic())


@needs_parquet
@pytest.mark.skipif(not SP50.is_file(), reason=f"symbol list {SP50} not found")
def test_statistics_equal_quantstats_on_50_sp500_symbols_2010_2020() -> None:
    _check_against_quantstats(_sp50())


def test_worst_drawdowns_by_hand() -> None:
    idx = pd.bdate_range("2024-01-01", periods=9)
    equity = pd.Series([100, 110, 99, 105, 111, 100, 111.0, 90, 95], index=idx)
    worst = return_stats(equity).drawdowns
    assert list(worst["depth"].round(6)) == [round(90 / 111 - 1, 6), -0.1, round(100 / 111 - 1, 6)]
    first = worst.iloc[0]  # from the 111 peak, never recovered
    assert (first["start"], first["trough"]) == (idx[6], idx[7]) and pd.isna(first["recovery"])
    assert first["sessions"] == 2 and pd.isna(first["recovery_sessions"])
    second = worst.iloc[1]  # 110 -> 99 -> back above on day 4
    assert (second["start"], second["trough"], second["recovery"]) == (idx[1], idx[2], idx[4])
    assert second["sessions"] == 3 and second["recovery_sessions"] == 2


def test_alpha_beta_against_the_benchmark() -> None:
    bench = _synthetic()
    twice = bench.pct_change().fillna(0.0) * 2.0
    equity = (1 + twice).cumprod() * 100_000.0
    figures = return_stats(equity, bench).figures
    assert figures["beta"] == pytest.approx(2.0, abs=1e-9)
