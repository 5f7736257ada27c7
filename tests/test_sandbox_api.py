"""The sandbox through the real alpaca-py TradingClient over HTTP: accounts, orders, fills.

Every response of every test here is validated against Alpaca's published OpenAPI spec
(`../shared/specs/alpaca-trading-openapi.yaml`, see live.sandbox.contract) when the
`contract` fixture tears down; without the spec the behaviour is still tested.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest, MarketOrderRequest

from live.sandbox import SandboxServer
from live.sandbox.broker import load_market_data

NY = ZoneInfo("America/New_York")
DAY = "2024-03-01"  # a Friday; the next session is Monday 2024-03-04
NEXT = "2024-03-04"


def bar(symbol: str, day: str) -> pd.Series:
    return load_market_data("demo").bars[symbol].loc[pd.Timestamp(day)]


def control(sandbox: SandboxServer, method: str, path: str, body: dict | None = None) -> dict:
    """Call a /sandbox endpoint (not part of alpaca-py)."""
    answer = httpx.request(
        method,
        sandbox.base_url + path,
        json=body,
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def buy(client, symbol: str, qty: float | None = None, **kw):
    return client.submit_order(
        MarketOrderRequest(
            symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, **kw
        )
    )


def sell(client, symbol: str, qty: float, **kw):
    return client.submit_order(
        MarketOrderRequest(
            symbol=symbol, qty=qty, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, **kw
        )
    )


def ny(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NY)


def test_fresh_account_clock_calendar(client):
    account = client.get_account()
    assert account.status.value == "ACTIVE"
    assert float(account.cash) == float(account.equity) == 100_000
    assert float(account.last_equity) == 100_000
    # a margin account, as Alpaca's paper accounts: Reg T buying power, shorting
    assert account.multiplier == "2" and account.shorting_enabled
    assert float(account.buying_power) == 200_000

    clock = client.get_clock()
    assert clock.timestamp == ny(f"{DAY}T15:00")
    assert clock.is_open
    assert clock.next_close == ny(f"{DAY}T16:00")
    assert clock.next_open == ny(f"{NEXT}T09:30")

    days = client.get_calendar(GetCalendarRequest(start="2024-11-27", end="2024-12-02"))
    assert [d.date.isoformat() for d in days] == ["2024-11-27", "2024-11-29", "2024-12-02"]
    assert days[1].close.time() == dt.time(13, 0)  # the day after Thanksgiving closes early
    assert days[0].open.time() == dt.time(9, 30) and days[0].close.time() == dt.time(16, 0)

    assert client.get_all_positions() == []
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


def test_market_order_during_the_session_is_accepted_then_new_then_filled_at_the_close(
    sandbox, client
):
    close_price = bar("SYN001", DAY)["close"]
    order = buy(client, "SYN001", 10, client_order_id="fill-1")
    assert order.status == OrderStatus.ACCEPTED and order.filled_at is None  # as on Alpaca
    assert order.client_order_id == "fill-1"
    assert client.get_order_by_client_id("fill-1").id == order.id
    assert [o.id for o in client.get_orders()] == [order.id]
    assert client.get_all_positions() == []

    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T15:01"})
    assert client.get_order_by_id(order.id).status == OrderStatus.NEW  # routed, not filled

    moved = control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T16:00"})
    assert [o["id"] for o in moved["settled"]] == [str(order.id)]
    order = client.get_order_by_id(order.id)
    assert order.status == OrderStatus.FILLED
    assert float(order.filled_qty) == 10
    assert float(order.filled_avg_price) == close_price  # the next price the data has
    assert order.filled_at == ny(f"{DAY}T16:00")  # the simulated time of the fill

    position = client.get_open_position("SYN001")
    assert float(position.qty) == 10
    assert float(position.avg_entry_price) == pytest.approx(close_price, abs=1e-6)
    assert float(position.current_price) == close_price  # valued at the close after it
    assert client.get_open_position(str(position.asset_id)).symbol == "SYN001"

    account = client.get_account()
    assert float(account.cash) == pytest.approx(100_000 - 10 * close_price, abs=1e-3)
    assert float(account.equity) == pytest.approx(100_000, abs=1e-3)
    assert float(account.long_market_value) == pytest.approx(10 * close_price, abs=1e-3)

    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.id for o in closed] == [order.id]
    assert client.get_orders() == []  # default status=open


def test_notional_buy_and_sells(sandbox, client):
    close_price = bar("SYN002", DAY)["close"]
    order = buy(client, "SYN002", notional=1000)
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T17:00"})
    order = client.get_order_by_id(order.id)
    expected = (Decimal(1000) / Decimal(repr(float(close_price)))).quantize(
        Decimal("1e-9"), rounding=ROUND_DOWN
    )
    assert order.status == OrderStatus.FILLED
    assert order.notional == "1000" and order.qty is None
    assert Decimal(order.filled_qty) == expected

    part = sell(client, "SYN002", 0.5)
    control(sandbox, "POST", "/sandbox/advance")
    assert client.get_order_by_id(part.id).status == OrderStatus.FILLED
    assert Decimal(client.get_open_position("SYN002").qty) == expected - Decimal("0.5")

    with pytest.raises(APIError) as too_many:
        sell(client, "SYN002", 100)
    assert too_many.value.status_code == 403
    assert too_many.value.code == 40310000
    assert "insufficient qty available" in too_many.value.message

    with pytest.raises(APIError) as fractional_short:
        sell(client, "SYN003", 0.5)  # not held: a short sale, whole shares only
    assert fractional_short.value.status_code == 403


def test_insufficient_buying_power(client):
    with pytest.raises(APIError) as refused:
        buy(client, "SYN001", 1_000_000)
    assert refused.value.status_code == 403
    assert refused.value.code == 40310000
    assert refused.value.message == "insufficient buying power"
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


def test_unknown_symbol_and_assets(client):
    with pytest.raises(APIError) as unknown:
        buy(client, "NOPE", 1)
    assert unknown.value.status_code == 422
    assert "NOPE" in unknown.value.message

    asset = client.get_asset("SYN001")
    assert asset.tradable and asset.fractionable and asset.status.value == "active"
    assert client.get_asset(str(asset.id)).symbol == "SYN001"
    with pytest.raises(APIError) as missing:
        client.get_asset("NOPE")
    assert missing.value.status_code == 404


def test_advance_moves_to_the_next_session_and_revalues(sandbox, client):
    buy(client, "SYN001", 10)
    cash = 100_000 - 10 * bar("SYN001", DAY)["close"]  # filled at DAY's close

    moved = control(sandbox, "POST", "/sandbox/advance")
    assert moved["clock"]["timestamp"] == f"{NEXT}T15:00:00-05:00"
    clock = client.get_clock()
    assert clock.timestamp == ny(f"{NEXT}T15:00") and clock.is_open

    today, yesterday = bar("SYN001", NEXT), bar("SYN001", DAY)
    position = client.get_open_position("SYN001")
    assert float(position.current_price) == today["open"]
    assert float(position.lastday_price) == yesterday["close"]
    account = client.get_account()
    assert float(account.cash) == pytest.approx(cash, abs=1e-3)
    assert float(account.equity) == pytest.approx(cash + 10 * today["open"], abs=1e-3)
    assert float(account.last_equity) == pytest.approx(cash + 10 * yesterday["close"], abs=1e-3)

    # after the close, positions are valued at the close
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{NEXT}T16:30"})
    assert float(client.get_open_position("SYN001").current_price) == today["close"]
    assert not client.get_clock().is_open

    two = control(sandbox, "POST", "/sandbox/advance", {"sessions": 2})
    assert two["clock"]["timestamp"].startswith("2024-03-06T15:00")


def test_closed_market_queues_until_the_next_open(sandbox, client):
    state = control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T17:00:00-05:00"})
    assert state["clock"]["is_open"] is False
    order = buy(client, "SYN001", 5, client_order_id="queued-1")
    assert order.status == OrderStatus.ACCEPTED and order.filled_avg_price is None
    assert [o.id for o in client.get_orders()] == [order.id]
    assert client.get_all_positions() == []
    account = client.get_account()
    reserved = 5 * bar("SYN001", DAY)["close"]  # estimated at the last known price
    assert float(account.buying_power) == pytest.approx(200_000 - reserved, abs=1e-3)

    moved = control(sandbox, "POST", "/sandbox/advance")
    assert [o["id"] for o in moved["settled"]] == [str(order.id)]
    filled = client.get_order_by_client_id("queued-1")
    assert filled.status == OrderStatus.FILLED
    assert filled.filled_at == ny(f"{NEXT}T09:30")
    assert float(filled.filled_avg_price) == bar("SYN001", NEXT)["open"]
    assert float(client.get_open_position("SYN001").qty) == 5


def test_duplicate_client_order_id_rejected_even_after_cancel(sandbox, client):
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T18:00"})
    first = buy(client, "SYN001", 1, client_order_id="dup-1")
    client.cancel_order_by_id(first.id)
    assert client.get_order_by_id(first.id).status == OrderStatus.CANCELED

    with pytest.raises(APIError) as again:
        buy(client, "SYN001", 1, client_order_id="dup-1")
    assert again.value.status_code == 422
    assert again.value.code == 40010001
    assert again.value.message == "client_order_id must be unique"
    assert len(client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))) == 1


def test_cancel_rules(sandbox, client):
    filled = buy(client, "SYN001", 1)
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T16:00"})
    with pytest.raises(APIError) as not_cancelable:
        client.cancel_order_by_id(filled.id)
    assert not_cancelable.value.status_code == 422
    assert "filled" in not_cancelable.value.message

    with pytest.raises(APIError) as unknown:
        client.get_order_by_id("00000000-0000-4000-8000-000000000000")
    assert unknown.value.status_code == 404

    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T20:00"})
    queued = [buy(client, s, 1) for s in ("SYN001", "SYN002")]
    answers = client.cancel_orders()
    assert sorted(str(a.id) for a in answers) == sorted(str(o.id) for o in queued)
    assert {a.status for a in answers} == {200}
    assert client.get_orders() == []


def test_order_listing_filters(client):
    ids = [buy(client, s, 1).id for s in ("SYN001", "SYN002", "SYN001")]
    every = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert [o.id for o in every] == ids[::-1]  # newest first
    oldest_first = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, direction=Sort.ASC, limit=2)
    )
    assert [o.id for o in oldest_first] == ids[:2]
    only = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["SYN002"]))
    assert [o.id for o in only] == [ids[1]]
    sells = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, side=OrderSide.SELL))
    assert sells == []


def test_restart_on_the_same_database_keeps_everything(tmp_path, contract):
    db = tmp_path / "sandbox.db"
    with SandboxServer(db, date=DAY, cash=50_000, on_exchange=contract) as first:
        client = first.trading_client()
        filled = buy(client, "SYN001", 3, client_order_id="keep-1")
        control(first, "POST", "/sandbox/clock", {"time": f"{DAY}T19:00"})
        queued = buy(client, "SYN002", 2, client_order_id="keep-2")
        before = client.get_account()

    with SandboxServer(db, on_exchange=contract) as second:
        client = second.trading_client()
        after = client.get_account()
        assert after.id == before.id and after.cash == before.cash
        assert client.get_clock().timestamp == ny(f"{DAY}T19:00")
        assert client.get_order_by_client_id("keep-1").id == filled.id
        assert client.get_order_by_client_id("keep-2").status == OrderStatus.ACCEPTED
        assert [p.symbol for p in client.get_all_positions()] == ["SYN001"]
        with pytest.raises(APIError):
            buy(client, "SYN001", 1, client_order_id="keep-1")

    # --date moves an existing sandbox forward (filling what waited), never back
    with SandboxServer(db, date=NEXT, on_exchange=contract) as third:
        client = third.trading_client()
        assert client.get_order_by_id(queued.id).status == OrderStatus.FILLED
    with pytest.raises(ValueError, match="only move it forward"):
        SandboxServer(db, date=DAY).start()
    with pytest.raises(ValueError, match="cash"):
        SandboxServer(db, cash=1).start()


def test_early_close_session_opens_before_the_close(tmp_path, contract):
    with SandboxServer(tmp_path / "s.db", date="2024-11-29", on_exchange=contract) as sandbox:
        clock = sandbox.trading_client().get_clock()
        assert clock.timestamp == ny("2024-11-29T12:00") and clock.is_open
        assert clock.next_close == ny("2024-11-29T13:00")


def test_bad_start_dates(tmp_path):
    with pytest.raises(ValueError, match="not an NYSE session"):
        SandboxServer(tmp_path / "a.db", date="2024-03-02").start()
    with pytest.raises(ValueError, match="outside the data"):
        SandboxServer(tmp_path / "b.db", date="2030-01-02").start()


def test_the_clock_only_moves_forward_and_stays_inside_the_data(sandbox):
    headers = {"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret}
    back = httpx.post(
        sandbox.base_url + "/sandbox/clock", json={"time": "2024-02-01T12:00"}, headers=headers
    )
    assert back.status_code == 409
    beyond = httpx.post(
        sandbox.base_url + "/sandbox/clock", json={"time": "2025-06-02T12:00"}, headers=headers
    )
    assert beyond.status_code == 409 and "no market data" in beyond.json()["message"]
    state = control(sandbox, "GET", "/sandbox/state")
    assert state["now"] == f"{DAY}T15:00:00-05:00" and state["source"] == "demo"


def test_a_queued_buy_that_no_longer_fits_at_the_open_is_rejected(tmp_path, contract):
    sandbox = SandboxServer(tmp_path / "c.db", date=DAY, account="cash", on_exchange=contract)
    with sandbox:
        client = sandbox.trading_client()
        _queued_buy_rejected_at_the_open(sandbox, client)


def _queued_buy_rejected_at_the_open(sandbox: SandboxServer, client) -> None:
    bars = load_market_data("demo").bars
    day, nxt = pd.Timestamp(DAY), pd.Timestamp(NEXT)
    symbol = next(
        s
        for s in sorted(bars)
        if (100_000 // bars[s].loc[day, "close"]) * bars[s].loc[nxt, "open"] > 100_000
    )
    qty = int(100_000 // bars[symbol].loc[day, "close"])
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T16:00"})  # the close
    queued = buy(client, symbol, qty)
    assert queued.status == OrderStatus.ACCEPTED  # fits at the last known price, the close
    control(sandbox, "POST", "/sandbox/advance")
    rejected = client.get_order_by_id(queued.id)
    assert rejected.status == OrderStatus.REJECTED
    assert rejected.failed_at == ny(f"{NEXT}T09:30") and rejected.filled_at is None
    assert float(client.get_account().cash) == 100_000
