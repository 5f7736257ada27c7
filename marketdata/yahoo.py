"""yfinance download with a per-symbol Parquet cache that later runs extend.

Why this shape:
* yfinance swallows errors (rate limits included) and returns EMPTY or all-NaN
  frames instead of raising. So every requested ticker is checked: tickers
  missing from an answer are asked again with exponential backoff (bounded),
  exceptions such as ``YFRateLimitError`` likewise; what is still missing,
  or whose last bar is older than the NYSE session before ``end``, raises
  ``DataError`` naming the symbols. Never a silent gap.
* Calls are batched: symbols needing the same date range go in one
  ``yf.download([...], group_by="ticker", auto_adjust=True, multi_level_index=False)``
  (yfinance returns (ticker, field) columns for several tickers and flat columns
  for one; both are handled).
* Cache: ``<cache_dir>/<SYMBOL>.parquet`` holds the adjusted bars plus the date
  range already asked for. A later run downloads only the missing tail, starting
  at the last cached bar: that one-bar overlap detects a new split/dividend
  (auto-adjusted history is rescaled by Yahoo), in which case the symbol's
  history is downloaded again, since mixing old and new adjustment would corrupt it.
  A request starting before the cached range also re-downloads the symbol.
* Only final bars are used: today's bar counts once the session closed
  (+30 min); yfinance's ``end`` is exclusive, so it is sent as last day + 1.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from marketdata.calendar import (
    CALENDAR_TZ,
    calendar_day,
    is_session,
    nyse_sessions,
    previous_session,
    session_close,
)
from marketdata.errors import DataError

YAHOO_DEFAULT_CACHE_DIR = "~/.cache/tradeship/yfinance"
YAHOO_EARLIEST = "1970-01-02"
YAHOO_BATCH_SIZE = 50
YAHOO_ATTEMPTS = 4
YAHOO_BASE_DELAY = 1.0
YAHOO_MAX_DELAY = 30.0
YAHOO_SETTLE = pd.Timedelta(minutes=30)
YAHOO_OVERLAP_RTOL = 1e-4
YAHOO_FIELDS = ("open", "high", "low", "close", "volume")
YAHOO_META_FROM = b"tradeship.covered_from"
YAHOO_META_TO = b"tradeship.covered_to"


def yahoo_cache_path(cache_dir: str | Path, symbol: str) -> Path:
    """Cache file of one symbol (characters unsafe in file names become "_")."""
    safe = re.sub(r"[^A-Za-z0-9._^=-]", "_", symbol)
    return Path(cache_dir).expanduser() / f"{safe}.parquet"


def yahoo_final_through(now: pd.Timestamp) -> pd.Timestamp:
    """Last session whose daily bar is final at ``now`` (a tz-aware instant)."""
    today = calendar_day(now)
    if is_session(today) and now >= session_close(today) + YAHOO_SETTLE:
        return today
    return previous_session(today)


def _yahoo_read_cache(
    path: Path,
) -> tuple[pd.DataFrame | None, pd.Timestamp | None, pd.Timestamp | None]:
    """(bars, covered_from, covered_to) or (None, None, None) if absent/unusable."""
    if not path.exists():
        return None, None, None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        covered_from = pd.Timestamp(meta[YAHOO_META_FROM].decode())
        covered_to = pd.Timestamp(meta[YAHOO_META_TO].decode())
        frame = table.to_pandas()
        frame = frame[list(YAHOO_FIELDS)].astype("float64")
        frame.index = pd.DatetimeIndex(frame.index, name="date").as_unit("ns")
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        logging.getLogger("tradeship.marketdata").warning(
            "ignoring unusable yfinance cache %s: %s", path, exc
        )
        return None, None, None
    return frame, covered_from, covered_to


def _yahoo_write_cache(
    path: Path, frame: pd.DataFrame, covered_from: pd.Timestamp, covered_to: pd.Timestamp
) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=True)
    meta = dict(table.schema.metadata or {})
    meta[YAHOO_META_FROM] = str(covered_from.date()).encode()
    meta[YAHOO_META_TO] = str(covered_to.date()).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    os.replace(tmp, path)


def _yahoo_tidy(frame: pd.DataFrame) -> pd.DataFrame | None:
    """One ticker's answer -> float OHLCV on tz-naive dates; None if it holds no bars."""
    cols = {str(c).strip().lower(): c for c in frame.columns}
    if any(f not in cols for f in YAHOO_FIELDS):
        return None
    out = pd.DataFrame({f: pd.to_numeric(frame[cols[f]], errors="coerce") for f in YAHOO_FIELDS})
    out = out.loc[~out.isna().all(axis=1)]
    if out.empty:
        return None
    index = pd.DatetimeIndex(out.index)
    if index.tz is not None:
        index = index.tz_convert(CALENDAR_TZ).tz_localize(None)
    out.index = pd.DatetimeIndex(index.normalize().as_unit("ns"), name="date")
    return out.astype("float64")


def _yahoo_split_answer(data: Any, tickers: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Map a yf.download answer to ticker -> bars, keeping only tickers that have bars."""
    if not isinstance(data, pd.DataFrame) or data.empty:
        return {}
    found: dict[str, pd.DataFrame] = {}
    if isinstance(data.columns, pd.MultiIndex):
        wanted = {t.upper(): t for t in tickers}
        for level in range(data.columns.nlevels):
            values = data.columns.get_level_values(level).unique()
            matches = [v for v in values if str(v).upper() in wanted]
            if not matches:
                continue
            for value in matches:
                bars = _yahoo_tidy(data.xs(value, axis=1, level=level))
                if bars is not None:
                    found[wanted[str(value).upper()]] = bars
            break
    elif len(tickers) == 1:
        bars = _yahoo_tidy(data)
        if bars is not None:
            found[tickers[0]] = bars
    else:
        logging.getLogger("tradeship.marketdata").warning(
            "yfinance answered flat columns for %d tickers; cannot attribute them", len(tickers)
        )
    return found


def _yahoo_download_batch(
    download: Callable[..., Any],
    tickers: list[str],
    first: pd.Timestamp,
    last: pd.Timestamp,
    *,
    sleep: Callable[[float], Any],
    attempts: int,
    base_delay: float,
) -> tuple[dict[str, pd.DataFrame], list[str], BaseException | None]:
    """Download [first, last] for ``tickers``, re-asking for missing ones with backoff.

    Returns (bars per ticker that answered, tickers still missing, last exception).
    """
    log = logging.getLogger("tradeship.marketdata")
    got: dict[str, pd.DataFrame] = {}
    pending = list(tickers)
    last_exc: BaseException | None = None
    for attempt in range(max(1, attempts)):
        if attempt:
            delay = min(base_delay * 2 ** (attempt - 1), YAHOO_MAX_DELAY)
            log.info("yfinance: retry %d for %s in %.1fs", attempt, ", ".join(pending), delay)
            sleep(delay)
        try:
            data = download(
                list(pending),
                start=str(first.date()),
                end=str((last + pd.Timedelta(days=1)).date()),  # yfinance end is exclusive
                auto_adjust=True,
                multi_level_index=False,
                group_by="ticker",
                actions=False,
                progress=False,
            )
        except Exception as exc:  # network stacks vary; YFRateLimitError is one of them
            last_exc = exc
            log.warning("yfinance download failed (%s): %r", ", ".join(pending), exc)
            continue
        for ticker, bars in _yahoo_split_answer(data, pending).items():
            bars = bars.loc[(bars.index >= first) & (bars.index <= last)]
            if not bars.empty:
                got[ticker] = bars
        pending = [t for t in pending if t not in got]
        if not pending:
            break
    return got, pending, last_exc


def fetch_yahoo(
    symbols: Sequence[str],
    start: Any = None,
    end: Any = None,
    *,
    cache_dir: str | Path | None = None,
    download: Callable[..., Any] | None = None,
    sleep: Callable[[float], Any] | None = None,
    now: Any = None,
    attempts: int = YAHOO_ATTEMPTS,
    base_delay: float = YAHOO_BASE_DELAY,
    batch_size: int = YAHOO_BATCH_SIZE,
) -> dict[str, pd.DataFrame]:
    """Adjusted OHLCV for every symbol over [start, end] (inclusive), via the cache.

    ``download``/``sleep``/``now`` default to ``yfinance.download``, ``time.sleep`` and
    the current time; they are parameters so tests run offline and fast.
    Raises ``DataError`` naming every symbol whose answer is empty, missing or stale
    (symbols that did load are cached before raising).
    """
    if not symbols:
        raise DataError(
            "yfinance needs an explicit list of symbols (it cannot enumerate a universe)"
        )
    if download is None:
        import yfinance as yf

        download = yf.download
    sleep = time.sleep if sleep is None else sleep
    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now_ts.tz is None:
        now_ts = now_ts.tz_localize("UTC")
    today = calendar_day(now_ts)
    first = calendar_day(start) if start is not None else pd.Timestamp(YAHOO_EARLIEST)
    last_req = calendar_day(end) if end is not None else today
    last = min(last_req, yahoo_final_through(now_ts))
    names = ", ".join(symbols)
    if last < first:
        raise DataError(
            f"no final daily bars between {first.date()} and {last_req.date()} yet for {names}",
            symbols=list(symbols),
        )
    root = Path(cache_dir if cache_dir is not None else YAHOO_DEFAULT_CACHE_DIR).expanduser()

    merged: dict[str, pd.DataFrame] = {}
    coverage: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    cached: dict[str, tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]] = {}
    changed: set[str] = set()
    # plan: symbol -> (fetch_from, fetch_to, is_tail)
    plan: dict[str, tuple[pd.Timestamp, pd.Timestamp, bool]] = {}
    for sym in symbols:
        frame, cov_from, cov_to = _yahoo_read_cache(yahoo_cache_path(root, sym))
        if (
            frame is not None
            and len(frame)
            and cov_from is not None
            and cov_to is not None
            and (cov_from <= first)
        ):
            cached[sym] = (frame, cov_from, cov_to)
            if cov_to >= last:
                merged[sym] = frame
                coverage[sym] = (cov_from, cov_to)
            elif len(nyse_sessions(cov_to + pd.Timedelta(days=1), last)) == 0:
                merged[sym] = frame  # nothing traded since: no need to ask
                coverage[sym] = (cov_from, last)
                changed.add(sym)
            else:
                plan[sym] = (frame.index[-1], last, True)
        else:
            lo = first if cov_from is None else min(first, cov_from)
            hi = last if cov_to is None else max(last, cov_to)
            plan[sym] = (lo, hi, False)

    failed: dict[str, str] = {}
    while plan:
        groups: dict[tuple[pd.Timestamp, pd.Timestamp], list[str]] = {}
        for sym, (lo, hi, _) in plan.items():
            groups.setdefault((lo, hi), []).append(sym)
        again: dict[str, tuple[pd.Timestamp, pd.Timestamp, bool]] = {}
        for (lo, hi), group in groups.items():
            for i in range(0, len(group), max(1, batch_size)):
                batch = group[i : i + max(1, batch_size)]
                got, missing, exc = _yahoo_download_batch(
                    download, batch, lo, hi, sleep=sleep, attempts=attempts, base_delay=base_delay
                )
                for sym in missing:
                    why = (
                        f"last error: {exc!r}"
                        if exc is not None
                        else "unknown or delisted ticker, or offline/rate-limited"
                    )
                    failed[sym] = (
                        f"no data from yfinance for {lo.date()}..{hi.date()} "
                        f"after {max(1, attempts)} attempt(s) ({why})"
                    )
                for sym, bars in got.items():
                    is_tail = plan[sym][2]
                    changed.add(sym)
                    if not is_tail:
                        merged[sym] = bars
                        coverage[sym] = (lo, hi)
                        continue
                    old, cov_from, _ = cached[sym]
                    anchor = old.index[-1]
                    old_close = float(old["close"].iloc[-1])
                    if (
                        anchor in bars.index
                        and abs(float(bars.loc[anchor, "close"]) / old_close - 1.0)
                        <= YAHOO_OVERLAP_RTOL
                    ):
                        merged[sym] = pd.concat([old.loc[old.index < anchor], bars])
                        coverage[sym] = (cov_from, hi)
                    else:
                        logging.getLogger("tradeship.marketdata").info(
                            "%s: adjustment changed since cached (split/dividend); re-downloading",
                            sym,
                        )
                        again[sym] = (min(first, cov_from), hi, False)
        plan = again

    problems = dict(failed)
    expected = previous_session(min(last_req, today))
    for sym in symbols:
        if sym not in merged:
            continue
        frame = merged[sym]
        window = frame.loc[(frame.index >= first) & (frame.index <= last)]
        cov_from, cov_to = coverage[sym]
        if window.empty:
            problems[sym] = f"no bars from yfinance between {first.date()} and {last.date()}"
        elif window.index[-1] < expected:
            problems[sym] = (
                f"stale data from yfinance: last bar {window.index[-1].date()}, "
                f"expected at least {expected.date()}"
            )
            if cov_to > frame.index[-1]:
                cov_to = frame.index[-1]  # so the next run asks for the tail again
                changed.add(sym)
        if sym in changed:
            _yahoo_write_cache(yahoo_cache_path(root, sym), frame, cov_from, cov_to)

    if problems:
        bad = [s for s in symbols if s in problems]
        detail = "; ".join(f"{s}: {problems[s]}" for s in bad)
        raise DataError(f"yfinance answer incomplete for {', '.join(bad)} -- {detail}", symbols=bad)
    return {
        sym: merged[sym].loc[(merged[sym].index >= first) & (merged[sym].index <= last_req)]
        for sym in symbols
    }
