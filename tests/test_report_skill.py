"""Forecast skill: recording forecasts, lining them up with what followed, IC and hit rate.

The inner forecaster in the unit tests is a stand-in that returns chosen numbers (Prophet's
own output is not under test here: the alignment and the statistics are). The last test
records a real backtest of prophet_momentum on the demo data with the real cached
forecaster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from backtests.forecast_skill import (
    FORECAST_COLUMNS,
    ForecastRecord,
    RecordingForecaster,
    daily_ic,
    forecast_skill,
    skill_frame,
    skill_table,
    write_forecasts_csv,
)
from strategies.forecast import ForecastRequest, ProphetSettings

H, LOOKBACK = 5, 10


def _closes(n_symbols: int = 6, n: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2022-01-03", periods=n)
    steps = rng.normal(0.0, 0.02, (n, n_symbols))
    data = 100.0 * np.cumprod(1 + steps, axis=0)
    return pd.DataFrame(data, index=idx, columns=[f"S{i}" for i in range(n_symbols)])


class _Fixed:
    """Answers each request with a value from a table (symbol, target) -> yhat."""

    def __init__(self, answers: dict[tuple[str, pd.Timestamp], float]) -> None:
        self.answers = answers
        self.calls = 0

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        self.calls += 1
        return [self.answers[(r.symbol, r.target)] for r in requests]


def _records(closes: pd.DataFrame, how: str) -> list[ForecastRecord]:
    """Weekly decisions on every symbol: yhat = the true future price (or its mirror)."""
    out = []
    for pos in range(LOOKBACK, len(closes) - H, 5):
        bar = closes.index[pos]
        target = bar + pd.offsets.BDay(H)
        for symbol in closes.columns:
            now, later = closes[symbol].iloc[pos], closes[symbol].asof(target)
            move = later / now - 1.0
            yhat = now * (1 + (move if how == "perfect" else -move))
            out.append(ForecastRecord(symbol, bar, target, yhat))
    return out


def test_recording_forecaster_passes_through_and_records() -> None:
    closes = _closes()
    settings = ProphetSettings()
    bar = closes.index[20]
    target = bar + pd.offsets.BDay(H)
    requests = [ForecastRequest(s, closes[s].iloc[:18], target, settings) for s in ("S1", "S0")]
    inner = _Fixed({("S1", target): 101.5, ("S0", target): 99.0})
    recorder = RecordingForecaster(inner)
    assert recorder.forecast_many(requests) == [101.5, 99.0]
    assert recorder.records == [
        ForecastRecord("S1", closes.index[17], target, 101.5),
        ForecastRecord("S0", closes.index[17], target, 99.0),
    ]
    assert recorder.forecast_many([]) == [] and len(recorder.records) == 2
    assert inner.calls == 2


def test_rows_line_up_signal_realised_and_momentum() -> None:
    closes = _closes()
    pos = 30
    bar = closes.index[pos]
    target = bar + pd.offsets.BDay(H)
    frame = skill_frame(
        [ForecastRecord("S2", closes.index[pos - 3], target, 123.0)],
        closes,
        horizon=H,
        lookback=LOOKBACK,
    )
    assert list(frame.columns) == FORECAST_COLUMNS and len(frame) == 1
    row = frame.iloc[0]
    price = closes["S2"].iloc[pos]
    assert row["date"] == closes.index[pos + 1]  # the session the decision was for
    assert row["decision_bar"] == bar and row["close"] == price
    assert row["signal"] == pytest.approx(123.0 / price - 1)
    assert row["realised_return"] == pytest.approx(closes["S2"].iloc[pos + H] / price - 1)
    assert row["momentum"] == pytest.approx(price / closes["S2"].iloc[pos - LOOKBACK] - 1)


def test_holiday_target_uses_the_last_session_before_it_and_the_end_is_missing() -> None:
    closes = _closes()
    pos = 40
    target = closes.index[pos] + pd.offsets.BDay(H)
    holiday = closes.drop(index=target)  # the target session is a market holiday
    last = len(closes) - 2
    frame = skill_frame(
        [
            ForecastRecord("S0", closes.index[pos], target, 100.0),
            ForecastRecord("S0", closes.index[last], closes.index[last] + pd.offsets.BDay(H), 1.0),
        ],
        holiday,
        horizon=H,
        lookback=LOOKBACK,
    )
    expected = closes["S0"].iloc[pos + H - 1] / closes["S0"].iloc[pos] - 1
    assert frame.iloc[0]["realised_return"] == pytest.approx(expected)
    assert math.isnan(frame.iloc[1]["realised_return"])  # the history ends before the target


def test_a_replayed_forecast_counts_once() -> None:
    closes = _closes()
    records = _records(closes, "perfect")
    frame = skill_frame(records + records[:7], closes, horizon=H, lookback=LOOKBACK)
    assert len(frame) == len(records)


def test_perfect_and_mirrored_forecasts() -> None:
    closes = _closes()
    perfect = forecast_skill(_records(closes, "perfect"), closes, {"horizon": H,
                             "momentum_lookback": LOOKBACK, "threshold": 0.01})  # fmt: skip
    assert perfect is not None
    overall = perfect.prophet.iloc[-1]
    assert overall["period"] == "all" and overall["ic"] == pytest.approx(1.0)
    assert overall["hit_rate"] == 1.0
    mirrored = forecast_skill(_records(closes, "mirror"), closes, {"horizon": H,
                              "momentum_lookback": LOOKBACK})  # fmt: skip
    assert mirrored.prophet.iloc[-1]["ic"] == pytest.approx(-1.0)
    assert mirrored.prophet.iloc[-1]["hit_rate"] == 0.0
    # The baseline is scored on the very same rows, whatever the forecast said.
    pd.testing.assert_frame_equal(perfect.momentum, mirrored.momentum)
    # Bins: with perfect foresight the realised return rises with the signal bin.
    assert perfect.prophet_bins["realised_mean"].is_monotonic_increasing
    sel = perfect.selection
    assert sel["count"].iloc[0] == sel["count"].iloc[1] + sel["count"].iloc[2]
    assert sel["mean_realised_return"].iloc[1] > sel["mean_realised_return"].iloc[0]


def test_ic_and_t_stat_equal_scipy_per_date_and_per_year() -> None:
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2019-12-02", periods=60, freq="W-MON")
    rows = []
    for d in dates:
        for s in range(8):
            realised = rng.normal(0, 0.03)
            rows.append((d, f"S{s}", realised + rng.normal(0, 0.03), realised, rng.normal()))
    frame = pd.DataFrame(rows, columns=["date", "symbol", "signal", "realised_return", "momentum"])
    ic = daily_ic(frame, "signal")
    expected = [
        spearmanr(g["signal"], g["realised_return"]).statistic for _, g in frame.groupby("date")
    ]
    np.testing.assert_allclose(ic.to_numpy(), expected, atol=1e-12)
    table = skill_table(frame, "signal")
    assert list(table["period"]) == ["2019", "2020", "2021", "all"]
    overall = table.iloc[-1]
    assert overall["ic"] == pytest.approx(np.mean(expected))
    t = np.mean(expected) / np.std(expected, ddof=1) * math.sqrt(len(expected))
    assert overall["t_stat"] == pytest.approx(t)
    hits = np.sign(frame["signal"]) == np.sign(frame["realised_return"])
    assert overall["hit_rate"] == pytest.approx(hits.mean())
    y2020 = table[table["period"] == "2020"].iloc[0]
    in_2020 = [v for d, v in ic.items() if d.year == 2020]
    assert y2020["ic"] == pytest.approx(np.mean(in_2020)) and y2020["dates"] == len(in_2020)


def test_forecasts_csv(tmp_path) -> None:
    closes = _closes()
    frame = skill_frame(_records(closes, "perfect"), closes, horizon=H, lookback=LOOKBACK)
    path = write_forecasts_csv(frame, tmp_path)
    back = pd.read_csv(path)
    assert list(back.columns) == FORECAST_COLUMNS and len(back) == len(frame)
    assert back["date"].iloc[0] == frame["date"].iloc[0].strftime("%Y-%m-%d")
    np.testing.assert_allclose(back["signal"], frame["signal"], rtol=1e-9)


def test_no_forecasts_means_no_section() -> None:
    assert forecast_skill([], _closes(), {"horizon": H}) is None


def test_a_real_backtest_records_exactly_the_signals_its_decisions_read() -> None:
    """prophet_momentum on demo data, the real cached forecaster wrapped in the recorder:
    every name the strategy entered had signal >= threshold, every candidate it left out
    (and did not hold) had less, so the report's signal is the strategy's own.
    """
    from backtests.forecast_cache import ForecastCache
    from backtests.forecasting import FastForecaster
    from backtests.runner import BacktestConfig, run_backtest

    params = {"top_n": 3, "momentum_lookback": 20, "prophet_window": 60, "threshold": 0.01}
    config = BacktestConfig(
        strategy="prophet_momentum", source="demo", symbols=[f"SYN{i:03d}" for i in range(8)],
        start="2024-01-02", end="2024-03-28", params=params,
    )  # fmt: skip
    with FastForecaster(cache=ForecastCache.default(), workers=1) as fast:
        recorder = RecordingForecaster(fast)
        result = run_backtest(config, forecaster=recorder)
    skill = forecast_skill(recorder.records, result.history["close"], result.metrics["params"])
    assert skill is not None and skill.horizon == 5 and skill.lookback == 20
    frame = skill.frame
    assert len(frame) == len({(r.symbol, r.target) for r in recorder.records}) > 0
    decided = {pd.Timestamp(k): v for k, v in result.decided.items() if v is not None}
    books = {pd.Timestamp(k): v for k, v in result.holdings.items()}
    checked = 0
    for row in frame.itertuples(index=False):
        targets = decided.get(pd.Timestamp(row.date))
        if targets is None:
            continue
        held = float(books.get(pd.Timestamp(row.date), {}).get(row.symbol, 0.0)) > 0
        if held:
            continue
        entered = float(targets.get(row.symbol, 0.0)) > 0
        assert entered == (row.signal >= 0.01), (row.date, row.symbol, row.signal)
        checked += 1
    assert checked >= 5
    assert (frame.groupby("date").size() <= 3).all()  # at most top_n candidates a decision
