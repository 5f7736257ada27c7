"""Validation of one symbol's daily bars, shared by every source.

Input: a frame with columns ``open, high, low, close, volume`` (plus optional
``adj_close`` and ``split``) indexed by dates in any form. Output: the same
columns as float64 on a sorted, unique, tz-naive midnight ``DatetimeIndex``
named "date", plus a note describing any repairs.

The whole history handed in is checked, independent of the requested window, so
a given file is accepted or rejected the same way for every window.

Rejections (raise ``DataError``; the symbol goes to ``problems``, others load):
  * missing required column, no rows, unparseable or missing date
  * non-numeric value, NaN in a row that has other values
  * two rows for the same date with DIFFERENT values
  * non-positive open/high/low/close/adj_close/split, negative volume
  * high < low (e.g. ``AAPL 2020-03-02: high 10.0 < low 11.0``)
  (unreadable files are rejected by the readers before they get here)

Repairs (the symbol loads; a note naming what changed goes to ``problems``):
  * dates not ascending -> sorted
  * exact duplicate rows (same date, same values) -> one kept
  * rows where every value is missing (Yahoo "null" rows) -> dropped
  * open or close outside [low, high] -> high/low widened to include them
  * rows on dates that are not NYSE sessions (weekends, holidays) -> dropped
  * times of day -> dropped (daily bars are labelled by session date);
    tz-aware dates are first converted to New York time

Legal as-is: volume 0 (halted or very thin days occur in real data).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from marketdata.calendar import CALENDAR_TZ, nyse_sessions
from marketdata.errors import DataError

VALIDATE_REQUIRED = ("open", "high", "low", "close", "volume")
VALIDATE_OPTIONAL = ("adj_close", "split")
VALIDATE_POSITIVE = ("open", "high", "low", "close", "adj_close", "split")


def _validate_fmt(value: Any) -> str:
    """Render a cell for a message: floats as repr (10.0), dates as YYYY-MM-DD."""
    if isinstance(value, pd.Timestamp):
        return str(value.date())
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return repr(value)


def _validate_more(count: int) -> str:
    return f" (and {count - 1} more row(s))" if count > 1 else ""


def _validate_dates(symbol: str, index: pd.Index, where: str, notes: list[str]) -> pd.DatetimeIndex:
    """Parse the index into tz-naive midnight dates, rejecting what cannot be parsed."""
    if isinstance(index, pd.DatetimeIndex):
        parsed = index
    else:
        raw = pd.Index(index)
        try:
            parsed = pd.DatetimeIndex(pd.to_datetime(raw, format="ISO8601", errors="coerce"))
        except (ValueError, TypeError):
            parsed = pd.DatetimeIndex(
                pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
            )
        bad = np.flatnonzero(np.asarray(parsed.isna()))
        if len(bad):
            first = bad[0]
            value = raw[first]
            what = "missing date" if pd.isna(value) else f"unparseable date {value!r}"
            raise DataError(
                f"{symbol}: {what} at data row {first + 1}{_validate_more(len(bad))}{where}",
                symbols=[symbol],
            )
    if parsed.isna().any():
        raise DataError(f"{symbol}: missing date in index{where}", symbols=[symbol])
    if parsed.tz is not None:
        parsed = parsed.tz_convert(CALENDAR_TZ).tz_localize(None)
    normalized = parsed.normalize()
    if not normalized.equals(parsed):
        notes.append("times of day dropped from dates")
    return pd.DatetimeIndex(normalized.as_unit("ns"), name="date")


def validate_bars(
    symbol: str, frame: pd.DataFrame, *, origin: str = ""
) -> tuple[pd.DataFrame, str | None]:
    """Check and repair one symbol's bars; return (clean frame, repair note or None).

    ``origin`` (e.g. a file name) is appended to messages so the user can find
    the bad input. Raises ``DataError`` naming symbol and date on rejection.
    """
    where = f" (in {origin})" if origin else ""
    notes: list[str] = []

    missing = [c for c in VALIDATE_REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"{symbol}: missing column(s) {', '.join(missing)}{where}", symbols=[symbol]
        )
    cols = [c for c in VALIDATE_REQUIRED + VALIDATE_OPTIONAL if c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{symbol}: no rows{where}", symbols=[symbol])

    index = _validate_dates(symbol, frame.index, where, notes)
    data: dict[str, np.ndarray] = {}
    for col in cols:
        raw = frame[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero(np.asarray(num.isna() & raw.notna()))
        if len(bad):
            pos = bad[0]
            raise DataError(
                f"{symbol} {_validate_fmt(index[pos])}: non-numeric {col} "
                f"{raw.iloc[pos]!r}{_validate_more(len(bad))}{where}",
                symbols=[symbol],
            )
        data[col] = np.asarray(num, dtype="float64")
    df = pd.DataFrame(data, index=index)

    empty = df[list(VALIDATE_REQUIRED)].isna().all(axis=1).to_numpy()
    if empty.any():
        first = df.index[np.flatnonzero(empty)[0]]
        df = df.loc[~empty]
        notes.append(
            f"dropped {int(empty.sum())} row(s) with every value missing "
            f"(first {_validate_fmt(first)})"
        )
        if df.empty:
            raise DataError(
                f"{symbol}: every row is empty (all values missing){where}", symbols=[symbol]
            )

    if not df.index.is_monotonic_increasing:
        diffs = np.flatnonzero(np.diff(df.index.asi8) < 0)
        first = df.index[diffs[0] + 1]
        df = df.sort_index(kind="stable")
        notes.append(f"dates not in ascending order (first at {_validate_fmt(first)}); sorted")

    if df.index.has_duplicates:
        exact = pd.DataFrame(df.to_numpy(), index=df.index).reset_index().duplicated()
        exact_mask = exact.to_numpy()
        if exact_mask.any():
            first = df.index[np.flatnonzero(exact_mask)[0]]
            df = df.loc[~exact_mask]
            notes.append(
                f"dropped {int(exact_mask.sum())} exact duplicate row(s) "
                f"(first {_validate_fmt(first)})"
            )
        if df.index.has_duplicates:
            dup = df.index[df.index.duplicated()]
            raise DataError(
                f"{symbol} {_validate_fmt(dup[0])}: duplicate date with different values"
                f"{_validate_more(len(dup.unique()))}{where}",
                symbols=[symbol],
            )

    nan_rows = np.flatnonzero(df.isna().any(axis=1).to_numpy())
    if len(nan_rows):
        pos = nan_rows[0]
        nan_cols = [c for c in cols if np.isnan(df[c].iloc[pos])]
        raise DataError(
            f"{symbol} {_validate_fmt(df.index[pos])}: NaN in {', '.join(nan_cols)}"
            f"{_validate_more(len(nan_rows))}{where}",
            symbols=[symbol],
        )

    for col in VALIDATE_POSITIVE:
        if col not in df.columns:
            continue
        bad = np.flatnonzero(df[col].to_numpy() <= 0)
        if len(bad):
            pos = bad[0]
            raise DataError(
                f"{symbol} {_validate_fmt(df.index[pos])}: non-positive {col} "
                f"{_validate_fmt(df[col].iloc[pos])}{_validate_more(len(bad))}{where}",
                symbols=[symbol],
            )
    bad = np.flatnonzero(df["volume"].to_numpy() < 0)
    if len(bad):
        pos = bad[0]
        raise DataError(
            f"{symbol} {_validate_fmt(df.index[pos])}: negative volume "
            f"{_validate_fmt(df['volume'].iloc[pos])}{_validate_more(len(bad))}{where}",
            symbols=[symbol],
        )

    high, low = df["high"].to_numpy(), df["low"].to_numpy()
    bad = np.flatnonzero(high < low)
    if len(bad):
        pos = bad[0]
        raise DataError(
            f"{symbol} {_validate_fmt(df.index[pos])}: high {_validate_fmt(high[pos])} < "
            f"low {_validate_fmt(low[pos])}{_validate_more(len(bad))}{where}",
            symbols=[symbol],
        )

    opn, close = df["open"].to_numpy(), df["close"].to_numpy()
    new_high = np.maximum(high, np.maximum(opn, close))
    new_low = np.minimum(low, np.minimum(opn, close))
    widened = (new_high != high) | (new_low != low)
    if widened.any():
        first = df.index[np.flatnonzero(widened)[0]]
        df["high"] = new_high
        df["low"] = new_low
        notes.append(
            f"{int(widened.sum())} row(s) with open/close outside [low, high] "
            f"(first {_validate_fmt(first)}); high/low widened to include them"
        )

    sessions = nyse_sessions(df.index[0], df.index[-1])
    off = ~df.index.isin(sessions)
    if off.any():
        first = df.index[np.flatnonzero(off)[0]]
        df = df.loc[~off]
        notes.append(
            f"dropped {int(off.sum())} row(s) on dates that are not NYSE sessions "
            f"(first {_validate_fmt(first)}, a {first.day_name()})"
        )
        if df.empty:
            raise DataError(f"{symbol}: no rows on NYSE session dates{where}", symbols=[symbol])

    note = f"{symbol}: repaired{where}: " + "; ".join(notes) if notes else None
    return df, note
