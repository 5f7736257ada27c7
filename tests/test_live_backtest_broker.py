"""The backtest's broker rules (backtests/broker.py): margin at the fill, full slippage.

Real Backtrader brokers on small hand-made bars (and AAPL's real March 2000 gap when the
shared data is present); no mocks.
"""

from __future__ import annotations

import backtrader as bt
import pandas as pd
import pytest
from shared_data import RAW_SAMPLES, needs_raw_samples

from backtests.broker import configure_broker, require_non_negative
from strategies.sizing import target_quantity


class Config:
    def __init__(self, commission: float = 0.0, slippage: float = 0.0) -> None:
        self.commission, self.slippage = commission, slippage


class BuyAllOnce(bt.Strategy):
    """At the first bar, buy 99% of the value at the close, as strategies.sizing sizes it."""

    params = (("exectype", bt.Order.Market), ("side", "buy"), ("out", None))

    def next(self) -> None:
        if len(self) != 1:
            return
        size = target_quantity(1.0, self.broker.getvalue(), self.data.close[0])
        if self.p.side == "buy":
            self.buy(size=size, exectype=self.p.exectype)
        else:
            self.sell(size=size, exectype=self.p.exectype)

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Completed, order.Margin, order.Rejected):
            self.p.out.append(
                (
                    order.getstatusname(),
                    bt.num2date(order.executed.dt).date().isoformat() if order.executed.dt else "",
                    order.executed.size,
                    order.executed.price,
                )
            )


def bars(rows: list[tuple[str, float, float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close"])
    frame["volume"] = 1e6
    return frame.set_index(pd.DatetimeIndex(frame.pop("date")))


def run(frame, *, rules: bool, cash=100_000.0, **kwargs) -> tuple[list, float]:
    out: list = []
    config = kwargs.pop("config", Config())
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(cash)
    if rules:
        configure_broker(cerebro, config)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame), name="X")
    cerebro.addstrategy(BuyAllOnce, out=out, **kwargs)
    cerebro.run(runonce=False)
    return out, cerebro.broker.getcash()


GAP = bars(
    [
        ("2024-06-03", 100, 101, 99, 100.0),
        ("2024-06-04", 103.4, 104, 103, 103.5),  # opens +3.4% over the sizing close
        ("2024-06-05", 103.5, 104, 103, 103.8),
    ]
)


def test_a_cash_account_loses_the_buy_to_an_ordinary_gap():
    out, _ = run(GAP, rules=False)
    assert [(status, size) for status, _, size, _ in out] == [("Margin", 0)]


def test_the_margin_rule_fills_the_gapped_buy_on_its_session_at_the_open():
    out, cash = run(GAP, rules=True)
    assert out == [("Completed", "2024-06-04", 990.0, 103.4)]
    assert cash == pytest.approx(100_000 - 990 * 103.4)  # borrowed ~2.4k, within 2x value
    assert cash < 0


def test_margin_is_bounded_by_the_multiplier():
    # a 150% gap would need borrowing beyond Reg T's 2x: refused, not financed
    crash = bars([("2024-06-03", 10, 10, 10, 10.0), ("2024-06-04", 25, 25, 25, 25.0)])
    out, cash = run(crash, rules=True, cash=1_000.0)
    assert out[0][0] == "Margin" and cash == 1_000.0


def test_slippage_is_the_full_nominal_fraction_at_the_open_even_past_the_range():
    top = bars([("2024-06-03", 100, 100, 99, 100.0), ("2024-06-04", 50, 50, 49, 49.5)])
    out, _ = run(top, rules=True, config=Config(slippage=0.001), cash=10_000.0)
    assert out[0][0] == "Completed" and out[0][3] == pytest.approx(50 * 1.001)  # above the high
    out, _ = run(top, rules=False, cash=10_000.0, side="sell")
    sold, _ = run(top, rules=True, config=Config(slippage=0.001), cash=10_000.0, side="sell")
    assert sold[0][3] == pytest.approx(50 * 0.999) and out[0][3] == 50


def test_slippage_applies_to_market_on_close_fills():
    out, _ = run(
        GAP, rules=True, config=Config(slippage=0.0005), exectype=bt.Order.Close, cash=10_000.0
    )
    assert out[0][:2] == ("Completed", "2024-06-04")
    assert out[0][3] == pytest.approx(103.5 * 1.0005)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("--commission", -0.05, "--commission must be 0 or more, got -0.05"),
        ("--slippage", -0.5, "--slippage must be 0 or more"),
        ("--slippage", float("nan"), "--slippage must be 0 or more"),
        ("--commission", "abc", "--commission must be a number"),
    ],
)
def test_negative_or_non_numeric_money_inputs_are_refused(name, value, message):
    with pytest.raises(ValueError, match=message):
        require_non_negative(name, value)
    with pytest.raises(ValueError, match="must be greater than 0"):
        require_non_negative("--cash", -5, positive=True)


@needs_raw_samples
def test_buy_and_hold_aapl_is_invested_on_its_first_session_2000_03_01():
    """The issue's case: sized on the 2000-02-29 close, the 03-01 open gapped up 3.4%."""
    from marketdata import load

    data = load(f"csv:{RAW_SAMPLES}", ["AAPL"], "2000-02-28", "2000-03-03")
    frame = data.bars["AAPL"].loc["2000-02-29":, ["open", "high", "low", "close", "volume"]]
    gap = frame["open"].iloc[1] / frame["close"].iloc[0] - 1
    assert gap > 0.01  # the buffer does not cover it
    refused, _ = run(frame, rules=False)
    assert refused[0][0] == "Margin"
    filled, _ = run(frame, rules=True)
    assert filled[0][:2] == ("Completed", "2000-03-01")
    assert filled[0][3] == pytest.approx(frame["open"].iloc[1])
