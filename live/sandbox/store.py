"""SQLite persistence of the sandbox: account metadata, the simulated clock and orders.

Positions and cash are not stored: they are replayed from the filled orders, so a restart
on the same file (or a crash between two requests) cannot make them disagree. Every write
is committed before the HTTP answer is sent.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "2"
# columns added by schema 2 (limit/stop/trailing orders, replacement, position intent)
_V2_COLUMNS = (
    "limit_price",
    "stop_price",
    "replaced_at",
    "replaced_by",
    "replaces",
    "position_intent",
    "trail_price",
    "trail_percent",
    "hwm",
    "order_class",
    "parent_id",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    client_order_id  TEXT NOT NULL UNIQUE,
    symbol           TEXT NOT NULL,
    asset_id         TEXT NOT NULL,
    side             TEXT NOT NULL,
    type             TEXT NOT NULL,
    time_in_force    TEXT NOT NULL,
    qty              TEXT,
    notional         TEXT,
    status           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    submitted_at     TEXT NOT NULL,
    filled_at        TEXT,
    canceled_at      TEXT,
    expired_at       TEXT,
    failed_at        TEXT,
    expires_at       TEXT,
    filled_qty       TEXT NOT NULL DEFAULT '0',
    filled_avg_price TEXT,
    reject_reason    TEXT,
    limit_price      TEXT,
    stop_price       TEXT,
    replaced_at      TEXT,
    replaced_by      TEXT,
    replaces         TEXT,
    position_intent  TEXT,
    trail_price      TEXT,
    trail_percent    TEXT,
    hwm              TEXT,
    order_class      TEXT,
    parent_id        TEXT
);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
"""

ORDER_COLUMNS = (
    "id",
    "client_order_id",
    "symbol",
    "asset_id",
    "side",
    "type",
    "time_in_force",
    "qty",
    "notional",
    "status",
    "created_at",
    "updated_at",
    "submitted_at",
    "filled_at",
    "canceled_at",
    "expired_at",
    "failed_at",
    "expires_at",
    "filled_qty",
    "filled_avg_price",
    "reject_reason",
    *_V2_COLUMNS,
)


class Store:
    """One SQLite file; safe to share between threads (one lock, one connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        found = self.get_meta("schema_version")
        if found is None:
            self.set_meta({"schema_version": SCHEMA_VERSION})
        elif found not in ("1", SCHEMA_VERSION):
            raise ValueError(
                f"{self.path}: sandbox database schema {found}, this code needs {SCHEMA_VERSION}"
            )
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A file from an older schema gets the newer (nullable) columns; orders are kept."""
        with self.transaction() as db:
            have = {row["name"] for row in db.execute("PRAGMA table_info(orders)")}
            for column in _V2_COLUMNS:
                if column not in have:
                    db.execute(f"ALTER TABLE orders ADD COLUMN {column} TEXT")
            self.set_meta({"schema_version": SCHEMA_VERSION}, db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), holding the lock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, values: dict[str, str], conn: sqlite3.Connection | None = None) -> None:
        rows = [(k, str(v)) for k, v in values.items()]
        sql = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?"
        if conn is not None:
            conn.executemany(sql, [(k, v, v) for k, v in rows])
            return
        with self.transaction() as db:
            db.executemany(sql, [(k, v, v) for k, v in rows])

    # -- orders -------------------------------------------------------------------------
    def insert_order(self, order: dict[str, Any], conn: sqlite3.Connection) -> None:
        cols = ", ".join(ORDER_COLUMNS)
        marks = ", ".join("?" for _ in ORDER_COLUMNS)
        conn.execute(
            f"INSERT INTO orders ({cols}) VALUES ({marks})",
            [order.get(c) for c in ORDER_COLUMNS],
        )

    def update_order(
        self, order_id: str, changes: dict[str, Any], conn: sqlite3.Connection
    ) -> None:
        unknown = set(changes) - set(ORDER_COLUMNS)
        if unknown:
            raise KeyError(f"unknown order columns {sorted(unknown)}")
        assignments = ", ".join(f"{c} = ?" for c in changes)
        conn.execute(f"UPDATE orders SET {assignments} WHERE id = ?", [*changes.values(), order_id])

    def client_order_id_taken(self, client_order_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
        return row is not None

    def order(self, *, order_id: str | None = None, client_order_id: str | None = None):
        key, value = (
            ("id", order_id) if order_id is not None else ("client_order_id", client_order_id)
        )
        with self._lock:
            row = self._db.execute(f"SELECT * FROM orders WHERE {key} = ?", (value,)).fetchone()
        return None if row is None else dict(row)

    def orders(self, statuses: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Orders in submission order (oldest first), optionally only these statuses."""
        sql, args = "SELECT * FROM orders", []
        if statuses is not None:
            wanted = list(statuses)
            sql += f" WHERE status IN ({', '.join('?' for _ in wanted)})"
            args = wanted
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [dict(r) for r in rows]

    def legs(self, parent_id: str) -> list[dict[str, Any]]:
        """The exit legs of an advanced (bracket, oto, oco) order, in submission order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM orders WHERE parent_id = ? ORDER BY seq", (parent_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def filled_orders(self) -> list[dict[str, Any]]:
        """Filled orders in fill order: the ledger that positions and cash replay."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM orders WHERE status = 'filled' ORDER BY filled_at, seq"
            ).fetchall()
        return [dict(r) for r in rows]
