"""Reader for a folder with one CSV per symbol, in either of two layouts.

* Yahoo download: ``Date,Open,High,Low,Close,Adj Close,Volume``, file ``SYMBOL.csv``
  (also accepted without ``Adj Close``: then prices are taken as already adjusted).
* The vendor layout of ../shared/data/raw_samples:
  ``timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient``,
  file ``DA-SYMBOL-T-YYYY-MM-DD.csv`` (``DA-BF.B-T-2021-04-21.csv`` -> ``BF.B``).

The layout is detected from the header, not the file name. A file that is not
a price CSV (e.g. the 18-byte ``{ Error Message }`` body the vendor saved for
BF.B) is reported by file name in ``problems``; the other files still load.
If several files map to one symbol, the newest snapshot (by name) is used.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from marketdata.errors import DataError

CSV_VENDOR_NAME = re.compile(r"^DA-(?P<symbol>.+)-T-(?P<stamp>\d{4}-\d{2}-\d{2})$", re.IGNORECASE)
CSV_LAYOUTS = (
    # (layout name, date column, required lower-case header names, renames)
    (
        "vendor",
        "timestamp",
        ("timestamp", "open", "high", "low", "close", "adjusted_close", "volume"),
        {"adjusted_close": "adj_close", "split_coefficient": "split"},
    ),
    (
        "yahoo",
        "date",
        ("date", "open", "high", "low", "close", "adj close", "volume"),
        {"adj close": "adj_close"},
    ),
    ("yahoo-adjusted", "date", ("date", "open", "high", "low", "close", "volume"), {}),
)
CSV_KEEP = ("open", "high", "low", "close", "volume", "adj_close", "split")


def csv_symbol_for(path: Path) -> tuple[str, str]:
    """(symbol, snapshot stamp) from a file name; the stamp is "" for ``SYMBOL.csv``."""
    match = CSV_VENDOR_NAME.match(path.stem)
    if match:
        return match.group("symbol").upper(), match.group("stamp")
    return path.stem.strip().upper(), ""


def _csv_read_one(path: Path, symbol: str) -> pd.DataFrame:
    """Read one file into raw bars indexed by the date strings; DataError names the file."""
    name = path.name
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{symbol}: {name} is unreadable: not UTF-8 text", symbols=[symbol]
        ) from exc
    except OSError as exc:
        raise DataError(f"{symbol}: cannot read {name}: {exc}", symbols=[symbol]) from exc
    if not header.strip():
        raise DataError(f"{symbol}: {name} is empty, not a price CSV", symbols=[symbol])
    names = [h.strip().strip('"').lower() for h in header.rstrip("\r\n").split(",")]
    layout = next((lay for lay in CSV_LAYOUTS if set(lay[2]) <= set(names)), None)
    if layout is None:
        raise DataError(
            f"{symbol}: {name} is not a price CSV (first line {header.strip()[:60]!r}); "
            "expected a header 'Date,Open,High,Low,Close,Adj Close,Volume' or "
            "'timestamp,open,high,low,close,adjusted_close,volume,...'",
            symbols=[symbol],
        )
    _, date_col, _, renames = layout
    try:
        with warnings.catch_warnings():
            # index_col=False: a too-long first row must not silently become an index;
            # pandas then only warns about the extra fields, so make that an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                path, encoding="utf-8-sig", skipinitialspace=True, dtype=str, index_col=False
            )
    except (
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
    ) as exc:
        raise DataError(f"{symbol}: {name} is malformed: {exc}", symbols=[symbol]) from exc
    except OSError as exc:
        raise DataError(f"{symbol}: cannot read {name}: {exc}", symbols=[symbol]) from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    df = df.rename(columns=renames)
    frame = df[[c for c in CSV_KEEP if c in df.columns]]
    frame.index = pd.Index(df[date_col].to_numpy())
    return frame


def read_csv_source(
    directory: Path, symbols: list[str] | None
) -> tuple[dict[str, tuple[pd.DataFrame, str]], dict[str, str]]:
    """Return (symbol -> (raw bars, file name), problems) for the CSVs in ``directory``."""
    try:
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    except OSError as exc:
        raise DataError(f"cannot list CSV folder {directory}: {exc}") from exc
    by_symbol: dict[str, list[tuple[str, Path]]] = {}
    for path in files:
        sym, stamp = csv_symbol_for(path)
        by_symbol.setdefault(sym, []).append((stamp, path))

    wanted = set(symbols) if symbols is not None else None
    out: dict[str, tuple[pd.DataFrame, str]] = {}
    problems: dict[str, str] = {}
    for sym in sorted(by_symbol):
        if wanted is not None and sym not in wanted:
            continue
        candidates = sorted(by_symbol[sym])
        path = candidates[-1][1]
        if len(candidates) > 1:
            others = ", ".join(p.name for _, p in candidates[:-1])
            problems[sym] = f"{sym}: several files; used {path.name}, ignored {others}"
        try:
            out[sym] = (_csv_read_one(path, sym), path.name)
        except DataError as exc:
            problems[sym] = "; ".join(filter(None, [problems.get(sym), str(exc)]))
    return out, problems
