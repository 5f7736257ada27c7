"""What a real broker does to a client: rate limits, errors, slow and garbled answers,
timeouts after the order was accepted, wrong keys. Driven with alpaca-py where it can see
the effect, with httpx where headers or raw bodies matter. Every response is validated
against Alpaca's OpenAPI spec (live.sandbox.contract) at teardown."""

from __future__ import annotations

import functools
import time

import httpx
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from live.sandbox import SandboxServer
from live.sandbox.faults import RateLimiter, parse_fault

DAY = "2024-03-01"


def auth(sandbox: SandboxServer) -> dict[str, str]:
    return {"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret}


def inject(sandbox: SandboxServer, fault: dict) -> None:
    answer = httpx.post(sandbox.base_url + "/sandbox/faults", json=fault, headers=auth(sandbox))
    assert answer.status_code == 200, answer.text


def order(symbol: str = "SYN001", qty: float = 1, client_order_id: str | None = None):
    return MarketOrderRequest(
        symbol=symbol,
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        client_order_id=client_order_id,
    )


def test_rate_limit_headers_on_every_response(sandbox):
    before = time.time()
    first = httpx.get(sandbox.base_url + "/v2/account", headers=auth(sandbox))
    second = httpx.get(sandbox.base_url + "/v2/clock", headers=auth(sandbox))
    for answer in (first, second):
        assert answer.headers["X-Ratelimit-Limit"] == "200"
        assert before <= int(answer.headers["X-Ratelimit-Reset"]) <= time.time() + 61
    assert int(first.headers["X-Ratelimit-Remaining"]) == 199
    assert int(second.headers["X-Ratelimit-Remaining"]) == 198

    refused = httpx.get(sandbox.base_url + "/v2/account")  # no key: counted, headers too
    assert refused.status_code == 401 and refused.headers["X-Ratelimit-Remaining"] == "197"
    state = httpx.get(sandbox.base_url + "/sandbox/state", headers=auth(sandbox))
    assert state.headers["X-Ratelimit-Remaining"] == "197"  # /sandbox/* is not counted
    assert state.json()["rate_limit"]["X-Ratelimit-Remaining"] == "197"


def test_over_the_limit_is_429(tmp_path, contract):
    with SandboxServer(tmp_path / "s.db", date=DAY, rate_limit=3, on_exchange=contract) as box:
        answers = [
            httpx.get(box.base_url + "/v2/clock", headers=auth(box)).status_code for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429]
        limited = httpx.get(box.base_url + "/v2/account", headers=auth(box))
        assert limited.status_code == 429
        assert limited.json() == {"code": 42910000, "message": "rate limit exceeded"}
        assert limited.headers["X-Ratelimit-Limit"] == "3"
        assert limited.headers["X-Ratelimit-Remaining"] == "0"


def test_rate_limit_window_resets_after_a_minute():
    now = [1_000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.hit()[0] for _ in range(3)] == [True, True, False]
    assert limiter.peek()["X-Ratelimit-Reset"] == "1060"
    now[0] = 1_059.9
    assert limiter.hit()[0] is False
    now[0] = 1_060.0
    allowed, headers = limiter.hit()
    assert allowed and headers["X-Ratelimit-Remaining"] == "1"
    assert headers["X-Ratelimit-Reset"] == "1120"


def test_injected_429_is_retried_by_alpaca_py(sandbox, client):
    # alpaca-py retries 429 (and 504) up to 3 times, 3 s apart; one 429 costs one retry
    inject(sandbox, {"status": 429, "times": 1, "paths": ["/v2/account"]})
    started = time.monotonic()
    assert float(client.get_account().cash) == 100_000
    assert time.monotonic() - started >= 2.5


def test_injected_500_is_an_api_error_and_does_not_run_the_request(sandbox, client):
    inject(sandbox, {"status": 500, "times": 1, "paths": ["/v2/orders"], "methods": ["POST"]})
    with pytest.raises(APIError) as failed:
        client.submit_order(order(client_order_id="lost-1"))
    assert failed.value.status_code == 500
    assert failed.value.code == 50010000
    with pytest.raises(APIError) as missing:
        client.get_order_by_client_id("lost-1")
    assert missing.value.status_code == 404
    assert client.submit_order(order(client_order_id="lost-1")).status == OrderStatus.ACCEPTED


def test_faults_only_hit_matching_paths_and_run_out(sandbox, client):
    inject(sandbox, {"status": 503, "times": 2, "paths": ["/v2/positions*"]})
    assert client.get_account().status.value == "ACTIVE"
    for _ in range(2):
        with pytest.raises(APIError) as down:
            client.get_all_positions()
        assert down.value.status_code == 503
    assert client.get_all_positions() == []


def test_delay(sandbox, client):
    inject(sandbox, {"delay": 0.6, "times": 1})
    started = time.monotonic()
    client.get_clock()
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    client.get_clock()
    assert time.monotonic() - started < 0.5


def test_malformed_json_runs_the_request_but_garbles_the_answer(sandbox, client):
    inject(sandbox, {"malformed": True, "times": 1, "paths": ["/v2/orders"]})
    with pytest.raises(requests.exceptions.JSONDecodeError):
        client.submit_order(order(client_order_id="garbled-1"))
    # the broker did take the order: the client must look it up, not send it again
    assert client.get_order_by_client_id("garbled-1").status == OrderStatus.ACCEPTED

    inject(sandbox, {"malformed": True})
    with pytest.raises(ValueError):
        client.get_account()
    assert client.get_account().status.value == "ACTIVE"


def test_timeout_after_accept(sandbox, client):
    inject(sandbox, {"timeout_after_accept": 1.5, "times": 1})
    # alpaca-py has no timeout option and waits forever by default: give its session one
    original = client._session.request
    client._session.request = functools.partial(original, timeout=0.4)
    with pytest.raises(requests.exceptions.Timeout):
        client.submit_order(order(client_order_id="slow-1"))
    client._session.request = original
    found = client.get_order_by_client_id("slow-1")
    assert found.status == OrderStatus.ACCEPTED  # stored before the answer was lost
    with pytest.raises(APIError) as again:  # a blind retry is refused, not doubled
        client.submit_order(order(client_order_id="slow-1"))
    assert again.value.message == "client_order_id must be unique"
    time.sleep(1.2)  # let the late answer go out before the server stops


def test_wrong_credentials_are_refused(sandbox):
    wrong_key = TradingClient("PKWRONG", sandbox.secret, paper=True, url_override=sandbox.base_url)
    with pytest.raises(APIError) as refused:
        wrong_key.get_account()
    assert refused.value.status_code == 401
    assert refused.value.code == 40110000
    assert refused.value.message == "request is not authorized"

    wrong_secret = TradingClient(sandbox.key, "nope", paper=True, url_override=sandbox.base_url)
    with pytest.raises(APIError):
        wrong_secret.get_clock()
    for path in ("/v2/orders", "/sandbox/state"):
        assert httpx.get(sandbox.base_url + path).status_code == 401


def test_secrets_are_not_recorded(sandbox, client, contract):
    client.get_account()
    assert contract.exchanges
    for exchange in contract.exchanges:
        flat = repr(exchange)
        assert sandbox.secret not in flat and sandbox.key not in flat


def test_fault_requests_are_checked(sandbox):
    for bad in (
        {"status": 404},
        {"delay": -1},
        {"malformed": "yes"},
        {"status": 500, "delay": 1},
        {"status": 500, "times": 0},
        {"status": 500, "paths": "/v2/orders"},
    ):
        answer = httpx.post(sandbox.base_url + "/sandbox/faults", json=bad, headers=auth(sandbox))
        assert answer.status_code == 422, bad
    inject(sandbox, {"status": 500, "times": 5})
    state = httpx.get(sandbox.base_url + "/sandbox/state", headers=auth(sandbox)).json()
    assert state["faults"][0]["status"] == 500 and state["faults"][0]["times"] == 5
    cleared = httpx.delete(sandbox.base_url + "/sandbox/faults", headers=auth(sandbox))
    assert cleared.json() == {"faults": []}
    assert httpx.get(sandbox.base_url + "/v2/clock", headers=auth(sandbox)).status_code == 200
    assert parse_fault({"timeout_after_accept": 2}).matches("POST", "/v2/orders")
    assert not parse_fault({"timeout_after_accept": 2}).matches("GET", "/v2/orders")


def test_a_sandbox_bug_answers_alpacas_500_and_keeps_serving(sandbox, client, monkeypatch):
    def boom():
        raise RuntimeError("bug")

    monkeypatch.setattr(sandbox.broker, "account", boom)
    with pytest.raises(APIError) as failed:
        client.get_account()
    assert failed.value.status_code == 500 and failed.value.code == 50010000
    assert client.get_clock().is_open
