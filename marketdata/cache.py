"""Loaded market data cached on disk: repeated backtests skip reading and validating bars.

`marketdata.load` spends seconds reading a Parquet file and validating and adjusting every
symbol; a sweep, a walk-forward or a parity replay repeats that with the same arguments.
A `DataCache` keeps the result (the validated, adjusted bars plus the problems found), keyed
by a SHA-256 of everything that determines it:

* the source's content: the Parquet file's bytes, every CSV file's name and bytes (the
  demo source is a function of the code alone); yfinance loads are never cached (an
  answer depends on the network and the time of asking);
* the resolved source path (it is part of the result's label), the symbols asked for, the
  start and end days;
* the code: the source text of the marketdata modules that read, validate and adjust.

Layout: ``ROOT/<key>.parquet``, one file per load: a long table (symbol, date, fields) with
the problems, label and symbol order in its metadata. Written to a temporary file and
`os.replace`d into place, so a reader sees a whole entry or none; anything unreadable is a
miss. Bounded by `max_bytes`: after each write the least recently used entries (by mtime, a
hit touches its file) are removed down to the bound.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

DATA_KEY_FORMAT = "tradeship-data-v1"  # bump when the key or the entry layout changes
DEFAULT_MAX_BYTES = 2 * 1024**3
ENTRY_SUFFIX = ".parquet"
TMP_PREFIX = ".tmp-"
META_KEY = b"tradeship"
# the modules whose code determines a load's result (their source text is hashed)
CODE_MODULES = (
    "load", "validate", "adjust", "parquet_source", "csv_source", "demo", "calendar", "errors",
)  # fmt: skip

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """tradeship's cache folder: $TRADESHIP_CACHE_DIR, else $XDG_CACHE_HOME/tradeship, else
    ~/.cache/tradeship. The one place the rule lives, below every layer that needs it."""
    configured = os.environ.get("TRADESHIP_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "tradeship"


class LoadedData(NamedTuple):
    """What a load produced, before it is logged and wrapped into `MarketData`."""

    bars: dict[str, pd.DataFrame]
    problems: dict[str, str]
    source: str
    synthetic: bool


@functools.cache
def code_version() -> str | None:
    """SHA-256 of the marketdata modules' source; None when it cannot be read (no caching)."""
    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parent
    for name in CODE_MODULES:
        try:
            digest.update(name.encode() + b"\0" + (folder / f"{name}.py").read_bytes())
        except OSError:
            return None
    return digest.hexdigest()


def _file_digest(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def source_fingerprint(kind: str, location: Path | None) -> bytes | None:
    """The content a source's bars come from; None for a source that is never cached."""
    if kind == "demo":
        return b"demo"
    if kind == "parquet" and location is not None:
        return _file_digest(location)
    if kind == "csv" and location is not None:
        digest = hashlib.sha256()
        for path in sorted(p for p in location.iterdir() if p.is_file()):
            digest.update(path.name.encode("utf-8") + b"\0" + _file_digest(path))
        return digest.digest()
    return None


def _day(value: pd.Timestamp | None) -> str:
    return "none" if value is None else pd.Timestamp(value).isoformat()


def _disk_bytes(stat: os.stat_result) -> int:
    blocks = getattr(stat, "st_blocks", None)
    return max(int(stat.st_size), int(blocks) * 512 if blocks is not None else 0)


class DataCache:
    """Loaded bars on disk under `root`, at most ~`max_bytes` (see the module docstring)."""

    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if int(max_bytes) < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.root = Path(root).expanduser()
        self.max_bytes = int(max_bytes)
        self._warned = False

    @classmethod
    def default(cls, max_bytes: int = DEFAULT_MAX_BYTES) -> DataCache:
        """The cache in ``cache_root() / "data"``."""
        return cls(cache_root() / "data", max_bytes)

    def __repr__(self) -> str:
        return f"DataCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    def key(
        self,
        kind: str,
        location: Path | None,
        symbols: list[str] | None,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
    ) -> str | None:
        """The hex key of a load, or None when that load is not cacheable."""
        version = code_version()
        content = source_fingerprint(kind, location)
        if version is None or content is None:
            return None
        digest = hashlib.sha256()

        def field(tag: str, payload: bytes) -> None:
            digest.update(tag.encode() + b"\0" + len(payload).to_bytes(8, "little") + payload)

        field("format", DATA_KEY_FORMAT.encode())
        field("code", version.encode())
        field("kind", kind.encode())
        field("location", str(location).encode("utf-8"))
        field("content", content)
        field("symbols", json.dumps(symbols).encode("utf-8"))
        field("start", _day(start).encode())
        field("end", _day(end).encode())
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}{ENTRY_SUFFIX}"

    # reading and writing ------------------------------------------------------------------

    def get(self, key: str) -> LoadedData | None:
        """The load stored under `key`; None when missing or unreadable."""
        import pyarrow.parquet as pq

        path = self.path(key)
        try:
            table = pq.read_table(path)
            meta = json.loads(table.schema.metadata[META_KEY])
            if meta["key"] != key:
                return None
            loaded = _from_table(table, meta)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        with suppress(OSError):
            os.utime(path)  # a hit makes the entry recently used
        return loaded

    def put(self, key: str, loaded: LoadedData) -> None:
        """Store `loaded` under `key` atomically. A failed write is logged, never raised."""
        import pyarrow.parquet as pq

        table = _to_table(key, loaded)
        if table is None:
            return
        path = self.path(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".part", dir=self.root)
            os.close(fd)
            try:
                pq.write_table(table, tmp, compression="zstd")
                os.replace(tmp, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            if not self._warned:
                self._warned = True
                log.warning("data cache: cannot write %s; loaded data is not being cached", path)
            return
        self.evict()

    # size ---------------------------------------------------------------------------------

    def _entries(self) -> list[tuple[int, str, int]]:
        """(mtime_ns, path, bytes) of every entry and temporary file."""
        out = []
        try:
            items = list(os.scandir(self.root))
        except OSError:
            return out
        for item in items:
            if item.name.endswith(ENTRY_SUFFIX) or item.name.startswith(TMP_PREFIX):
                with suppress(OSError):
                    stat = item.stat()
                    out.append((stat.st_mtime_ns, item.path, _disk_bytes(stat)))
        return out

    def evict(self) -> int:
        """Remove least recently used entries until under the bound; returns how many."""
        entries = sorted(e for e in self._entries() if not Path(e[1]).name.startswith(TMP_PREFIX))
        total = sum(size for _, _, size in self._entries())
        removed = 0
        for _, path, size in entries:
            if total <= self.max_bytes:
                break
            with suppress(OSError):
                os.unlink(path)
                removed += 1
                total -= size
        return removed

    def info(self) -> dict:
        """path, entries, bytes (disk use) and max_bytes."""
        entries = self._entries()
        return {
            "path": str(self.root),
            "entries": sum(1 for e in entries if e[1].endswith(ENTRY_SUFFIX)),
            "bytes": sum(size for _, _, size in entries),
            "max_bytes": self.max_bytes,
        }

    def clear(self) -> int:
        """Remove every entry (and temporary file); returns the number of entries removed."""
        removed = 0
        for _, path, _ in self._entries():
            with suppress(OSError):
                os.unlink(path)
                removed += path.endswith(ENTRY_SUFFIX)
        return removed


def _to_table(key: str, loaded: LoadedData):
    """One long Arrow table of every symbol's bars; None when the frames cannot share one."""
    import pyarrow as pa

    symbols = list(loaded.bars)
    frames = [loaded.bars[s] for s in symbols]
    if not frames:
        return None
    columns = list(frames[0].columns)
    index = frames[0].index
    if not isinstance(index, pd.DatetimeIndex) or any(
        list(f.columns) != columns
        or not isinstance(f.index, pd.DatetimeIndex)
        or f.index.dtype != index.dtype
        or f.index.name != index.name
        or any(f[c].dtype != np.float64 for c in columns)
        for f in frames
    ):
        return None  # only the shape every source produces today is stored
    dates = np.concatenate([f.index.asi8 for f in frames])
    arrays = {"date": pa.array(dates, type=pa.int64())}
    for position in range(len(columns)):
        values = np.concatenate([f.iloc[:, position].to_numpy() for f in frames])
        arrays[f"c{position}"] = pa.array(values, type=pa.float64())
    meta = {
        "key": key,
        "symbols": symbols,
        "rows": [len(f) for f in frames],
        "columns": [str(c) for c in columns],
        "index_name": index.name,
        "index_dtype": str(index.dtype),
        "problems": loaded.problems,
        "source": loaded.source,
        "synthetic": bool(loaded.synthetic),
    }
    table = pa.table(arrays)
    return table.replace_schema_metadata({META_KEY: json.dumps(meta).encode("utf-8")})


def _from_table(table, meta: dict) -> LoadedData:
    rows = [int(n) for n in meta["rows"]]
    ends = np.cumsum(rows)
    if table.num_rows != (int(ends[-1]) if rows else 0):
        raise ValueError("entry rows do not add up")
    dates = table.column("date").to_numpy()
    values = [table.column(f"c{i}").to_numpy() for i in range(len(meta["columns"]))]
    dtype = np.dtype(meta["index_dtype"]) if meta["index_dtype"].startswith("datetime64") else None
    bars: dict[str, pd.DataFrame] = {}
    start = 0
    for symbol, end in zip(meta["symbols"], ends, strict=True):
        if dtype is not None:
            index = pd.DatetimeIndex(dates[start:end].view(dtype), name=meta["index_name"])
        else:
            unit_tz = pd.DatetimeTZDtype.construct_from_string(meta["index_dtype"])
            index = (
                pd.DatetimeIndex(
                    dates[start:end].view(f"datetime64[{unit_tz.unit}]"), name=meta["index_name"]
                )
                .tz_localize("UTC")
                .tz_convert(unit_tz.tz)
            )
        bars[symbol] = pd.DataFrame(
            {c: v[start:end].copy() for c, v in zip(meta["columns"], values, strict=True)},
            index=index,
        )
        start = int(end)
    return LoadedData(bars, dict(meta["problems"]), str(meta["source"]), bool(meta["synthetic"]))
