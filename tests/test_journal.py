"""The run journal on SQLite and on S3 (a real moto server on localhost, not a mock)."""

from __future__ import annotations

import socket

import pytest

from live.journal import S3Journal, SQLiteJournal, open_journal


def exercise(journal) -> None:
    journal.start_run(
        {
            "run_id": "r1",
            "strategy_id": "pm",
            "slot": "20240603",
            "as_of": "2024-06-03T15:00:00-04:00",
            "dry_run": False,
        }
    )
    journal.update_run("r1", data_hash="abc", decision={"AAA": 0.5, "BBB": 0.5})
    journal.record_order(
        "r1", {"client_order_id": "id-a", "symbol": "AAA", "side": "buy", "qty": 3.0}
    )
    journal.record_order(
        "r1", {"client_order_id": "id-b", "symbol": "BBB", "side": "buy", "qty": 4.0}
    )
    journal.update_order("r1", "id-a", state="sent", broker_order_id="X1", broker_status="filled")
    # the run "crashes" here: id-b stays planned, the run stays running


def check(journal) -> None:
    runs = journal.recent_runs(5)
    assert [r["run_id"] for r in runs] == ["r1"]
    run = runs[0]
    assert run["status"] == "running" and run["data_hash"] == "abc"
    states = {o["client_order_id"]: o["state"] for o in run["orders"]}
    assert states == {"id-a": "sent", "id-b": "planned"}
    assert [o["client_order_id"] for o in journal.unsettled_orders()] == ["id-b"]
    journal.update_order("r1", "id-b", state="never_sent")
    journal.update_run("r1", status="blocked", message="crash recovered")
    assert journal.unsettled_orders() == []
    finished = journal.recent_runs(1)[0]
    assert finished["status"] == "blocked" and finished["finished_at"] is not None


def test_sqlite_journal_survives_a_reopen(tmp_path):
    path = tmp_path / "journal.sqlite"
    exercise(SQLiteJournal(path))
    check(open_journal(f"sqlite:{path}"))  # a new process would open it like this


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TRADESHIP_S3_ENDPOINT", f"http://127.0.0.1:{port}")
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_s3_journal_against_a_local_s3_server(s3_server):
    import boto3

    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="journal")
    exercise(open_journal("s3://journal/prod/pm"))
    check(open_journal("s3://journal/prod/pm"))  # a fresh object, as the next invocation
    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket="journal")[
            "Contents"
        ]
    ]
    assert keys == ["prod/pm/runs/r1.json"]
    assert isinstance(open_journal("s3://journal/x"), S3Journal)


def test_unknown_journal_url_is_a_clear_error():
    with pytest.raises(ValueError, match="TRADESHIP_JOURNAL must be sqlite:PATH or s3://"):
        open_journal("postgres://nope")
