"""Order planning, ids, risk limits, the account gate and the paper/live guard (no broker)."""

from __future__ import annotations

import re

import pytest

from live.execution import client_order_id, plan_orders, shares_for_weights, value_at_close
from live.risk import account_gate_problems, pretrade_problems, risk_problems, trading_refusal
from live.schedule import Schedule
from live.settings import LiveSettings

ID = dict(strategy_id="pm-1", account="acct", slot="20240603")


def test_client_order_ids_are_deterministic_short_and_distinct():
    a = client_order_id(
        "prophet_momentum-0123456789", "0e1f-uuid-account", "20240603", "BRK.B", "buy"
    )
    assert a == client_order_id(
        "prophet_momentum-0123456789", "0e1f-uuid-account", "20240603", "BRK.B", "buy"
    )
    assert len(a) <= 48 and re.fullmatch(r"[A-Za-z0-9_-]+", a)
    others = {
        client_order_id(
            "prophet_momentum-0123456789", "0e1f-uuid-account", "20240603", "BRK.B", "sell"
        ),
        client_order_id(
            "prophet_momentum-0123456789", "0e1f-uuid-account", "20240604", "BRK.B", "buy"
        ),
        client_order_id("prophet_momentum-0123456789", "other-account", "20240603", "BRK.B", "buy"),
        client_order_id("other", "0e1f-uuid-account", "20240603", "BRK.B", "buy"),
        client_order_id(
            "prophet_momentum-0123456789", "0e1f-uuid-account", "20240603", "BRK-B", "buy"
        ),
    }
    assert a not in others and len(others) == 5


def plan_for(weights, positions, prices, value, **kwargs):
    """Weights -> target shares -> orders, the book worth `value` at `prices` (the one path)."""
    cash = value - sum(q * prices[s] for s, q in positions.items())
    fractional = kwargs.pop("fractional", False)
    wanted = shares_for_weights(weights, positions, cash, prices, fractional=fractional)
    return plan_orders(wanted, positions, prices, **ID, **kwargs)


def test_plan_sells_first_skips_dust_and_sizes_like_the_backtest():
    positions = {"AAA": 10, "CCC": 7, "DDD": 0.001}
    prices = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0, "DDD": 10.0}
    plan = plan_for({"AAA": 0.5, "BBB": 0.5}, positions, prices, 10_000.0)
    assert [(o.side, o.symbol, o.qty) for o in plan] == [
        ("sell", "CCC", 7.0),  # left the targets
        ("buy", "AAA", 39.0),  # floor(0.5 * 9900 / 100) - 10
        ("buy", "BBB", 99.0),
    ]  # DDD's 0.01 notional is a fractional order under the minimum: no order
    assert all(o.other_side_id and o.other_side_id != o.client_order_id for o in plan)
    assert all(o.time_in_force == "day" for o in plan)
    with pytest.raises(ValueError, match="EEE: no price"):
        shares_for_weights({"EEE": 1.0}, {}, 1000.0, {})


def test_whole_share_orders_are_never_dropped_and_only_wanted_symbols_trade():
    # one share of a $0.50 stock is under the $1 minimum notional, but the backtest trades it
    plan = plan_orders({"PENNY": 1}, {"HELD": 5}, {"PENNY": 0.5, "HELD": 9.0}, **ID)
    assert [(o.side, o.symbol, o.qty) for o in plan] == [("buy", "PENNY", 1.0)]  # HELD untouched
    opg = plan_orders({"PENNY": 3}, {}, {"PENNY": 0.5}, time_in_force="opg", **ID)
    assert opg[0].time_in_force == "opg"


def test_sizing_values_the_book_at_the_last_close_not_intraday_equity():
    # the same book and closes give the same shares whatever the broker's equity says
    wanted = shares_for_weights({"AAA": 1.0}, {"AAA": 10}, 9_000.0, {"AAA": 100.0})
    assert wanted == {"AAA": float(int(0.99 * 10_000 / 100))}
    assert value_at_close(9_000.0, {"AAA": 10}, {"AAA": 100.0}) == 10_000.0


def test_fractional_plan():
    plan = plan_for({"AAA": 1.0}, {}, {"AAA": 300.0}, 1000.0, fractional=True)
    assert plan[0].qty == pytest.approx(3.3, abs=1e-6)


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [
        (
            "max_position_weight",
            0.4,
            "AAA would be 0.5000 of the book, over TRADESHIP_MAX_POSITION_WEIGHT",
        ),
        ("max_gross_exposure", 0.9, "gross exposure 1.0000 exceeds TRADESHIP_MAX_GROSS_EXPOSURE"),
        ("max_order_notional", 1000.0, "exceeds TRADESHIP_MAX_ORDER_NOTIONAL"),
        ("max_run_notional", 5000.0, "over TRADESHIP_MAX_RUN_NOTIONAL"),
        ("max_orders", 1, "2 orders exceed TRADESHIP_MAX_ORDERS 1"),
    ],
)
def test_each_risk_limit_names_itself(limit, value, message):
    targets = {"AAA": 0.5, "BBB": 0.5}
    plan = plan_for(targets, {}, {"AAA": 100.0, "BBB": 50.0}, 10_000.0)
    assert risk_problems(targets, plan, LiveSettings(), None) == []
    problems = risk_problems(targets, plan, LiveSettings(**{limit: value}), None)
    assert any(message in p for p in problems), problems


def test_buying_power_is_checked():
    targets = {"AAA": 1.0}
    plan = plan_for(targets, {}, {"AAA": 100.0}, 10_000.0)
    assert (
        "exceed the account's buying power"
        in risk_problems(targets, plan, LiveSettings(), 500.0)[0]
    )


def test_account_gate_blocks_flags_status_and_unknowns():
    good = {
        "trading_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "status": "ACTIVE",
    }
    assert account_gate_problems(good) == []
    assert account_gate_problems({**good, "trading_blocked": True}) == [
        "the account has trading_blocked=true"
    ]
    assert account_gate_problems({**good, "status": "ACCOUNT_CLOSED"}) == [
        "the account status is ACCOUNT_CLOSED, not ACTIVE"
    ]
    assert account_gate_problems({**good, "account_blocked": None}) == [
        "the account's account_blocked is unknown"
    ]


def test_paper_and_live_urls_must_agree(monkeypatch):
    live = "https://api.alpaca.markets"
    assert "LIVE endpoint" in LiveSettings(base_url=live).broker_config_problem()
    assert (
        "TRADESHIP_ALLOW_LIVE=1" in LiveSettings(base_url=live, paper=False).broker_config_problem()
    )
    assert LiveSettings(base_url=live, paper=False, allow_live=True).broker_config_problem() is None
    assert (
        "paper endpoint"
        in LiveSettings(
            base_url="https://paper-api.alpaca.markets", paper=False, allow_live=True
        ).broker_config_problem()
    )
    monkeypatch.setenv("APCA_API_BASE_URL", live)
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s3cr3t-value")
    settings = LiveSettings()
    assert settings.base_url == live
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings)


def test_kill_switch_by_env_and_by_file(tmp_path, monkeypatch):
    assert LiveSettings().kill_switch_reason() is None
    monkeypatch.setenv("TRADESHIP_KILL_SWITCH", "1")
    assert "TRADESHIP_KILL_SWITCH" in LiveSettings().kill_switch_reason()
    monkeypatch.delenv("TRADESHIP_KILL_SWITCH")
    flag = tmp_path / "STOP"
    monkeypatch.setenv("TRADESHIP_KILL_FILE", str(flag))
    assert LiveSettings().kill_switch_reason() is None
    flag.write_text("")
    assert str(flag) in LiveSettings().kill_switch_reason()


def test_schedules_parse_and_fire_on_sessions_in_new_york_time():
    daily = Schedule.parse("daily at 15:00 New York")
    fires = daily.fire_times("2025-03-07", "2025-03-11")  # DST starts 2025-03-09
    assert [t.strftime("%Y-%m-%d %H:%M %Z") for t in fires] == [
        "2025-03-07 15:00 EST",
        "2025-03-10 15:00 EDT",
        "2025-03-11 15:00 EDT",
    ]
    assert daily.slot(fires[1]) == "20250310"
    intraday = Schedule.parse("every 15 min during regular NYSE hours")
    half_day = intraday.fire_times("2025-11-28", "2025-11-28")  # closes 13:00
    assert half_day[0].strftime("%H:%M") == "09:30" and half_day[-1].strftime("%H:%M") == "12:45"
    assert intraday.slot(half_day[1]) == "20251128-0945"
    assert daily.fire_times("2025-12-25", "2025-12-25") == []
    with pytest.raises(ValueError, match="unknown schedule"):
        Schedule.parse("hourly")


def test_the_pretrade_gate_judges_the_book_the_orders_leave_at_the_last_close():
    prices = {"AAA": 100.0, "BBB": 50.0}
    # value 10,000 at the last close: 50 AAA held, 20 more on their way (an open order)
    held, cash = {"AAA": 50.0}, 5_000.0
    effective = {"AAA": 70.0}
    plan = plan_orders({"AAA": 75.0}, effective, prices, **ID)
    assert [(o.side, o.qty) for o in plan] == [("buy", 5.0)]
    settings = LiveSettings(max_position_weight=0.7)
    problems = pretrade_problems(plan, held, cash, prices, settings, None, effective)
    assert problems == [
        "AAA would be 0.7500 of the book, over TRADESHIP_MAX_POSITION_WEIGHT 0.7"
    ]  # 75 shares after the open order and this one: 7,500 of 10,000
    assert pretrade_problems(plan, held, cash, prices, settings) == []  # 55 without it


def test_one_refusal_rule_for_both_live_paths():
    good = {
        "trading_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "status": "ACTIVE",
    }
    assert trading_refusal(LiveSettings(), good) is None
    assert "kill switch" in trading_refusal(LiveSettings(kill_switch=True), good)
    assert trading_refusal(LiveSettings(), {**good, "trading_blocked": True}) == (
        "the account has trading_blocked=true"
    )
