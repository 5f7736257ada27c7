"""Inputs that used to crash the sandbox (500) or be silently misread, sent over real HTTP.

Each case is one the issue found with schemathesis, alpaca-py and alpaca-trade-api; every
answer must be Alpaca's JSON error shape with a 4xx (or a normal answer), never a 5xx.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from live.sandbox import SandboxServer

DAY = "2024-03-01"


def call(sandbox: SandboxServer, method: str, path: str, **kw) -> httpx.Response:
    headers = {"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret}
    return httpx.request(method, sandbox.base_url + path, headers=headers, timeout=30, **kw)


def order(**fields) -> dict:
    return {"symbol": "SYN001", "side": "buy", "type": "market", "time_in_force": "day", **fields}


@pytest.mark.parametrize(
    "fields",
    [
        {"qty": "1e20"},
        {"qty": 10000000000000000000},
        {"notional": "1e25"},
        {"qty": "0.000000000001"},  # 12 decimals: refused, not a rejected order
        {"qty": "1.0000000004"},  # 10 decimals: refused, not rounded to 1
        {"qty": "1_0"},  # not 10
        {"qty": " -1"},
        {"qty": "NaN"},
        {"qty": "Infinity"},
        {"qty": 1e-12},
        {"notional": "10.001"},  # dollars have 2 decimals
        {"qty": 1, "limit_price": "1e3", "type": "limit"},
        {"qty": 1, "type": "limit", "limit_price": "100.001"},  # sub-penny
    ],
)
def test_bad_amounts_are_422_and_do_not_use_up_the_client_order_id(sandbox, fields):
    answer = call(sandbox, "POST", "/v2/orders", json=order(client_order_id="cid-1", **fields))
    assert answer.status_code == 422, answer.text
    assert set(answer.json()) == {"code", "message"}
    ok = call(sandbox, "POST", "/v2/orders", json=order(client_order_id="cid-1", qty="1"))
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"


def test_amounts_that_are_fine(sandbox):
    for i, fields in enumerate(({"qty": 2}, {"qty": 2.5}, {"qty": "0.000000001"}, {"qty": "3"})):
        answer = call(sandbox, "POST", "/v2/orders", json=order(client_order_id=f"f{i}", **fields))
        assert answer.status_code == 200, answer.text
    assert [o["qty"] for o in call(sandbox, "GET", "/v2/orders").json()] == [
        "3",
        "0.000000001",
        "2.5",
        "2",
    ]


@pytest.mark.parametrize(
    "query",
    [
        "start=9999-12-31",
        "start=9999-12-30&end=9999-12-31",
        "start=0001-01-01&end=0001-01-10",
        "start=1700-01-01&end=1700-02-01",
    ],
)
def test_calendar_outside_its_range_is_empty(sandbox, query):
    answer = call(sandbox, "GET", f"/v2/calendar?{query}")
    assert answer.status_code == 200 and answer.json() == []


def test_calendar_end_far_ahead_stops_at_the_end_of_the_calendar(sandbox):
    answer = call(sandbox, "GET", "/v2/calendar?start=2029-12-20&end=9999-12-30")
    assert answer.status_code == 200
    assert [d["date"] for d in answer.json()][-1] == "2029-12-31"


def test_calendar_empty_parameters_are_refused(sandbox):
    for query in ("start=", "end=", "start=2024-13-01"):
        answer = call(sandbox, "GET", f"/v2/calendar?{query}")
        assert answer.status_code == 422, query
        assert "YYYY-MM-DD" in answer.json()["message"]


@pytest.mark.parametrize(
    "query",
    ["after=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-12:00", "after=nonsense"],
)
def test_order_listing_times_that_overflow_are_422(sandbox, query):
    answer = call(sandbox, "GET", f"/v2/orders?status=all&{query}")
    assert answer.status_code == 422
    assert "RFC 3339" in answer.json()["message"]


def test_bars_with_extreme_times_are_not_server_errors(sandbox):
    for query in ("start=0001-01-01T00:00:00%2B14:00", "start=0001-01-01", "end=9999-12-31"):
        answer = call(sandbox, "GET", f"/v2/stocks/bars?symbols=SYN001&timeframe=1Day&{query}")
        assert answer.status_code in (200, 422), (query, answer.text)


@pytest.mark.parametrize(
    "path",
    [
        "/v2/account/activities?date=9999-12-31",
        "/v2/account/activities?date=0001-01-01",
        "/v2/account/activities/FILL?until=9999-12-31T23:59:59-12:00",
        "/v2/account/portfolio/history?date_end=9999-12-31&period=100A",
        "/v2/account/portfolio/history?date_end=0001-01-01",
    ],
)
def test_activities_and_history_at_the_ends_of_time(sandbox, path):
    answer = call(sandbox, "GET", path)
    assert answer.status_code in (200, 422), answer.text


def test_the_clock_cannot_leave_the_data(sandbox):
    far = call(sandbox, "POST", "/sandbox/clock", json={"time": "2200-01-01T10:00:00"})
    assert far.status_code == 409 and "no market data" in far.json()["message"]
    many = call(sandbox, "POST", "/sandbox/advance", json={"sessions": 10000})
    assert many.status_code == 409 and "advance fewer sessions" in many.json()["message"]
    year = call(sandbox, "POST", "/sandbox/clock", json={"time": "99999-01-01T10:00:00"})
    assert year.status_code == 422
    assert call(sandbox, "GET", "/sandbox/state").json()["now"] == f"{DAY}T15:00:00-05:00"


def test_405_names_the_allowed_methods(sandbox):
    answer = call(sandbox, "PUT", "/v2/orders")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET, POST"
    assert answer.json() == {"code": 40510000, "message": "method not allowed"}
    one = call(sandbox, "POST", "/v2/orders/00000000-0000-4000-8000-000000000000")
    assert one.status_code == 405 and one.headers["allow"] == "DELETE, GET, PATCH"
    assert call(sandbox, "POST", "/v2/clock").headers["allow"] == "GET"


def test_a_slow_request_does_not_stall_the_others(sandbox, monkeypatch):
    """Broker work runs off the event loop: while a calendar request is blocked inside the
    broker, the clock still answers (the blocked call is released only afterwards)."""
    assert sandbox.broker is not None
    release, entered = threading.Event(), threading.Event()
    original = sandbox.broker.calendar

    def slow_calendar(start, end):
        entered.set()
        release.wait(60)
        return original(start, end)

    monkeypatch.setattr(sandbox.broker, "calendar", slow_calendar)
    answers: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: answers.append(call(sandbox, "GET", "/v2/calendar")))
    worker.start()
    try:
        assert entered.wait(30)
        clock = call(sandbox, "GET", "/v2/clock")  # would hang if the loop were blocked
        assert clock.status_code == 200 and not release.is_set()
    finally:
        release.set()
        worker.join(60)
    assert answers and answers[0].status_code == 200


def test_shutdown_answers_a_held_request_in_alpacas_shape(tmp_path):
    sandbox = SandboxServer(tmp_path / "s.db", date=DAY).start()
    held: list[httpx.Response] = []
    try:
        call(sandbox, "POST", "/sandbox/faults", json={"delay": 120, "paths": ["/v2/account"]})
        worker = threading.Thread(target=lambda: held.append(call(sandbox, "GET", "/v2/account")))
        worker.start()
        while not call(sandbox, "GET", "/sandbox/state").json()["faults"] == []:
            pass  # the held request has taken the fault
    finally:
        sandbox.stop()
    worker.join(30)
    assert held, "the held request got no answer"
    answer = held[0]
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["code"] == 50310000 and "shutting down" in answer.json()["message"]
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(
        answer.headers
    )


def test_ten_threads_with_one_client_order_id_make_one_order(sandbox):
    """Broker work now runs in worker threads: the id check and the insert stay atomic."""
    answers: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        status = call(
            sandbox, "POST", "/v2/orders", json=order(qty=1, client_order_id="x")
        ).status_code
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [200] + [422] * 9
    assert len(call(sandbox, "GET", "/v2/orders?status=all").json()) == 1
