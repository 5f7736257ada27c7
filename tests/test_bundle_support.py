"""Helpers the tests/test_bundle_*.py files share (no tests here).

One small exported module (20 synthetic symbols, quick Prophet windows) on the built-in
`demo` data, on the export's own SCHEDULE (daily at 09:00 New York for open fills, before
the opg cut-off); 2024-05-28 is a rebalance session on which it buys two symbols.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from exporters.export import build_export, write_export

SYMBOLS = [f"SYN{i:03d}" for i in range(20)]
PARAMS = {"top_n": 4, "prophet_window": 60, "momentum_lookback": 20, "threshold": 0.0}
SESSION = "2024-05-28"  # a rebalance session (the Tuesday after Memorial Day 2024)
HOLIDAY = "2024-05-27"  # Memorial Day: cron fires, NYSE is closed
SLOT = "20240528"
FIRE_UTC = "2024-05-28T13:00:00Z"  # 09:00 New York (EDT)
CREDENTIALS = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL")


def export_module(folder: Path, schedule: str | None = None) -> Path:
    """The small module, written to folder/strategy.py (+ requirements.txt)."""
    _, compiled = build_export("prophet_momentum", PARAMS, SYMBOLS, default_source="demo")
    path, _ = write_export(compiled, Path(folder) / "strategy.py")
    if schedule is not None:
        text, count = re.subn(
            r"^SCHEDULE = .*$", f"SCHEDULE = {schedule!r}", path.read_text(), flags=re.M
        )
        assert count == 1
        path.write_text(text)
    return path


def shared_root(tmp_path_factory) -> Path:
    """A folder every pytest-xdist worker of this run shares (the base temp otherwise)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """root/name built by exactly one worker (a file lock), reused by the others."""
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / "DONE").is_file():
                folder.mkdir(parents=True, exist_ok=True)
                build(folder)
                (folder / "DONE").write_text("ok")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def subprocess_env(sandbox, tmp: Path, now: str, **extra: str) -> dict[str, str]:
    """The environment of a deployed run: sandbox credentials, demo data, a private journal."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    env.update(
        APCA_API_KEY_ID=sandbox.key,
        APCA_API_SECRET_KEY=sandbox.secret,
        APCA_API_BASE_URL=sandbox.base_url,
        TRADESHIP_SOURCE="demo",
        TRADESHIP_NOW=now,
        TRADESHIP_JOURNAL=f"sqlite:{tmp / 'journal.sqlite'}",
        TRADESHIP_CACHE_DIR=str(tmp / "cache"),
        XDG_CACHE_HOME=str(tmp / "xdg"),
    )
    env.update(extra)
    return env


def run_python(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def summaries(stdout: str) -> list[dict]:
    """The JSON summary lines a bundle's runtime printed."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"run-summary"' in line:
            found.append(json.loads(line))
    return found


def broker_orders(sandbox) -> list[tuple]:
    """Every order the sandbox holds: (symbol, side, qty, client_order_id, status)."""
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    client = sandbox.trading_client()
    orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
    return sorted(
        (o.symbol, o.side.value, float(o.qty), o.client_order_id, str(o.status.value))
        for o in orders
    )


def planned(orders: list[dict]) -> list[tuple]:
    return sorted((o["symbol"], o["side"], float(o["qty"]), o["client_order_id"]) for o in orders)


@contextlib.contextmanager
def credentials_from(sandbox, monkeypatch):
    """APCA_* of this test process pointing at `sandbox`."""
    monkeypatch.setenv("APCA_API_KEY_ID", sandbox.key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", sandbox.secret)
    monkeypatch.setenv("APCA_API_BASE_URL", sandbox.base_url)
    yield
