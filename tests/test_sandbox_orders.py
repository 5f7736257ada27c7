"""Order types, auction windows, accounts and the endpoints a user moving to Alpaca calls,
through alpaca-py over HTTP; and paper fills equal to the backtest's with opg/cls orders.

Every response is validated against Alpaca's spec (live.sandbox.contract) at teardown.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetPortfolioHistoryRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from live.sandbox import SandboxServer, fills
from live.sandbox.broker import load_market_data

NY = ZoneInfo("America/New_York")
DAY = "2024-03-01"  # Friday
NEXT = "2024-03-04"  # Monday
THIRD = "2024-03-05"


def ny(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NY)


def price(symbol: str, day: str, field: str) -> float:
    return float(load_market_data("demo").bars[symbol].loc[pd.Timestamp(day), field])


def clock(sandbox: SandboxServer, when: str) -> dict:
    answer = httpx.post(
        sandbox.base_url + "/sandbox/clock",
        json={"time": when},
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def market(client, symbol: str, qty: float, side=OrderSide.BUY, tif=TimeInForce.DAY, **kw):
    return client.submit_order(
        MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=tif, **kw)
    )


# -- the fill model on its own ------------------------------------------------------------
BAR = fills.Bar(open=Decimal(100), high=Decimal(110), low=Decimal(90), close=Decimal(105))


def _order(kind: str, side: str = "buy", tif: str = "day", **prices) -> dict:
    return {"type": kind, "side": side, "time_in_force": tif, **prices}


@pytest.mark.parametrize(
    ("order", "at_open", "at_close"),
    [
        (_order("market"), Decimal(100), None),
        (_order("market", tif="cls"), None, Decimal(105)),
        (_order("limit", limit_price="101"), Decimal(100), None),  # open through the limit
        (_order("limit", limit_price="95"), None, Decimal(95)),  # the low reached it
        (_order("limit", limit_price="89.99"), None, None),  # never reached
        (_order("limit", "sell", limit_price="108"), None, Decimal(108)),
        (_order("stop", stop_price="99"), Decimal(100), None),  # gapped through the stop
        (_order("stop", stop_price="108"), None, Decimal(108)),  # the high triggered it
        (_order("stop", "sell", stop_price="92"), None, Decimal(92)),
        (_order("limit", tif="cls", limit_price="104"), None, None),  # close above: expires
    ],
)
def test_fill_prices_for_an_order_sent_before_the_open(order, at_open, at_close):
    first = fills.at_open(order, BAR)
    assert first.price == at_open
    if at_open is None and first.status is None:
        second = fills.at_close(order, BAR, sent_during_session=False)
        assert second.price == at_close
        if at_close is None:
            assert second.status == ("expired" if order["time_in_force"] != "gtc" else None)


def test_market_orders_sent_during_the_session_fill_at_the_close():
    assert fills.at_close(_order("market"), BAR, sent_during_session=True).price == Decimal(105)
    gtc = fills.at_close(_order("limit", tif="gtc", limit_price="50"), BAR, True)
    assert gtc == fills.WAIT  # gtc orders persist
    assert fills.at_open(_order("limit", tif="opg", limit_price="50"), BAR).status == "expired"
    assert fills.at_close(_order("limit", tif="ioc", limit_price="50"), BAR, True).status == (
        "canceled"
    )


# -- order types over HTTP ----------------------------------------------------------------
def test_stop_order_and_gtc_limit_that_persists(sandbox, client):
    clock(sandbox, f"{DAY}T20:00")
    high = price("SYN002", NEXT, "high")
    stop_at = round(price("SYN002", NEXT, "open") + 0.01, 2)
    if stop_at > high:  # the demo data must have a high above its open to trigger it
        pytest.skip("SYN002 never traded above its open on " + NEXT)
    stop = client.submit_order(
        StopOrderRequest(
            symbol="SYN002",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            stop_price=stop_at,
        )  # fmt: skip
    )
    low_bid = round(price("SYN002", NEXT, "low") * 0.5, 2)
    gtc = client.submit_order(
        LimitOrderRequest(
            symbol="SYN002",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=low_bid,
        )  # fmt: skip
    )
    assert stop.status == OrderStatus.ACCEPTED and gtc.status == OrderStatus.ACCEPTED
    clock(sandbox, f"{NEXT}T17:00")
    triggered = client.get_order_by_id(stop.id)
    assert triggered.status == OrderStatus.FILLED
    assert float(triggered.filled_avg_price) == stop_at
    assert triggered.filled_at == ny(f"{NEXT}T16:00")
    assert client.get_order_by_id(gtc.id).status == OrderStatus.NEW  # gtc: still working
    clock(sandbox, f"{THIRD}T17:00")
    assert client.get_order_by_id(gtc.id).status == OrderStatus.NEW


def test_trailing_stop_follows_the_high_water_mark(sandbox, client):
    market(client, "SYN001", 10)
    clock(sandbox, f"{DAY}T20:00")  # bought at DAY's close, the watermark's start
    trailing = client.submit_order(
        TrailingStopOrderRequest(
            symbol="SYN001",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            trail_price=0.5,
        )  # fmt: skip
    )
    start = Decimal(repr(price("SYN001", DAY, "close")))
    assert Decimal(trailing.hwm) == start
    assert Decimal(trailing.stop_price) == start - Decimal("0.5")
    opening = Decimal(repr(price("SYN001", NEXT, "open")))
    low = Decimal(repr(price("SYN001", NEXT, "low")))
    clock(sandbox, f"{NEXT}T17:00")
    done = client.get_order_by_id(trailing.id)
    if opening <= start - Decimal("0.5"):  # gapped through the stop
        expected, at = opening, f"{NEXT}T09:30"
    else:
        stop = max(start, opening) - Decimal("0.5")  # the open moved the watermark
        if low > stop:
            pytest.skip("SYN001 did not fall 0.5 below its high-water mark on " + NEXT)
        expected, at = stop, f"{NEXT}T16:00"
    assert done.status == OrderStatus.FILLED
    assert Decimal(done.filled_avg_price) == expected and done.filled_at == ny(at)
    assert done.trail_price == "0.5"
    with pytest.raises(APIError) as bad:  # exactly one of trail_price / trail_percent
        client.submit_order(
            TrailingStopOrderRequest(
                symbol="SYN001",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.OPG,
                trail_percent=1,
            )  # fmt: skip
        )
    assert bad.value.status_code == 422


def _bracket_symbol(both: bool) -> tuple[str, float, float]:
    """A symbol whose NEXT session's range leaves room for a take-profit above the open
    (and, with `both`, a stop-loss below it inside the range): (symbol, tp, sl)."""
    for symbol in sorted(load_market_data("demo").bars):
        opening, high, low = (price(symbol, NEXT, f) for f in ("open", "high", "low"))
        take = math.floor(high * 100) / 100
        stop = math.ceil(low * 100) / 100 if both else round(low * 0.5, 2)
        if opening + 0.01 < take and stop < opening - 0.01 and low > 2:
            return symbol, take, stop
    raise AssertionError("no demo symbol with a wide enough range on " + NEXT)


@pytest.mark.parametrize("both", [False, True])
def test_bracket_order_legs_are_held_then_one_cancels_the_other(sandbox, client, both):
    symbol, take, stop = _bracket_symbol(both)
    clock(sandbox, f"{DAY}T20:00")
    entry = client.submit_order(
        MarketOrderRequest(
            symbol=symbol,
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=take),
            stop_loss=StopLossRequest(stop_price=stop),
        )  # fmt: skip
    )
    assert entry.order_class == OrderClass.BRACKET and entry.status == OrderStatus.ACCEPTED
    assert [(leg.type.value, leg.status.value) for leg in entry.legs] == [
        ("stop", "held"),
        ("limit", "held"),
    ]
    clock(sandbox, f"{NEXT}T10:00")  # the entry filled at the open: the legs work
    assert client.get_order_by_id(entry.id).status == OrderStatus.FILLED
    legs = {leg.type.value: leg for leg in client.get_orders() if leg.symbol == symbol}
    assert {k: v.status.value for k, v in legs.items()} == {"stop": "new", "limit": "new"}
    clock(sandbox, f"{NEXT}T16:30")
    stop_leg, take_leg = (client.get_order_by_id(legs[k].id) for k in ("stop", "limit"))
    if both:  # the day reached both exits: daily data cannot say which came first
        assert stop_leg.status == OrderStatus.FILLED and float(stop_leg.filled_avg_price) == stop
        assert take_leg.status == OrderStatus.CANCELED
    else:
        assert take_leg.status == OrderStatus.FILLED and float(take_leg.filled_avg_price) == take
        assert stop_leg.status == OrderStatus.CANCELED
    assert client.get_all_positions() == []
    nested = httpx.get(
        f"{sandbox.base_url}/v2/orders",
        params={"status": "all", "nested": "true"},
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
    ).json()
    assert [len(o["legs"]) for o in nested] == [2]  # legs only under their entry


def test_oco_exit_and_cancelling_a_bracket(sandbox, client):
    market(client, "SYN001", 10)
    clock(sandbox, f"{DAY}T20:00")
    close = price("SYN001", DAY, "close")
    oco = client.submit_order(
        LimitOrderRequest(
            symbol="SYN001",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            limit_price=round(close * 3, 2),
            take_profit=TakeProfitRequest(limit_price=round(close * 3, 2)),
            stop_loss=StopLossRequest(stop_price=round(close * 0.2, 2)),
        )  # fmt: skip
    )
    assert [leg.status.value for leg in oco.legs] == ["accepted"]  # an oco works at once
    client.cancel_order_by_id(oco.legs[0].id)  # one cancels the other
    assert client.get_order_by_id(oco.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as wrong:  # a take-profit below the stop-loss
        client.submit_order(
            MarketOrderRequest(
                symbol="SYN002",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=5),
                stop_loss=StopLossRequest(stop_price=6),
            )  # fmt: skip
        )
    assert wrong.value.status_code == 422
    bracket = client.submit_order(
        MarketOrderRequest(
            symbol="SYN002",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=500),
            stop_loss=StopLossRequest(stop_price=1),
        )  # fmt: skip
    )
    client.cancel_order_by_id(bracket.id)  # the entry and its held legs
    statuses = {client.get_order_by_id(leg.id).status for leg in bracket.legs}
    assert statuses == {OrderStatus.CANCELED}


def test_cls_orders_close_at_the_cut_off(sandbox, client):
    on_close = market(client, "SYN001", 1, tif=TimeInForce.CLS)  # 15:00: before 15:50
    clock(sandbox, f"{DAY}T15:51")
    with pytest.raises(APIError) as late:
        market(client, "SYN001", 1, tif=TimeInForce.CLS)
    assert late.value.status_code == 422 and "cls orders" in late.value.message
    clock(sandbox, f"{DAY}T16:00")
    filled = client.get_order_by_id(on_close.id)
    assert filled.status == OrderStatus.FILLED
    assert float(filled.filled_avg_price) == price("SYN001", DAY, "close")
    clock(sandbox, f"{DAY}T19:30")  # after 19:00: queued for the next session's close
    queued = market(client, "SYN001", 1, tif=TimeInForce.CLS)
    clock(sandbox, f"{NEXT}T12:00")
    assert client.get_order_by_id(queued.id).status == OrderStatus.NEW
    clock(sandbox, f"{NEXT}T16:30")
    assert float(client.get_order_by_id(queued.id).filled_avg_price) == price(
        "SYN001", NEXT, "close"
    )


def test_a_market_day_order_sent_after_the_close_fills_at_the_next_open(sandbox, client):
    clock(sandbox, f"{DAY}T16:30")
    order = market(client, "SYN003", 4)
    assert order.expires_at == ny(f"{NEXT}T16:00")
    clock(sandbox, f"{NEXT}T09:45")
    filled = client.get_order_by_id(order.id)
    assert filled.status == OrderStatus.FILLED and filled.filled_at == ny(f"{NEXT}T09:30")
    assert float(filled.filled_avg_price) == price("SYN003", NEXT, "open")


def test_replace_an_open_order(sandbox, client):
    clock(sandbox, f"{DAY}T20:00")
    first = client.submit_order(
        LimitOrderRequest(
            symbol="SYN001",
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=1.5,
            client_order_id="lim-1",
        )  # fmt: skip
    )
    second = client.replace_order_by_id(
        first.id, ReplaceOrderRequest(qty=5, limit_price=2.25, client_order_id="lim-2")
    )
    assert second.id != first.id and str(second.replaces) == str(first.id)
    assert second.qty == "5" and second.limit_price == "2.25" and second.status.value == "accepted"
    old = client.get_order_by_id(first.id)
    assert old.status == OrderStatus.REPLACED and str(old.replaced_by) == str(second.id)
    with pytest.raises(APIError) as again:
        client.replace_order_by_id(first.id, ReplaceOrderRequest(qty=1))
    assert again.value.status_code == 422 and "replaced" in again.value.message


def test_close_positions(sandbox, client):
    for symbol in ("SYN001", "SYN002"):
        market(client, symbol, 10)
    clock(sandbox, f"{DAY}T16:05")  # filled at the close
    part = client.close_position("SYN001", ClosePositionRequest(percentage="50"))
    assert part.side == OrderSide.SELL and part.qty == "5"
    closing = client.close_all_positions(cancel_orders=True)  # cancels `part` first
    assert sorted(c.symbol for c in closing) == ["SYN001", "SYN002"]
    assert {c.status for c in closing} == {200}
    assert client.get_order_by_id(part.id).status == OrderStatus.CANCELED
    clock(sandbox, f"{NEXT}T10:00")
    assert client.get_all_positions() == []
    with pytest.raises(APIError) as missing:
        client.close_position("SYN001")
    assert missing.value.status_code == 404


def test_assets_list(client):
    assets = client.get_all_assets(GetAssetsRequest(status="active"))
    symbols = [a.symbol for a in assets]
    assert symbols == sorted(load_market_data("demo").bars)[: len(symbols)]
    assert len(symbols) == len(load_market_data("demo").bars)
    assert all(a.tradable and a.shortable for a in assets)  # a margin account


def test_portfolio_history_is_equity_at_each_close(sandbox, client):
    market(client, "SYN001", 10)
    clock(sandbox, f"{THIRD}T17:00")
    history = client.get_portfolio_history(GetPortfolioHistoryRequest(period="1W", timeframe="1D"))
    assert history.timeframe == "1D" and history.base_value == 100_000
    cost = 10 * price("SYN001", DAY, "close")
    expected = [100_000 - cost + 10 * price("SYN001", d, "close") for d in (DAY, NEXT, THIRD)]
    assert history.equity == pytest.approx(expected, abs=1e-3)
    assert history.profit_loss == pytest.approx([e - 100_000 for e in expected], abs=1e-3)
    with pytest.raises(APIError) as minutes:
        client.get_portfolio_history(GetPortfolioHistoryRequest(period="1D", timeframe="5Min"))
    assert minutes.value.status_code == 422 and "daily" in minutes.value.message


def test_per_symbol_bars(sandbox):
    answer = httpx.get(
        f"{sandbox.base_url}/v2/stocks/SYN001/bars",
        params={"timeframe": "1Day", "start": "2024-02-26"},
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["symbol"] == "SYN001" and body["next_page_token"] is None
    days = [b["t"][:10] for b in body["bars"]]
    assert days == ["2024-02-26", "2024-02-27", "2024-02-28", "2024-02-29"]  # not DAY: open
    assert body["bars"][-1]["o"] == price("SYN001", "2024-02-29", "open")


# -- accounts -------------------------------------------------------------------------------
def test_a_cash_account_has_no_margin_and_no_shorts(tmp_path, contract):
    with SandboxServer(tmp_path / "c.db", date=DAY, account="cash", on_exchange=contract) as box:
        client = box.trading_client()
        account = client.get_account()
        assert account.multiplier == "1" and not account.shorting_enabled
        assert float(account.buying_power) == 100_000
        with pytest.raises(APIError) as short:
            market(client, "SYN001", 1, side=OrderSide.SELL)
        assert short.value.status_code == 403 and "insufficient qty" in short.value.message
    with pytest.raises(ValueError, match="cash account"):
        SandboxServer(tmp_path / "c.db", account="margin").start()


def test_pattern_day_trader_protection_under_25k(tmp_path, contract):
    with SandboxServer(tmp_path / "p.db", date=DAY, cash=20_000, on_exchange=contract) as box:
        client = box.trading_client()
        clock(box, f"{DAY}T20:00")
        for symbol in ("SYN001", "SYN002", "SYN003", "SYN004"):
            market(client, symbol, 2, tif=TimeInForce.OPG)
        clock(box, f"{NEXT}T10:00")  # all four bought at the open
        for symbol in ("SYN001", "SYN002", "SYN003"):
            market(client, symbol, 2, side=OrderSide.SELL)
        clock(box, f"{NEXT}T16:00")
        account = client.get_account()
        assert account.daytrade_count == 3 and not account.pattern_day_trader
        clock(box, f"{NEXT}T16:01")
        # SYN004 was bought today too: selling it would be the 4th day trade in 5 sessions
        with pytest.raises(APIError) as denied:
            market(client, "SYN004", 2, side=OrderSide.SELL)
        assert denied.value.status_code == 403 and denied.value.code == 40310100
        assert denied.value.message == "trade denied due to pattern day trading protection"
        clock(box, f"{THIRD}T10:00")  # another day: not a day trade
        market(client, "SYN004", 2, side=OrderSide.SELL)


def test_a_schema_1_database_is_migrated(tmp_path):
    db = tmp_path / "old.db"
    with SandboxServer(db, date=DAY, account="cash") as box:
        market(box.trading_client(), "SYN001", 1)
    with sqlite3.connect(db) as conn:  # make it look like a file from before schema 2
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.execute("DELETE FROM meta WHERE key = 'account_type'")
        for column in ("limit_price", "stop_price", "replaced_at", "replaced_by", "replaces",
                       "position_intent", "trail_price", "trail_percent", "hwm"):  # fmt: skip
            conn.execute(f"ALTER TABLE orders DROP COLUMN {column}")
    with SandboxServer(db) as box:
        client = box.trading_client()
        assert len(client.get_orders()) == 1 and client.get_account().multiplier == "1"


# -- paper equals backtest ------------------------------------------------------------------
@pytest.mark.parametrize("fill", ["open", "close"])
def test_opg_and_cls_fills_equal_the_backtests(tmp_path, contract, fill):
    from backtests.runner import BacktestConfig, run_backtest

    symbols = ["SYN001", "SYN002", "SYN003"]
    result = run_backtest(
        BacktestConfig(
            strategy="buy_and_hold",
            source="demo",
            symbols=symbols,
            start=DAY,
            end=THIRD,
            fill=fill,
        )  # fmt: skip
    )
    wanted = result.orders
    assert len(wanted) == 3 and set(wanted["date"]) == {DAY}
    with SandboxServer(tmp_path / "parity.db", date="2024-02-29", on_exchange=contract) as box:
        client = box.trading_client()
        if fill == "open":
            clock(box, "2024-02-29T20:00")  # opg: sent the evening before
        else:
            clock(box, f"{DAY}T10:00")  # cls: sent during the session, before 15:50
        tif = TimeInForce.OPG if fill == "open" else TimeInForce.CLS
        sent = [
            market(client, row.symbol, row.quantity, OrderSide(row.side), tif)
            for row in wanted.itertuples()
        ]
        clock(box, f"{DAY}T16:30")
        got = [client.get_order_by_id(o.id) for o in sent]
    bars = load_market_data("demo").bars
    assert [(o.symbol, float(o.filled_qty), float(o.filled_avg_price)) for o in got] == [
        (row.symbol, row.quantity, float(bars[row.symbol].loc[pd.Timestamp(DAY), fill]))
        for row in wanted.itertuples()
    ]  # exactly the data's open / close, the prices the backtest fills at
    for order, row in zip(got, wanted.itertuples(), strict=True):
        # the backtest's orders.csv records Backtrader's executed.price, an average it
        # computes as price * size / size: at most one float rounding (1 ulp) away
        assert math.isclose(float(order.filled_avg_price), row.price, rel_tol=4e-16)
