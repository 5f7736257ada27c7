"""The sandbox's Market Data endpoint (GET /v2/stocks/bars) that live Backtrader feeds read,
and the live driver's history frame.

Real parts: the sandbox over HTTP, alpaca-py's StockHistoricalDataClient, every answer
checked against Alpaca's Market Data OpenAPI spec (skipped when ../shared/specs is absent).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from live.sandbox import SandboxServer
from live.sandbox.contract import ContractRecorder
from marketdata import load
from strategies.history import bars_frame, to_history

SPECS = Path(__file__).resolve().parents[1].parent / "shared/specs"
TRADING_SPEC = SPECS / "alpaca-trading-openapi.yaml"
MARKET_DATA_SPEC = SPECS / "alpaca-market-data-openapi.yaml"
SYMBOLS = ["SYN000", "SYN001", "SYN002"]
NEW_YORK = "America/New_York"
DAY = "2024-06-05"  # a Wednesday; the sandbox opens at 15:00 New York


@pytest.fixture
def contract():
    recorder = ContractRecorder(TRADING_SPEC)
    yield recorder
    recorder.assert_valid()


@pytest.fixture
def sandbox(tmp_path, contract):
    with SandboxServer(tmp_path / "sandbox.db", date=DAY, on_exchange=contract) as server:
        yield server


def get(sandbox, query: str) -> httpx.Response:
    return httpx.get(
        f"{sandbox.base_url}/v2/stocks/bars?{query}",
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
        timeout=10,
    )


def control(sandbox, path: str, body: dict) -> None:
    answer = httpx.post(
        sandbox.base_url + path,
        json=body,
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def data_client(sandbox):
    from alpaca.data.historical.stock import StockHistoricalDataClient

    return StockHistoricalDataClient(sandbox.key, sandbox.secret, url_override=sandbox.base_url)


def bars_request(**kwargs):
    from alpaca.data.enums import Adjustment
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

    return StockBarsRequest(
        symbol_or_symbols=SYMBOLS, timeframe=TimeFrame.Day, adjustment=Adjustment.ALL, **kwargs
    )


def test_only_completed_sessions_are_served_never_the_one_in_progress(sandbox):
    client = data_client(sandbox)
    request = bars_request(start=dt.datetime(2024, 5, 28), end=dt.datetime(2024, 6, 30))
    at_three = client.get_stock_bars(request).data
    assert {s: v[-1].timestamp.date() for s, v in at_three.items()} == dict.fromkeys(
        SYMBOLS, dt.date(2024, 6, 4)
    )  # 15:00 on June 5: June 5's bar is not complete, June 4's is the latest
    control(sandbox, "/sandbox/clock", {"time": f"{DAY}T16:00:00-04:00"})  # the close
    after_close = client.get_stock_bars(request).data
    assert after_close["SYN000"][-1].timestamp == pd.Timestamp("2024-06-05 04:00", tz="UTC")
    assert len(after_close["SYN000"]) == len(at_three["SYN000"]) + 1


@pytest.mark.skipif(
    not MARKET_DATA_SPEC.is_file(),
    reason=f"Alpaca's Market Data OpenAPI spec not found at {MARKET_DATA_SPEC}",
)
def test_bars_answers_match_alpacas_market_data_spec(sandbox, contract):
    data_client(sandbox).get_stock_bars(bars_request(start=dt.datetime(2024, 5, 1)))
    assert contract.market_data_checker is not None
    bars = [e for e in contract.exchanges if e.path == "/v2/stocks/bars"]
    assert bars and contract.problems(bars) == []


def test_bars_are_the_adjusted_bars_a_backtest_reads(sandbox):
    served = data_client(sandbox).get_stock_bars(bars_request(start=dt.datetime(2023, 1, 3))).data
    loaded = load("demo", SYMBOLS, "2023-01-03", "2024-06-04")
    for symbol in SYMBOLS:
        frame = loaded.bars[symbol]
        got = pd.DataFrame(
            [(b.open, b.high, b.low, b.close, b.volume) for b in served[symbol]],
            columns=["open", "high", "low", "close", "volume"],
            index=pd.DatetimeIndex(
                [pd.Timestamp(b.timestamp).tz_convert(NEW_YORK).date() for b in served[symbol]]
            ).as_unit("ns"),
        )
        # bit for bit: JSON floats round-trip exactly, and no lookahead past June 4
        assert got.index.equals(frame.index)
        np.testing.assert_array_equal(got.to_numpy(), frame[list(got.columns)].to_numpy())


def test_pages_cover_every_bar_once_in_symbol_then_time_order(sandbox):
    query = "symbols=SYN001,SYN000&timeframe=1Day&start=2024-05-01&end=2024-06-30"
    whole = get(sandbox, query + "&limit=10000").json()
    assert whole["next_page_token"] is None
    pages, token = [], None
    while True:
        answer = get(sandbox, query + "&limit=7" + (f"&page_token={token}" if token else ""))
        assert answer.status_code == 200
        body = answer.json()
        pages.append(body)
        assert sum(len(v) for v in body["bars"].values()) <= 7
        token = body["next_page_token"]
        if token is None:
            break
    merged: dict[str, list] = {}
    for body in pages:
        for symbol, rows in body["bars"].items():
            merged.setdefault(symbol, []).extend(rows)
    assert merged == whole["bars"] and list(merged) == ["SYN000", "SYN001"]
    desc = get(sandbox, query + "&sort=desc").json()["bars"]["SYN000"]
    assert desc == list(reversed(whole["bars"]["SYN000"]))


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("timeframe=1Day", 422, "symbols is required"),
        ("symbols=SYN000", 422, "timeframe is required"),
        ("symbols=SYN000&timeframe=1Min", 422, "daily bars only"),
        ("symbols=SYN000&timeframe=1Day&adjustment=raw", 422, "adjustment=all"),
        ("symbols=SYN000&timeframe=1Day&limit=0", 422, "limit"),
        ("symbols=SYN000&timeframe=1Day&page_token=@@", 422, "page_token"),
        ("symbols=SYN000&timeframe=1Day&start=yesterday", 422, "RFC 3339"),
    ],
)
def test_bad_requests_get_alpacas_error_shape(sandbox, query, status, message):
    answer = get(sandbox, query)
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"code", "message"} and message in body["message"]


def test_unknown_symbols_and_empty_ranges_answer_empty(sandbox):
    assert get(sandbox, "symbols=NOPE&timeframe=1Day&start=2024-01-02").json() == {
        "bars": {},
        "next_page_token": None,
    }
    future = get(sandbox, "symbols=SYN000&timeframe=1Day&start=2024-06-06&end=2024-07-01")
    assert future.json()["bars"] == {}  # after the simulated clock: nothing (no lookahead)


def test_faults_reach_the_bars_path(sandbox):
    control(sandbox, "/sandbox/faults", {"status": 503, "paths": ["/v2/stocks/*"]})
    assert get(sandbox, "symbols=SYN000&timeframe=1Day&start=2024-06-03").status_code == 503
    assert get(sandbox, "symbols=SYN000&timeframe=1Day&start=2024-06-03").status_code == 200


def test_the_live_history_frame_is_to_history():
    """A live history rebuilt from feed lines (datetimes, float lists) is marketdata's frame,
    including gaps (forward-filled, volume 0) and symbols that start late (NaN)."""
    data = load("demo", ["SYN000", "SYN001", "SYN002"], "2024-01-02", "2024-03-28")
    bars = {s: f.copy() for s, f in data.bars.items()}
    bars["SYN001"] = bars["SYN001"].drop(bars["SYN001"].index[[5, 6, 20]])  # gaps
    bars["SYN002"] = bars["SYN002"].iloc[30:]  # starts late
    expected = to_history(bars)
    rebuilt = {  # as rebuilt from a feed's lines: datetimes, float lists
        s: bars_frame(
            list(f.index.to_pydatetime()),
            {c: list(f[c]) for c in ("open", "high", "low", "close", "volume")},
        )
        for s, f in bars.items()
    }
    pd.testing.assert_frame_equal(to_history(rebuilt), expected, check_exact=True)
