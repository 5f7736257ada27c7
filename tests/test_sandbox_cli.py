"""`tradeship sandbox`: its options and help, and `serve` as a real process stopped by Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tradeship.commands import sandbox as command
from tradeship.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tradeship")
    command.register(top.add_subparsers(dest="command"), Settings())
    return top


def test_options_and_defaults():
    args = parser().parse_args(["sandbox"])
    assert args.func is command.cmd_sandbox
    assert (args.port, args.db, args.source, args.cash, args.date) == (
        8765,
        "sandbox.db",
        None,
        None,
        None,
    )
    args = parser().parse_args(
        ["sandbox", "--port", "0", "--date", "2024-03-01", "--cash", "5000", "--db", "x.db"]
    )
    assert (args.port, args.date, args.cash, args.db) == (0, "2024-03-01", 5000.0, "x.db")
    assert args.account is None  # a new database: margin, as Alpaca paper accounts
    assert parser().parse_args(["sandbox", "--account", "cash"]).account == "cash"
    with pytest.raises(SystemExit):
        parser().parse_args(["sandbox", "--account", "portfolio"])


def test_help_teaches_how_to_use_it():
    sub = parser()._subparsers._group_actions[0].choices["sandbox"]
    text = sub.format_help()
    for needle in (
        "/sandbox/advance",
        "/sandbox/clock",
        "/sandbox/faults",
        "/sandbox/state",
        "APCA_API_BASE_URL",
        "url_override",
        "OPEN",
        "--date",
        "opg",
        "cls",
        "limit / stop",
        "--account",
        "expire at the close",
    ):
        assert needle in text


def test_credentials_come_from_the_environment(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("live.sandbox.server.serve", lambda **kw: seen.update(kw) or 0)
    monkeypatch.setenv("APCA_API_KEY_ID", "PKFROMENV")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "secret-from-env")
    args = parser().parse_args(["sandbox", "--db", str(tmp_path / "new.db")])
    assert command.cmd_sandbox(args, Settings(source="csv:somewhere")) == 0
    assert seen["key"] == "PKFROMENV" and seen["secret"] == "secret-from-env"
    assert seen["source"] == "csv:somewhere"  # a new database takes TRADESHIP_SOURCE

    monkeypatch.delenv("APCA_API_KEY_ID")
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    command.cmd_sandbox(args, Settings())
    from live.sandbox import DEFAULT_KEY, DEFAULT_SECRET

    assert (seen["key"], seen["secret"]) == (DEFAULT_KEY, DEFAULT_SECRET)


SCRIPT = """
import sys
from live.sandbox.server import serve
sys.exit(serve(port=0, date="2024-03-01", db_path=sys.argv[1], key="PKCLI", secret=sys.argv[2]))
"""


def test_serve_runs_until_ctrl_c(tmp_path):
    secret = "cli-secret-never-printed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", SCRIPT, str(tmp_path / "cli.db"), secret],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "APCA_API_BASE_URL=" in line:
                url = line.strip().split("=", 1)[1]
        assert url, "".join(lines)
        headers = {"APCA-API-KEY-ID": "PKCLI", "APCA-API-SECRET-KEY": secret}
        for _ in range(100):  # the socket is bound before the banner; uvicorn starts next
            try:
                answer = httpx.get(url + "/v2/clock", headers=headers)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert answer.status_code == 200 and answer.json()["is_open"] is True
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + out
    assert proc.returncode == 0, output
    assert "sandbox stopped" in output
    assert secret not in output
    assert "APCA_API_KEY_ID=PKCLI" in output


def test_sigterm_answers_a_held_request_in_alpacas_shape(tmp_path):
    """SIGTERM while a request is held (an injected delay): the answer is Alpaca's JSON
    503 with the rate-limit headers, not a bare text/plain 500; the server exits 0."""
    secret = "cli-secret-term"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", SCRIPT, str(tmp_path / "term.db"), secret],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    held: list[httpx.Response] = []
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            assert line, "the sandbox exited before printing its URL"
            if "APCA_API_BASE_URL=" in line:
                url = line.strip().split("=", 1)[1]
        headers = {"APCA-API-KEY-ID": "PKCLI", "APCA-API-SECRET-KEY": secret}
        for _ in range(200):
            try:
                httpx.post(url + "/sandbox/faults", json={"delay": 120}, headers=headers)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        worker = threading.Thread(
            target=lambda: held.append(httpx.get(url + "/v2/account", headers=headers, timeout=60))
        )
        worker.start()
        while httpx.get(url + "/sandbox/state", headers=headers).json()["faults"]:
            time.sleep(0.02)  # until the held request has taken the fault
        proc.send_signal(signal.SIGTERM)
        worker.join(60)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert held and held[0].status_code == 503
    assert held[0].headers["content-type"].startswith("application/json")
    assert held[0].json()["code"] == 50310000
    assert "x-ratelimit-remaining" in held[0].headers


def test_serve_refuses_a_busy_port(tmp_path):
    import socket

    from live.sandbox.server import serve

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match="cannot listen"):
            serve(port=port, date="2024-03-01", db_path=tmp_path / "p.db", announce=lambda s: None)
