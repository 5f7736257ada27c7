"""The run journal: what each run saw, decided and sent, written before an order leaves.

Every run appends its inputs (as-of time, data hash, strategy hash), its decision, the
target shares it traded towards (`targets`, so a later run can complete a partly filled
order) and one row per order. An order is recorded as `planned` before it is sent and
updated with the broker's answer after, so a run that dies mid-way leaves orders in
`planned`/`unknown` that the next run looks up at the broker (reconciles) before deciding.

Backends: SQLite (default, `sqlite:PATH`) and S3 (`s3://bucket/prefix`, one JSON object
per run) for serverless targets whose disk does not survive the invocation.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from marketdata.cache import cache_root

UNSETTLED_STATES = ("planned", "unknown")


def default_journal_url() -> str:
    """A SQLite file in tradeship's cache folder (marketdata.cache.cache_root)."""
    return f"sqlite:{cache_root() / 'journal.sqlite'}"


def new_run_id(slot: str) -> str:
    return f"{slot}-{uuid.uuid4().hex[:12]}"


class Journal(Protocol):
    def start_run(self, run: dict[str, Any]) -> None: ...
    def update_run(self, run_id: str, **fields: Any) -> None: ...
    def record_order(self, run_id: str, order: dict[str, Any]) -> None: ...
    def update_order(self, run_id: str, client_order_id: str, **fields: Any) -> None: ...
    def unsettled_orders(self) -> list[dict[str, Any]]: ...
    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]: ...


def open_journal(url: str | None = None) -> Journal:
    """`sqlite:PATH` or `s3://bucket/prefix`; empty means the default SQLite file."""
    url = url or os.environ.get("TRADESHIP_JOURNAL") or default_journal_url()
    if url.startswith("sqlite:"):
        return SQLiteJournal(Path(url[len("sqlite:") :]).expanduser())
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3Journal(bucket, prefix.strip("/"))
    raise ValueError(f"TRADESHIP_JOURNAL must be sqlite:PATH or s3://bucket/prefix, got {url!r}")


def _now() -> float:
    return round(time.time(), 3)


class SQLiteJournal:
    """A local file; each write is its own transaction, so a crash loses at most one line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS runs (
                    run_id TEXT PRIMARY KEY, strategy_id TEXT, slot TEXT, as_of TEXT,
                    dry_run INTEGER, status TEXT, message TEXT, data_hash TEXT,
                    strategy_hash TEXT, decision TEXT, started_at REAL, finished_at REAL,
                    targets TEXT);
                CREATE TABLE IF NOT EXISTS orders (
                    run_id TEXT, client_order_id TEXT, symbol TEXT, side TEXT, qty REAL,
                    state TEXT, broker_order_id TEXT, broker_status TEXT, answer TEXT,
                    updated_at REAL, PRIMARY KEY (run_id, client_order_id));
                """
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            if "targets" not in columns:  # a journal written before target shares were kept
                db.execute("ALTER TABLE runs ADD COLUMN targets TEXT")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def start_run(self, run: dict[str, Any]) -> None:
        row = {"status": "running", "message": "", "started_at": _now(), **run}
        columns = ", ".join(row)
        with self._connect() as db:
            db.execute(
                f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(row))})",
                [_sql_value(v) for v in row.values()],
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        if fields.get("status") not in (None, "running"):
            fields.setdefault("finished_at", _now())
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(
                f"UPDATE runs SET {sets} WHERE run_id = ?",
                [*map(_sql_value, fields.values()), run_id],
            )

    def record_order(self, run_id: str, order: dict[str, Any]) -> None:
        row = {"run_id": run_id, "state": "planned", "updated_at": _now(), **order}
        with self._connect() as db:
            db.execute(
                f"INSERT OR REPLACE INTO orders ({', '.join(row)}) "
                f"VALUES ({', '.join('?' * len(row))})",
                [_sql_value(v) for v in row.values()],
            )

    def update_order(self, run_id: str, client_order_id: str, **fields: Any) -> None:
        fields["updated_at"] = _now()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(
                f"UPDATE orders SET {sets} WHERE run_id = ? AND client_order_id = ?",
                [*map(_sql_value, fields.values()), run_id, client_order_id],
            )

    def unsettled_orders(self) -> list[dict[str, Any]]:
        marks = ", ".join("?" * len(UNSETTLED_STATES))
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                f"SELECT * FROM orders WHERE state IN ({marks}) ORDER BY updated_at",
                UNSETTLED_STATES,
            ).fetchall()
        return [dict(r) for r in rows]

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            runs = [
                dict(r)
                for r in db.execute(
                    "SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
                ).fetchall()
            ]
            for run in runs:
                run["orders"] = [
                    dict(r)
                    for r in db.execute(
                        "SELECT * FROM orders WHERE run_id = ? ORDER BY client_order_id",
                        (run["run_id"],),
                    ).fetchall()
                ]
        return runs


def _sql_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return int(value)
    return value


class S3Journal:
    """One JSON object per run under `prefix/runs/`, rewritten whole on every update."""

    def __init__(self, bucket: str, prefix: str, client: Any = None) -> None:
        if client is None:
            import boto3  # only serverless runs that journal to S3 need boto3

            client = boto3.client(
                "s3", endpoint_url=os.environ.get("TRADESHIP_S3_ENDPOINT") or None
            )
        self.s3, self.bucket, self.prefix = client, bucket, prefix
        self._runs: dict[str, dict[str, Any]] = {}

    def _key(self, run_id: str) -> str:
        return f"{self.prefix}/runs/{run_id}.json" if self.prefix else f"runs/{run_id}.json"

    def _put(self, run: dict[str, Any]) -> None:
        body = json.dumps(run, sort_keys=True).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self._key(run["run_id"]), Body=body)

    def _get(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._runs:
            answer = self.s3.get_object(Bucket=self.bucket, Key=self._key(run_id))
            self._runs[run_id] = json.loads(answer["Body"].read())
        return self._runs[run_id]

    def start_run(self, run: dict[str, Any]) -> None:
        record = {"status": "running", "message": "", "started_at": _now(), "orders": [], **run}
        self._runs[run["run_id"]] = record
        self._put(record)

    def update_run(self, run_id: str, **fields: Any) -> None:
        run = self._get(run_id)
        if fields.get("status") not in (None, "running"):
            fields.setdefault("finished_at", _now())
        run.update(fields)
        self._put(run)

    def record_order(self, run_id: str, order: dict[str, Any]) -> None:
        run = self._get(run_id)
        run["orders"] = [
            o for o in run["orders"] if o["client_order_id"] != order["client_order_id"]
        ]
        run["orders"].append({"run_id": run_id, "state": "planned", "updated_at": _now(), **order})
        self._put(run)

    def update_order(self, run_id: str, client_order_id: str, **fields: Any) -> None:
        run = self._get(run_id)
        for order in run["orders"]:
            if order["client_order_id"] == client_order_id:
                order.update(fields, updated_at=_now())
        self._put(run)

    def _all_runs(self) -> list[dict[str, Any]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        prefix = self._key("x").rsplit("/", 1)[0] + "/"
        runs = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                runs.append(json.loads(body))
        return sorted(runs, key=lambda r: r.get("started_at", 0), reverse=True)

    def unsettled_orders(self) -> list[dict[str, Any]]:
        return [
            o
            for run in self._all_runs()
            for o in run.get("orders", [])
            if o.get("state") in UNSETTLED_STATES
        ]

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._all_runs()[:limit]
