"""Strategies as Backtrader classes: the building blocks, the built-ins, the registry."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from strategies.base import LookaheadError
from strategies.context import RunContext
from strategies.engine import minimum_bars, run_strategy_class
from strategies.forecast import ForecastRequest
from strategies.history import history_until
from strategies.prophet_momentum import ProphetMomentum
from strategies.registry import build_strategy, parse_params, strategy_class
from strategies.replay import replay_bar, replay_decision
from strategies.schedule import is_first_of_bucket, refit_end, weekday_bucket
from strategies.sizing import target_quantity
from strategies.universe import top_n_by_momentum, trailing_returns


def make_history(closes: pd.DataFrame) -> pd.DataFrame:
    parts = {f: closes for f in ("open", "high", "low", "close")}
    parts["volume"] = closes * 0 + 1000.0
    history = pd.concat(parts, axis=1, names=["field", "symbol"])
    history.index.name = "date"
    return history


class TableForecaster:
    """Forecasts from a table of ratios to the window's last price: each signal set exactly.
    (A stand-in for Prophet in tests about the rule, not about Prophet.)"""

    def __init__(self, ratios: dict[str, float]):
        self.ratios = ratios
        self.requests: list[ForecastRequest] = []

    def forecast_many(self, requests):
        self.requests.extend(requests)
        return [float(r.window.iloc[-1]) * self.ratios.get(r.symbol, 1.0) for r in requests]


def trending_closes(n: int = 300, start: str = "2021-01-04") -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=n)
    growth = {"AAA": 0.004, "BBB": 0.003, "CCC": 0.002, "DDD": 0.001, "EEE": -0.001}
    return pd.DataFrame({s: 100 * np.exp(g * np.arange(n)) for s, g in growth.items()}, index=dates)


SMALL = dict(top_n=3, momentum_lookback=20, prophet_window=60, rebalance_every=1, refit_every=1)


def test_weekday_buckets_ignore_holidays_and_history_length():
    monday = pd.Timestamp("2024-01-08")
    assert weekday_bucket(monday, 5) == weekday_bucket(monday + pd.Timedelta(days=4), 5)
    assert weekday_bucket(monday, 5) + 1 == weekday_bucket(monday + pd.Timedelta(days=7), 5)
    assert is_first_of_bucket(pd.Timestamp("2024-01-16"), pd.Timestamp("2024-01-12"), 5)
    assert not is_first_of_bucket(pd.Timestamp("2024-01-17"), pd.Timestamp("2024-01-16"), 5)
    with pytest.raises(ValueError, match="at least 1"):
        weekday_bucket(monday, 0)


def test_refit_end_is_last_bar_before_the_bucket():
    dates = pd.bdate_range("2024-01-01", "2024-01-31")
    session = pd.Timestamp("2024-01-18")
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


def decide(history, book, session, ratios, **params):
    forecaster = TableForecaster(ratios)
    targets = replay_decision(
        ProphetMomentum, {**SMALL, **params}, history, book, session, forecaster=forecaster
    )
    return targets, forecaster


def test_prophet_momentum_enters_above_and_exits_below_threshold():
    closes = trending_closes()
    history = make_history(closes)
    session = closes.index[-1] + pd.offsets.BDay(1)
    last = closes.iloc[-1]
    ratios = {"AAA": 1.05, "BBB": 1.01, "CCC": 0.97}
    # not held: only AAA clears +2%; everything goes to AAA (whole shares, 1% buffer)
    targets, forecaster = decide(history, {"$CASH": 100_000.0}, session, ratios, threshold=0.02)
    assert targets == {"AAA": target_quantity(1.0, 100_000.0, float(last["AAA"]))}
    # held BBB stays (inside the band), held CCC exits (below -2%), DDD left the top-3
    book = {"$CASH": 10_000.0, "BBB": 100.0, "CCC": 100.0, "DDD": 100.0}
    value = 10_000.0 + 100 * float(last["BBB"] + last["CCC"] + last["DDD"])
    targets, forecaster = decide(history, book, session, ratios, threshold=0.02)
    assert targets == {
        "AAA": target_quantity(0.5, value, float(last["AAA"])),
        "BBB": target_quantity(0.5, value, float(last["BBB"])),
        "CCC": 0.0,
        "DDD": 0.0,
    }
    assert {r.symbol for r in forecaster.requests} == {"AAA", "BBB", "CCC"}
    request = forecaster.requests[0]
    assert request.window.index[-1] == closes.index[-1]
    assert len(request.window) == 60
    assert request.target == closes.index[-1] + pd.offsets.BDay(5)


def test_prophet_forecasts_are_fitted_only_where_read():
    closes = trending_closes()
    forecaster = TableForecaster({})
    history = make_history(closes)
    trade_from = closes.index[-30]
    run_strategy_class(
        ProphetMomentum,
        {**SMALL, "rebalance_every": 5},
        history,
        context=RunContext(forecaster=forecaster),
        trade_from=trade_from,
    )
    # 3 candidates on each rebalance session of the last 30, nothing on other bars or names
    sessions = {r.target - pd.offsets.BDay(5) for r in forecaster.requests}
    assert {r.symbol for r in forecaster.requests} <= {"AAA", "BBB", "CCC"}
    assert len(forecaster.requests) == 3 * len(sessions)
    assert 5 <= len(sessions) <= 7


def test_point_in_time_universe_excludes_non_members():
    closes = trending_closes()
    history = make_history(closes)
    session = closes.index[-1] + pd.offsets.BDay(1)
    index = history.index.append(pd.DatetimeIndex([session]))
    members = pd.DataFrame(True, index=index, columns=list(closes.columns))
    members.loc[session, "AAA"] = False  # AAA leaves the index on the decided session
    forecaster = TableForecaster({s: 1.05 for s in closes.columns})
    targets = replay_decision(
        ProphetMomentum,
        {**SMALL, "threshold": 0.0},
        history,
        {"$CASH": 1e5, "AAA": 10.0},
        session,
        forecaster=forecaster,
        members=members,
    )
    assert targets["AAA"] == 0.0  # a holding that left the universe is sold
    assert {r.symbol for r in forecaster.requests} == {"BBB", "CCC", "DDD"}


def test_replay_refuses_history_reaching_the_session():
    closes = trending_closes(30)
    with pytest.raises(LookaheadError, match="may only read bars before it"):
        replay_bar(strategy_class("buy_and_hold"), {}, make_history(closes), {}, closes.index[-1])


def test_buy_and_hold_buys_once():
    closes = trending_closes(30)
    history = make_history(closes)
    session = closes.index[-1] + pd.offsets.BDay(1)
    first = replay_bar(strategy_class("buy_and_hold"), {}, history, {"$CASH": 1e5}, session)
    assert first.weights == {s: 0.2 for s in sorted(closes.columns)}
    held = {"$CASH": 0.0, **{s: 1.0 for s in closes.columns}}
    assert replay_decision(strategy_class("buy_and_hold"), {}, history, held, session) is None


def test_minimum_bars_is_backtraders_minimum_period():
    assert minimum_bars(ProphetMomentum, {}, ["A", "B"]) == max(126 + 1, 252 + 5 + 4)
    assert minimum_bars(ProphetMomentum, {"momentum_lookback": 400}, ["A"]) == 401
    assert minimum_bars(strategy_class("buy_and_hold"), {}, ["A"]) == 1
    assert build_strategy("prophet_momentum", ["prophet_window=100"]).warmup_bars() == 126 + 1


class CountingSma(bt.Strategy):
    """A plain Backtrader strategy: indicators in __init__, orders in next()."""

    params = (("period", 10),)

    def __init__(self):
        self.sma = bt.indicators.SMA(self.data.close, period=self.p.period)

    def next(self):
        if not self.position and self.data.close[0] > self.sma[0]:
            self.buy(size=7)
        elif self.position and self.data.close[0] < self.sma[0]:
            self.close()


def test_recorder_reports_target_positions_of_plain_backtrader_orders():
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2022-01-03", periods=120)
    closes = pd.DataFrame({"X": 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 120)))}, index=dates)
    run = run_strategy_class(CountingSma, {}, make_history(closes), context=RunContext())
    decided = [d for d in run.log.decisions if d.session is not None]
    assert decided, "the strategy never ordered"
    assert {tuple(d.targets.items()) for d in decided} <= {(("X", 7.0),), (("X", 0.0),)}
    # each decision is replayed exactly from the history cut at it and the book then
    history = make_history(closes)
    for record in decided[:6]:
        replay = replay_decision(
            CountingSma, {}, history_until(history, record.session), record.book, record.session
        )
        assert replay == record.targets


def test_params_map_onto_backtrader_params_and_refuse_bad_values():
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
    with pytest.raises(ValueError, match="finite number, got 'nan'"):
        parse_params(cls, ["changepoint_prior_scale=nan"])
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        strategy_class("nope")
    with pytest.raises(ValueError, match="not a Backtrader strategy"):
        strategy_class("strategies.base:LookaheadError")
    assert strategy_class("test_strategies:CountingSma") is CountingSma


def test_sizing_rounds_down_and_keeps_the_buffer():
    # 4950 / 34 = 145.588235...: whole shares round down, fractional keeps 6 decimals (down).
    assert target_quantity(0.5, 10_000, 34.0) == 145.0
    assert target_quantity(0.5, 10_000, 34.0, fractional=True) == 145.588235
    assert target_quantity(0.5, 10_000, 34.0, cash_buffer=0.0) == 147.0  # 5000 / 34
    assert target_quantity(0.0, 10_000, 33.0) == 0.0
