"""A content-addressed cache of Prophet forecasts on disk: never fit the same window twice.

A forecast is a pure function of its inputs, so an entry is keyed by a SHA-256 of every one
of them: the symbol, the exact window (dates and prices, hashed from their bytes), the
target date, every field of `ProphetSettings` (the fitter included), and the versions of
what fits: Prophet and cmdstanpy for fitter "prophet", numpy and
`strategies.fast_prophet.FAST_FIT_VERSION` for fitter "fast". Change any of them and the
key changes; nothing else changes it (not the Series' name, its index frequency or the
datetime unit pandas chose for it).

Layout: ``ROOT/ab/abcdef....json``, one small JSON file per forecast holding the value as
``float.hex`` (bit-exact, NaN and infinities included) and the key it was written for.

Concurrency: a writer writes a temporary file in the entry's folder and `os.replace`s it
into place, so a reader sees either no file or a whole one. A reader treats a missing,
partial or foreign file as a miss. Two processes writing the same key write the same bytes.

Size: bounded by `max_bytes` of disk use (allocated blocks, not just file lengths). Each
cache keeps a running estimate of its size and scans the folder only when the estimate
passes the bound or every `check_every` writes; a scan evicts the least recently used
entries (by mtime: a hit touches its file) down to 90 % of the bound.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import numpy as np
import pandas as pd

from marketdata.cache import cache_root
from strategies.fast_prophet import FAST_FIT_VERSION
from strategies.forecast import ForecastRequest

KEY_FORMAT = "tradeship-forecast-v1"  # bump when the key or entry layout changes
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_CHECK_EVERY = 500
LOW_WATER = 0.9  # eviction stops at this fraction of max_bytes
ENTRY_SUFFIX = ".json"
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600.0  # a temporary file this old belongs to a writer that died
VERSIONED_LIBRARIES = {"prophet": ("prophet", "cmdstanpy"), "fast": ("numpy",)}

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``cache_root() / "forecasts"`` (TRADESHIP_CACHE_DIR, default ~/.cache/tradeship)."""
    return cache_root() / "forecasts"


@functools.cache
def library_versions(fitter: str = "prophet") -> tuple[tuple[str, str], ...]:
    """Versions of what computes a forecast with `fitter` (read without importing it)."""
    versions = []
    for name in VERSIONED_LIBRARIES.get(fitter, ()):  # an unknown fitter fails at fit time
        try:
            versions.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, "not-installed"))
    if fitter == "fast":
        versions.append(("tradeship-fast-prophet", FAST_FIT_VERSION))
    return tuple(versions)


def _naive_ns(index: pd.DatetimeIndex) -> np.ndarray:
    """Dates as int64 nanoseconds, wall clock, as `prophet_forecast` hands them to Prophet."""
    if index.tz is not None:
        index = index.tz_localize(None)
    return np.asarray(index.as_unit("ns").asi8, dtype="<i8")


def forecast_key(
    request: ForecastRequest, versions: tuple[tuple[str, str], ...] | None = None
) -> str:
    """The hex SHA-256 of everything that determines `request`'s forecast."""
    digest = hashlib.sha256()

    def field(tag: str, payload: bytes) -> None:
        # tag, then a length prefix: no two different inputs hash the same byte stream
        digest.update(tag.encode("utf-8") + b"\0" + len(payload).to_bytes(8, "little"))
        digest.update(payload)

    field("format", KEY_FORMAT.encode())
    if versions is None:
        versions = library_versions(request.settings.fitter)
    for name, version in versions:
        field(f"version:{name}", version.encode("utf-8"))
    field("symbol", str(request.symbol).encode("utf-8"))
    window = request.window
    field("dates", _naive_ns(pd.DatetimeIndex(window.index)).tobytes())
    field("values", np.asarray(window.to_numpy(), dtype="<f8").tobytes())
    target = pd.Timestamp(request.target)
    if target.tzinfo is not None:
        target = target.tz_localize(None)
    field("target", int(target.as_unit("ns").value).to_bytes(8, "little", signed=True))
    settings = request.settings
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        # the type too: Prophet reads weekly_seasonality=True and =1 differently
        field(f"setting:{item.name}", f"{type(value).__qualname__}:{value!r}".encode())
    return digest.hexdigest()


def _disk_bytes(stat: os.stat_result) -> int:
    """Disk space a file takes: its allocated blocks (a 200-byte entry still costs a block)."""
    blocks = getattr(stat, "st_blocks", None)
    return max(int(stat.st_size), int(blocks) * 512 if blocks is not None else 0)


class ForecastCache:
    """Forecasts on disk under `root`, keyed by `forecast_key`, at most ~`max_bytes`."""

    def __init__(
        self,
        root: str | Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        check_every: int = DEFAULT_CHECK_EVERY,
    ) -> None:
        if int(max_bytes) < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if int(check_every) < 1:
            raise ValueError(f"check_every must be at least 1, got {check_every}")
        self.root = Path(root).expanduser()
        self.max_bytes = int(max_bytes)
        self.check_every = int(check_every)
        self._estimate: int | None = None  # bytes on disk as of the last scan, plus writes
        self._writes_since_scan = 0
        self._warned = False

    @classmethod
    def default(cls, max_bytes: int = DEFAULT_MAX_BYTES) -> ForecastCache:
        return cls(default_cache_dir(), max_bytes)

    def __repr__(self) -> str:
        return f"ForecastCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    # keys and paths -----------------------------------------------------------------------

    def key(self, request: ForecastRequest) -> str:
        return forecast_key(request)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{ENTRY_SUFFIX}"

    # reading and writing ------------------------------------------------------------------

    def get(self, request: ForecastRequest) -> float | None:
        """The stored forecast for `request`, or None."""
        return self.get_key(self.key(request))

    def put(self, request: ForecastRequest, value: float) -> str:
        """Store `value` as the forecast for `request`; returns its key."""
        key = self.key(request)
        self.put_key(key, value, request)
        return key

    def get_key(self, key: str) -> float | None:
        """The value stored under `key`; None when missing, partial or unreadable."""
        path = self.path(key)
        try:
            entry = json.loads(path.read_bytes())
            if entry["key"] != key:
                return None
            value = float.fromhex(entry["yhat"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        with suppress(OSError):
            os.utime(path)  # a hit makes the entry recently used
        return value

    def put_key(self, key: str, value: float, request: ForecastRequest | None = None) -> None:
        """Write `value` under `key` atomically. A failed write is logged, never raised."""
        entry = {"key": key, "yhat": float(value).hex(), "value": repr(float(value))}
        if request is not None:  # for whoever reads the files; not part of the lookup
            entry["symbol"] = str(request.symbol)
            entry["target"] = str(pd.Timestamp(request.target).date())
            if len(request.window):
                entry["window_end"] = str(pd.Timestamp(request.window.index[-1]).date())
            entry["window_bars"] = len(request.window)
        data = json.dumps(entry, sort_keys=True).encode("utf-8")
        path = self.path(key)
        for attempt in range(2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".part", dir=path.parent)
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(data)
                    os.replace(tmp, path)
                except BaseException:
                    with suppress(OSError):
                        os.unlink(tmp)
                    raise
                break
            except FileNotFoundError:
                if attempt:  # the folder vanished under us twice (a concurrent clear)
                    self._warn_write(path)
                    return
            except OSError:
                self._warn_write(path)
                return
        self._after_write(path, len(data))

    def _warn_write(self, path: Path) -> None:
        if not self._warned:
            self._warned = True
            log.warning("forecast cache: cannot write %s; forecasts are not being cached", path)

    def _after_write(self, path: Path, size: int) -> None:
        try:
            written = _disk_bytes(os.stat(path))
        except OSError:
            written = size
        self._writes_since_scan += 1
        if self._estimate is not None:
            self._estimate += written
        if (
            self._estimate is None
            or self._estimate > self.max_bytes
            or self._writes_since_scan >= self.check_every
        ):
            self.evict()

    # size ---------------------------------------------------------------------------------

    def _scan(self) -> tuple[list[tuple[int, str, int]], int, int]:
        """(entries as (mtime_ns, path, bytes), total bytes, stale temporary files removed)."""
        entries: list[tuple[int, str, int]] = []
        total = 0
        removed_tmp = 0
        stale_before = time.time() - STALE_TMP_SECONDS
        try:
            shards = [d.path for d in os.scandir(self.root) if d.is_dir() and len(d.name) == 2]
        except OSError:
            return entries, total, removed_tmp
        for shard in shards:
            try:
                files = list(os.scandir(shard))
            except OSError:
                continue
            for item in files:
                try:
                    stat = item.stat()
                except OSError:
                    continue  # removed since the listing
                if item.name.startswith(TMP_PREFIX):
                    if stat.st_mtime < stale_before:
                        with suppress(OSError):
                            os.unlink(item.path)
                            removed_tmp += 1
                            continue
                    total += _disk_bytes(stat)
                elif item.name.endswith(ENTRY_SUFFIX):
                    size = _disk_bytes(stat)
                    entries.append((stat.st_mtime_ns, item.path, size))
                    total += size
        return entries, total, removed_tmp

    def evict(self) -> int:
        """Remove least recently used entries until under the bound; returns how many."""
        entries, total, _ = self._scan()
        removed = 0
        if total > self.max_bytes:
            goal = int(self.max_bytes * LOW_WATER)
            for _, path, size in sorted(entries):
                if total <= goal:
                    break
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass  # another process evicted it first
                except OSError:
                    continue
                else:
                    removed += 1
                total -= size
        self._estimate = total
        self._writes_since_scan = 0
        return removed

    def info(self) -> dict:
        """path, entries, bytes (disk use, temporary files included) and max_bytes."""
        entries, total, _ = self._scan()
        return {
            "path": str(self.root),
            "entries": len(entries),
            "bytes": total,
            "max_bytes": self.max_bytes,
        }

    def clear(self) -> int:
        """Remove every entry (and temporary file); returns the number of entries removed."""
        removed = 0
        try:
            shards = [d.path for d in os.scandir(self.root) if d.is_dir() and len(d.name) == 2]
        except OSError:
            return 0
        for shard in shards:
            with suppress(OSError):
                for item in os.scandir(shard):
                    is_entry = item.name.endswith(ENTRY_SUFFIX) and not item.name.startswith(
                        TMP_PREFIX
                    )
                    if is_entry or item.name.startswith(TMP_PREFIX):
                        try:
                            os.unlink(item.path)
                        except OSError:
                            continue
                        removed += is_entry
            with suppress(OSError):
                os.rmdir(shard)  # only when empty
        self._estimate = 0
        self._writes_since_scan = 0
        return removed
