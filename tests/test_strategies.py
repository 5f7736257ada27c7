"""The decision logic: schedules, momentum, the prophet_momentum rule, the contract's guards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.base import LookaheadError
from strategies.buy_and_hold import BuyAndHold
from strategies.forecast import ForecastRequest
from strategies.prophet_momentum import ProphetMomentum, ProphetMomentumParams
from strategies.registry import parse_params, strategy_class
from strategies.schedule import is_first_of_bucket, refit_end, weekday_bucket
from strategies.sizing import target_quantity
from strategies.universe import top_n_by_momentum, trailing_returns


def make_history(closes: pd.DataFrame) -> pd.DataFrame:
    parts = {f: closes for f in ("open", "high", "low", "close")}
    parts["volume"] = closes * 0 + 1000.0
    return pd.concat(parts, axis=1, names=["field", "symbol"])


class RecordingForecaster:
    """Returns forecasts from a table: lets a test set each signal exactly."""

    def __init__(self, ratios: dict[str, float]):
        self.ratios = ratios
        self.requests: list[ForecastRequest] = []

    def forecast_many(self, requests):
        self.requests.extend(requests)
        return [float(r.window.iloc[-1]) * self.ratios[r.symbol] for r in requests]


def trending_closes(n: int = 300) -> pd.DataFrame:
    dates = pd.bdate_range("2021-01-04", periods=n)
    growth = {"AAA": 0.004, "BBB": 0.003, "CCC": 0.002, "DDD": 0.001, "EEE": -0.001}
    return pd.DataFrame({s: 100 * np.exp(g * np.arange(n)) for s, g in growth.items()}, index=dates)


def test_weekday_buckets_ignore_holidays_and_history_length():
    monday = pd.Timestamp("2024-01-08")
    assert weekday_bucket(monday, 5) == weekday_bucket(monday + pd.Timedelta(days=4), 5)
    assert weekday_bucket(monday, 5) + 1 == weekday_bucket(monday + pd.Timedelta(days=7), 5)
    # a session after a holiday still opens its bucket
    assert is_first_of_bucket(pd.Timestamp("2024-01-16"), pd.Timestamp("2024-01-12"), 5)
    assert not is_first_of_bucket(pd.Timestamp("2024-01-17"), pd.Timestamp("2024-01-16"), 5)
    with pytest.raises(ValueError, match="at least 1"):
        weekday_bucket(monday, 0)


def test_refit_end_is_last_bar_before_the_bucket():
    dates = pd.bdate_range("2024-01-01", "2024-01-31")
    session = pd.Timestamp("2024-01-18")  # mid-bucket
    end = refit_end(dates[dates < session], session, 5)
    assert end < session
    assert weekday_bucket(end, 5) < weekday_bucket(session, 5)
    assert refit_end(dates[dates < session], session, 1) == pd.Timestamp("2024-01-17")


def test_momentum_ranks_by_trailing_return_with_name_ties():
    closes = trending_closes(50)
    closes["ZZZ"] = closes["AAA"]
    assert top_n_by_momentum(closes, 20, 3) == ["AAA", "ZZZ", "BBB"]
    closes.iloc[-5, closes.columns.get_loc("BBB")] = np.nan
    assert "BBB" not in trailing_returns(closes, 20).index


def test_prophet_momentum_enters_above_and_exits_below_threshold():
    closes = trending_closes()
    history = make_history(closes)
    params = ProphetMomentumParams(
        top_n=3,
        momentum_lookback=20,
        prophet_window=60,
        rebalance_every=1,
        refit_every=1,
        threshold=0.02,
    )
    forecaster = RecordingForecaster({"AAA": 1.05, "BBB": 1.01, "CCC": 0.97})
    strategy = ProphetMomentum(params, forecaster=forecaster)
    session = closes.index[-1] + pd.offsets.BDay(1)
    # not held: only AAA clears +2%
    assert strategy.decide(history, {}, session) == {"AAA": 1.0}
    # held BBB stays (inside the band), held CCC exits (below -2%), DDD left the top-3
    assert strategy.decide(history, {"BBB": 0.5, "CCC": 0.3, "DDD": 0.2}, session) == {
        "AAA": 0.5,
        "BBB": 0.5,
    }
    assert {r.symbol for r in forecaster.requests} == {"AAA", "BBB", "CCC"}
    request = forecaster.requests[0]
    assert request.window.index[-1] == closes.index[-1]
    assert len(request.window) == 60
    assert request.target == closes.index[-1] + pd.offsets.BDay(5)


def test_decide_refuses_history_reaching_the_session():
    closes = trending_closes(30)
    with pytest.raises(LookaheadError, match="may only read bars before it"):
        BuyAndHold().decide(make_history(closes), {}, closes.index[-1])


def test_buy_and_hold_buys_once():
    closes = trending_closes(30)
    session = closes.index[-1] + pd.offsets.BDay(1)
    first = BuyAndHold().decide(make_history(closes), {}, session)
    assert first == {s: 0.2 for s in sorted(closes.columns)}
    assert BuyAndHold().decide(make_history(closes), first, session) is None


def test_params_are_typed_and_unknown_ones_named():
    cls = strategy_class("prophet_momentum")
    assert parse_params(cls, ["top_n=5", "threshold=0.02", "weekly_seasonality=true"]) == {
        "threshold": 0.02,
        "top_n": 5,
        "weekly_seasonality": True,
    }
    with pytest.raises(ValueError, match="has no parameter topn"):
        parse_params(cls, ["topn=5"])
    with pytest.raises(ValueError, match="takes a int, got 'five'"):
        parse_params(cls, ["top_n=five"])
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        strategy_class("nope")
    with pytest.raises(ValueError, match="threshold must be"):
        ProphetMomentum({"threshold": 2})


def test_sizing_rounds_down_and_keeps_the_buffer():
    assert target_quantity(0.5, 10_000, 33.0) == 150.0  # 4950 / 33
    assert target_quantity(0.5, 10_000, 33.0, fractional=True) == pytest.approx(150.0)
    assert target_quantity(0.5, 10_000, 33.0, cash_buffer=0.0) == 151.0
    assert target_quantity(0.0, 10_000, 33.0) == 0.0
