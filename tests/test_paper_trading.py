"""Live execution end to end: an exported module's run() against the local paper broker.

Real parts only: the exported file, the real alpaca-py client, the sandbox over real HTTP
on 127.0.0.1, a real SQLite journal. Every sandbox response is validated against Alpaca's
OpenAPI spec (skipped when ../shared/specs is absent).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from exporters.export import build_export, write_export
from exporters.parity import load_module
from live.journal import open_journal
from live.sandbox import SandboxServer
from live.sandbox.contract import ContractRecorder

SPEC = Path(__file__).resolve().parents[1].parent / "shared/specs/alpaca-trading-openapi.yaml"
SYMBOLS = [f"SYN{i:03d}" for i in range(12)]
PARAMS = {"top_n": 5, "prophet_window": 60, "momentum_lookback": 20, "threshold": 0.0}
DAY = "2024-06-03"  # a Monday: a rebalance session; this decision buys SYN007 and SYN009
NOW = f"{DAY}T09:00"  # the export fills at the open (FILL "open"): opg orders before 09:28


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    _, compiled = build_export("prophet_momentum", PARAMS, SYMBOLS, default_source="demo")
    path, _ = write_export(compiled, tmp_path_factory.mktemp("export") / "strategy.py")
    return load_module(path)


@pytest.fixture
def contract():
    recorder = ContractRecorder(SPEC)
    yield recorder
    recorder.assert_valid()


@pytest.fixture
def sandbox(tmp_path, contract, monkeypatch):
    with SandboxServer(tmp_path / "sandbox.db", date="2024-05-31", on_exchange=contract) as server:
        control(server, "POST", "/sandbox/clock", {"time": NOW})  # the broker's clock
        monkeypatch.setenv("APCA_API_BASE_URL", server.base_url)
        monkeypatch.setenv("APCA_API_KEY_ID", server.key)
        monkeypatch.setenv("APCA_API_SECRET_KEY", server.secret)
        monkeypatch.setenv("TRADESHIP_REQUEST_TIMEOUT", "1")
        monkeypatch.setenv("TRADESHIP_RETRY_BUDGET", "3")
        yield server


def control(sandbox: SandboxServer, method: str, path: str, body: dict | None = None) -> dict:
    answer = httpx.request(
        method,
        sandbox.base_url + path,
        json=body,
        timeout=10,
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def broker_orders(sandbox) -> list:
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    return sandbox.trading_client().get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))


def journal_runs() -> list[dict]:
    return open_journal().recent_runs(50)


def test_a_run_trades_the_decision_and_lands_on_its_target_shares(module, sandbox):
    assert (module.FILL, module.SCHEDULE) == ("open", "daily at 09:00")
    orders = module.run(now=NOW, source="demo")
    assert {o["symbol"] for o in orders} == {"SYN007", "SYN009"}
    assert all(o["outcome"] == "submitted" and o["time_in_force"] == "opg" for o in orders)
    assert {o["status"] for o in orders} <= {"accepted", "new"}  # they wait for the open
    history = module.load_history("demo", SYMBOLS, "2023-06-01", "2024-05-31")
    targets = module.decide(history, {"$CASH": 100_000.0}, DAY)  # sized at the last close
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T09:31"})
    client = sandbox.trading_client()
    positions = {p.symbol: float(p.qty) for p in client.get_all_positions()}
    assert positions == targets
    opens = module.load_history("demo", SYMBOLS, DAY, DAY)["open"].iloc[0]
    for order in broker_orders(sandbox):  # filled at the open, the backtest's price
        assert float(order.filled_avg_price) == float(opens[order.symbol])
    run = journal_runs()[0]
    assert run["status"] == "done" and run["data_hash"] and run["strategy_hash"]
    assert {o["state"] for o in run["orders"]} == {"sent"}


def test_the_same_slot_twice_submits_nothing_new(module, sandbox):
    first = module.run(now=NOW, source="demo")
    second = module.run(now=NOW, source="demo")
    assert first and all(o["outcome"] != "submitted" for o in second)
    ids = [o.client_order_id for o in broker_orders(sandbox)]
    assert sorted(ids) == sorted(o["client_order_id"] for o in first)
    assert len(ids) == len(set(ids))


def test_a_timeout_after_the_broker_accepted_is_looked_up_not_resent(module, sandbox):
    control(
        sandbox,
        "POST",
        "/sandbox/faults",
        {"timeout_after_accept": 2.5, "times": 1, "paths": ["/v2/orders"], "methods": ["POST"]},
    )
    first = module.run(now=NOW, source="demo")
    assert len(first) == 2
    second = module.run(now=NOW, source="demo")
    assert all(o["outcome"] != "submitted" for o in second)
    ids = [o.client_order_id for o in broker_orders(sandbox)]
    assert len(ids) == 2 == len(set(ids))


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("TRADESHIP_MAX_POSITION_WEIGHT", "0.4", "TRADESHIP_MAX_POSITION_WEIGHT"),
        ("TRADESHIP_MAX_GROSS_EXPOSURE", "0.5", "TRADESHIP_MAX_GROSS_EXPOSURE"),
        ("TRADESHIP_MAX_ORDER_NOTIONAL", "1000", "TRADESHIP_MAX_ORDER_NOTIONAL"),
        ("TRADESHIP_MAX_RUN_NOTIONAL", "50000", "TRADESHIP_MAX_RUN_NOTIONAL"),
        ("TRADESHIP_MAX_ORDERS", "1", "TRADESHIP_MAX_ORDERS"),
        ("TRADESHIP_KILL_SWITCH", "1", "kill switch"),
    ],
)
def test_limits_and_the_kill_switch_block_every_order(
    module, sandbox, monkeypatch, capsys, env, value, message
):
    monkeypatch.setenv(env, value)
    assert module.run(now=NOW, source="demo") == []
    assert message in capsys.readouterr().out
    assert broker_orders(sandbox) == []
    assert journal_runs()[0]["status"] == "blocked"


def test_a_run_after_the_opg_cut_off_submits_nothing(module, sandbox, capsys):
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{DAY}T15:00:00-04:00"})
    assert module.run(source="demo") == []
    assert "must be sent before 09:28 New York" in capsys.readouterr().out
    assert broker_orders(sandbox) == []


def test_a_past_now_cannot_trade_today(module, sandbox):
    with pytest.raises(module.RunError, match="is not the broker's clock"):
        module.run(now="2016-11-28T15:00", source="demo")
    assert broker_orders(sandbox) == []


def test_a_weekend_opg_run_is_for_the_next_session(module, sandbox, capsys):
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-08T10:00"})  # a Saturday
    module.run(source="demo", dry_run=True)
    assert journal_runs()[0]["slot"] == "20240610"  # Monday's open


def test_wrong_credentials_end_the_run_plainly(module, sandbox, monkeypatch):
    monkeypatch.setenv("APCA_API_SECRET_KEY", "wrong-secret-value")
    with pytest.raises(module.RunError, match="refused the credentials") as caught:
        module.run(now=NOW, source="demo")
    assert "wrong-secret-value" not in str(caught.value)
    assert broker_orders(sandbox) == []
    assert journal_runs()[0]["status"] == "blocked"


def test_missing_credentials_are_named(module, sandbox, monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID")
    with pytest.raises(module.RunError, match="set APCA_API_KEY_ID"):
        module.run(now=NOW, source="demo")


ORDER_POSTS = {"paths": ["/v2/orders"], "methods": ["POST"]}


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 429, "times": 50, **ORDER_POSTS}, "429"),
        ({"status": 500, "times": 50, **ORDER_POSTS}, "500"),
        ({"malformed": True, "times": 50, "paths": ["/v2/positions"]}, "malformed answer"),
    ],
)
def test_broker_failures_end_the_run_without_duplicates(module, sandbox, fault, message):
    control(sandbox, "POST", "/sandbox/faults", fault)
    with pytest.raises(module.RunError, match=message):
        module.run(now=NOW, source="demo")
    ids = [o.client_order_id for o in broker_orders(sandbox)]
    assert len(ids) == len(set(ids)) <= 2
    run = journal_runs()[0]
    assert run["status"] == "blocked" and message in run["message"]
    # the journal recorded each order before it was sent, and marks what is unsettled
    assert {o["state"] for o in run["orders"]} <= {"sent", "unknown"}
    # once the broker recovers, the next run of the slot reconciles and completes once
    control(sandbox, "DELETE", "/sandbox/faults")
    module.run(now=NOW, source="demo")
    ids = [o.client_order_id for o in broker_orders(sandbox)]
    assert len(ids) == len(set(ids)) == 2
    assert open_journal().unsettled_orders() == []


def test_a_malformed_answer_to_an_accepted_order_is_looked_up(module, sandbox):
    control(sandbox, "POST", "/sandbox/faults", {"malformed": True, "times": 1, **ORDER_POSTS})
    orders = module.run(now=NOW, source="demo")
    assert len(orders) == 2 and all(o["outcome"] == "submitted" for o in orders)
    ids = [o.client_order_id for o in broker_orders(sandbox)]
    assert len(ids) == len(set(ids)) == 2


def test_a_429_storm_on_every_request_gives_up_within_budget(module, sandbox):
    control(sandbox, "POST", "/sandbox/faults", {"status": 429, "times": 1000})
    with pytest.raises(module.RunError, match="429"):
        module.run(now=NOW, source="demo")
    control(sandbox, "DELETE", "/sandbox/faults")
    assert broker_orders(sandbox) == []


def test_dry_run_journals_without_sending(module, sandbox, capsys):
    orders = module.run(now=NOW, source="demo", dry_run=True)
    assert len(orders) == 2 and all(o["status"] == "dry_run" for o in orders)
    assert "dry run: would buy" in capsys.readouterr().out
    assert broker_orders(sandbox) == []
    assert {o["state"] for o in journal_runs()[0]["orders"]} == {"dry_run"}


def test_paper_and_journal_commands(module, sandbox, capsys):
    from tradeship.cli import main

    assert main(["paper", "--module", module.__file__, "--source", "demo", "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "submitted: buy" in out and "2 order(s)" in out
    assert main(["journal", "--limit", "1"]) == 0
    shown = capsys.readouterr().out
    assert "done: 2 order(s)" in shown and shown.count("  sent  accepted") == 2
    # a blocked run says why and exits non-zero, with no traceback
    sandbox_url = sandbox.base_url
    assert sandbox_url
    assert (
        main(
            [
                "paper",
                "--module",
                module.__file__,
                "--source",
                "csv:/nonexistent",
                "--now",
                NOW,
            ]
        )
        == 1
    )
    assert "error: market data from csv:/nonexistent could not be loaded" in capsys.readouterr().out
