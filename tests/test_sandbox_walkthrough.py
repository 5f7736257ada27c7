"""The alpaca-py walk through the sandbox (live/sandbox/walkthrough.py), step by step.

The script is what a user moving to Alpaca runs; this test checks every step's outcome
against the data (exact opens and closes) and every response against Alpaca's spec.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from live.sandbox import walkthrough
from live.sandbox.contract import ContractRecorder

SPEC = Path(__file__).resolve().parents[1].parent / "shared/specs/alpaca-trading-openapi.yaml"
NY = ZoneInfo("America/New_York")


def ny(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NY)


@pytest.fixture(scope="module")
def walk() -> dict:
    recorder = ContractRecorder(SPEC)
    lines: list[str] = []
    seen = walkthrough.run(say=lines.append, on_exchange=recorder)
    recorder.assert_valid()
    seen["lines"] = lines
    return seen


def test_the_order_lifecycle_is_alpacas(walk):
    assert walk["lifecycle"] == ["accepted", "new", "filled"]
    order = walk["lifecycle_order"]
    assert float(order.filled_avg_price) == walk["lifecycle_close"]  # the session's close
    assert order.filled_at == ny(f"{walkthrough.DAY}T16:00")  # simulated time of the fill


def test_a_limit_order_that_fills_and_one_that_expires(walk):
    reached, below = walk["limit_prices"]
    filled, missed = walk["limits"]
    assert walk["after_open"]["fills_limit"].status.value == "new"  # the open was above it
    assert filled.status.value == "filled"
    assert float(filled.filled_avg_price) == reached  # at its limit, never better
    assert filled.filled_at == ny(f"{walkthrough.NEXT}T16:00")
    assert missed.status.value == "expired"  # a day order the low never reached
    assert missed.expired_at == ny(f"{walkthrough.NEXT}T16:00") and missed.filled_at is None
    assert below < reached


def test_opg_and_cls_fill_exactly_at_the_open_and_the_close(walk):
    opg = walk["after_open"]["opg"]
    assert opg.status.value == "filled"
    assert float(opg.filled_avg_price) == walk["next_open"]["SYN004"]
    assert opg.filled_at == ny(f"{walkthrough.NEXT}T09:30")
    cls = walk["cls"]
    assert cls.status.value == "filled"
    assert float(cls.filled_avg_price) == walk["next_close"]["SYN001"]


def test_a_late_opg_order_is_refused(walk):
    status, message = walk["late_opg"]
    assert status == 422
    assert message == "opg orders must be submitted after 7:00pm and before 9:28am"


def test_a_short_sale_on_margin(walk):
    assert walk["account"].multiplier == "2"
    assert float(walk["account"].buying_power) == 40_000  # 2 x $20,000
    short = walk["after_open"]["short"]
    assert short.status.value == "filled" and short.position_intent.value == "sell_to_open"
    assert float(short.filled_avg_price) == walk["next_open"]["SYN003"]
    position = walk["short_position"]
    assert float(position.qty) == -5 and position.side.value == "short"
    assert float(walk["account_after"].short_market_value) < 0


def test_the_day_trade_is_counted(walk):
    sell = walk["day_trade_sell"]
    assert sell.status.value == "filled"
    assert float(sell.filled_avg_price) == walk["next_close"]["SYN004"]
    assert walk["account_after"].daytrade_count == 1
    assert walk["account_after"].pattern_day_trader is False


def test_fills_are_account_activities(walk):
    fills = walk["activities"]
    assert {a["activity_type"] for a in fills} == {"FILL"}
    assert len(fills) == 6  # lifecycle buy, limit, short, opg buy, day-trade sell, cls sell
    times = [a["transaction_time"] for a in fills]
    assert times == sorted(times, reverse=True)  # newest first
    assert {a["side"] for a in fills} == {"buy", "sell", "sell_short"}


def test_the_script_prints_every_step(walk):
    text = "\n".join(walk["lines"])
    for step in ("1. order lifecycle", "short sale", "opg", "refused: 422", "daytrade_count 1"):
        assert step in text
