"""Trade statistics rebuilt from fills equal Backtrader's own analyzers on the same run.

A small Backtrader run (three seeded symbols, a strategy that opens, adds to, trims and
closes positions on a fixed schedule, with commission) records its fills in orders.csv's
shape; `backtests.trades` must then agree with TradeAnalyzer and SQN, and the per-symbol
contributions must add up to the change in portfolio value.
"""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from backtests.trades import costs, exposure, positions, trade_report, turnover

SYMBOLS = ("AAA", "BBB", "CCC")
# (bar, symbol, shares): + buys, - sells. Each symbol opens, adds or trims, and goes flat;
# CCC is still open at the end.
SCHEDULE = [
    (5, "AAA", 50), (9, "BBB", 30), (15, "AAA", 25), (22, "AAA", -75), (30, "CCC", 40),
    (33, "BBB", -30), (41, "BBB", 60), (47, "AAA", 20), (52, "BBB", -20), (60, "BBB", -40),
    (66, "AAA", -20), (70, "CCC", -10), (74, "AAA", 10), (79, "AAA", -10),
]  # fmt: skip


def _history() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    idx = pd.bdate_range("2023-01-02", periods=90, name="date")
    fields = {}
    for i, symbol in enumerate(SYMBOLS):
        close = 50.0 * (i + 1) * np.cumprod(1 + rng.normal(0.0005, 0.02, len(idx)))
        open_ = close * (1 + rng.normal(0, 0.004, len(idx)))
        fields[("open", symbol)] = open_
        fields[("high", symbol)] = np.maximum(open_, close) * 1.01
        fields[("low", symbol)] = np.minimum(open_, close) * 0.99
        fields[("close", symbol)] = close
        fields[("volume", symbol)] = np.full(len(idx), 1e6)
    frame = pd.DataFrame(fields, index=idx)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["field", "symbol"])
    return frame


class _Scheduled(bt.Strategy):
    params = (("fills", None),)

    def next(self) -> None:
        bar = len(self) - 1
        for when, symbol, shares in SCHEDULE:
            if when == bar:
                feed = self.getdatabyname(symbol)
                (self.buy if shares > 0 else self.sell)(data=feed, size=abs(shares))

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.p.fills.append(
                {
                    "date": bt.num2date(order.executed.dt).date().isoformat(),
                    "symbol": order.data._name,
                    "side": "buy" if order.isbuy() else "sell",
                    "quantity": abs(float(order.executed.size)),
                    "price": float(order.executed.price),
                    "commission": float(order.executed.comm),
                }
            )


@pytest.fixture(scope="module")
def run() -> dict:
    history = _history()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.setcommission(commission=0.001)
    for symbol in SYMBOLS:
        frame = history.xs(symbol, axis=1, level="symbol")
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=symbol)
    fills: list[dict] = []
    cerebro.addstrategy(_Scheduled, fills=fills)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.addanalyzer(bt.analyzers.SQN, _name="sqn")
    cerebro.addanalyzer(bt.analyzers.TimeReturn, _name="value", timeframe=bt.TimeFrame.Days)
    strategy = cerebro.run()[0]
    orders = pd.DataFrame(fills)
    orders["date"] = pd.to_datetime(orders["date"])
    values = pd.Series(strategy.analyzers.value.get_analysis())
    equity = 100_000.0 * (1 + values).cumprod()
    equity.index = pd.DatetimeIndex(equity.index).normalize()
    return {
        "history": history,
        "orders": orders,
        "equity": equity,
        "final": float(cerebro.broker.getvalue()),
        "trades": strategy.analyzers.trades.get_analysis(),
        "sqn": strategy.analyzers.sqn.get_analysis(),
    }


def test_round_trips_match_backtraders_trade_analyzer(run: dict) -> None:
    report = trade_report(run["orders"], run["equity"], run["history"])
    ta = run["trades"]
    s = report.stats
    assert s["closed_trades"] == ta.total.closed == 5
    assert s["open_trades"] == ta.total.open == 1
    assert s["win_rate"] == pytest.approx(ta.won.total / ta.total.closed, abs=1e-12)
    closed = report.trips[~report.trips["open"]]
    assert closed["pnl"].sum() == pytest.approx(ta.pnl.net.total, abs=1e-6)
    if ta.won.total:
        assert s["avg_win"] == pytest.approx(ta.won.pnl.average, abs=1e-6)
    if ta.lost.total:
        assert s["avg_loss"] == pytest.approx(ta.lost.pnl.average, abs=1e-6)
    # Holding time: Backtrader's bar length of a trade is our sessions from entry to exit.
    assert s["avg_holding_sessions"] == pytest.approx(ta.len.average, abs=1e-12)


def test_sqn_matches_backtraders_analyzer(run: dict) -> None:
    report = trade_report(run["orders"], run["equity"], run["history"])
    assert run["sqn"].trades == 5
    assert report.stats["sqn"] == pytest.approx(run["sqn"].sqn, abs=1e-9)


def test_contributions_add_up_to_the_change_in_value(run: dict) -> None:
    report = trade_report(run["orders"], run["equity"], run["history"])
    total = report.contribution["pnl"].sum()
    assert total == pytest.approx(run["final"] - 100_000.0, abs=1e-6)
    assert set(report.contribution["symbol"]) == set(SYMBOLS)
    assert report.contribution["pnl"].is_monotonic_decreasing


def test_positions_exposure_turnover_and_costs(run: dict) -> None:
    orders, equity, history = run["orders"], run["equity"], run["history"]
    held = positions(orders, pd.DatetimeIndex(equity.index))
    assert held.iloc[-1].to_dict() == {"AAA": 0.0, "BBB": 0.0, "CCC": 30.0}
    assert (held >= 0).all().all()
    expo = exposure(orders, history["close"], equity)
    last = 30.0 * history["close"]["CCC"].iloc[-1] / equity.iloc[-1]
    assert expo.iloc[-1] == pytest.approx(last, rel=1e-9)
    assert expo.iloc[0] == 0.0
    traded = float((orders["quantity"] * orders["price"]).sum())
    years = (equity.index[-1] - equity.index[0]).days / 365.25
    assert turnover(orders, equity) == pytest.approx(traded / 2 / equity.mean() / years)
    paid = costs(orders, history, "open")
    assert paid["commission"] == pytest.approx(0.001 * traded)
    assert paid["slippage"] == pytest.approx(0.0, abs=1e-6)  # market orders fill at the open


def test_slippage_is_what_fills_paid_beyond_the_open() -> None:
    history = _history()
    day = history.index[3]
    ref = history["open"]["AAA"].iloc[3]
    orders = pd.DataFrame(
        {"date": [day, day], "symbol": ["AAA", "AAA"], "side": ["buy", "sell"],
         "quantity": [10.0, 4.0], "price": [ref * 1.01, ref * 0.99], "commission": [0.0, 0.0]}
    )  # fmt: skip
    paid = costs(orders, history, "open")
    assert paid["slippage"] == pytest.approx(10 * ref * 0.01 + 4 * ref * 0.01)
    assert paid["total"] == pytest.approx(paid["slippage"])
