"""One entry point, ``load(source, symbols, start, end)``, for every data source.

Why one function: strategies, backtests and the live runner must see identical
bars whatever the origin, so every source goes through the same pipeline:
read raw bars -> ``validate_bars`` (reject or repair, see marketdata.validate)
-> ``adjust_bars`` (yfinance auto_adjust convention) -> clip to [start, end].
A rejected symbol lands in ``MarketData.problems`` and the others still load;
``DataError`` is raised only when nothing loads, the source itself is unusable,
or yfinance answers incompletely (see marketdata.yahoo).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pandas as pd

from marketdata.adjust import adjust_bars
from marketdata.cache import DataCache, LoadedData
from marketdata.calendar import calendar_day
from marketdata.errors import DataError
from marketdata.validate import validate_bars

LOAD_SOURCE_FORMS = "'demo', 'parquet:PATH', 'csv:DIR' or 'yfinance'"
# The module that reads each kind of source, imported on first use only: an exported
# strategy carries the readers of the sources it is exported for, not all four.
SOURCE_MODULES = {
    "csv": "marketdata.csv_source",
    "demo": "marketdata.demo",
    "parquet": "marketdata.parquet_source",
    "yfinance": "marketdata.yahoo",
}


class SourceSpec(NamedTuple):
    """A parsed ``source`` string: kind is demo | parquet | csv | yfinance."""

    kind: str
    location: str | None


@dataclass(frozen=True, repr=False)
class MarketData:
    """Validated, adjusted daily bars per symbol, plus what was rejected or repaired.

    ``problems`` maps a symbol (or a file name) to a message; a key that is also
    in ``bars`` was repaired and loaded, any other key was rejected.
    """

    bars: dict[str, pd.DataFrame]
    problems: dict[str, str]
    source: str
    synthetic: bool

    @property
    def symbols(self) -> list[str]:
        """Loaded symbols, sorted."""
        return list(self.bars)

    def __repr__(self) -> str:
        span = ""
        if self.bars:
            lo = min(f.index[0] for f in self.bars.values())
            hi = max(f.index[-1] for f in self.bars.values())
            span = f", {lo.date()}..{hi.date()}"
        return (
            f"MarketData(source={self.source!r}, symbols={len(self.bars)}{span}, "
            f"problems={len(self.problems)}, synthetic={self.synthetic})"
        )


def source_reader(kind: str) -> ModuleType:
    """The module reading `kind` sources; DataError if this installation left it out."""
    name = SOURCE_MODULES[kind]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise DataError(str(exc)) from None


def parse_source(source: str) -> SourceSpec:
    """Parse and check the form of a source string (the path is not checked here)."""
    if not isinstance(source, str) or not source.strip():
        raise DataError(f"empty data source; use {LOAD_SOURCE_FORMS}")
    text = source.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind in ("demo", "yfinance") and not rest.strip():
        return SourceSpec(kind, None)
    if kind in ("parquet", "csv") and sep:
        if not rest.strip():
            raise DataError(f"data source {source!r} needs a path after '{kind}:'")
        return SourceSpec(kind, rest.strip())
    raise DataError(f"unknown data source {source!r}; use {LOAD_SOURCE_FORMS}")


def _load_day(value: Any, name: str) -> pd.Timestamp | None:
    """Accept None, 'YYYY-MM-DD', date/datetime or Timestamp; return a midnight Timestamp."""
    if value is None:
        return None
    if not isinstance(value, (str, dt.date, pd.Timestamp)):
        raise DataError(f"{name}={value!r}: expected None, 'YYYY-MM-DD', a date or a Timestamp")
    try:
        day = calendar_day(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name}={value!r} is not a date: {exc}") from exc
    if pd.isna(day):
        raise DataError(f"{name}={value!r} is not a date")
    return day


def _load_symbols(symbols: Sequence[str] | None) -> list[str] | None:
    """Upper-case, strip and de-duplicate (keeping order); a bare string is one symbol."""
    if symbols is None:
        return None
    if isinstance(symbols, str):
        symbols = [symbols]
    out: list[str] = []
    for sym in symbols:
        if not isinstance(sym, str) or not sym.strip():
            raise DataError(f"invalid symbol {sym!r}")
        norm = sym.strip().upper()
        if norm not in out:
            out.append(norm)
    if not out:
        raise DataError("empty symbol list; pass None for every symbol of the source")
    return out


def _load_existing(location: str, kind: str) -> Path:
    path = Path(location).expanduser()
    if kind == "csv" and not path.is_dir():
        raise DataError(f"CSV source folder not found: {path}")
    if kind == "parquet" and not path.exists():
        raise DataError(f"Parquet source file not found: {path}")
    return path.resolve()


def load(
    source: str,
    symbols: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    *,
    cache_dir: str | Path | None = None,
    cache: DataCache | None = None,
) -> MarketData:
    """Load validated, split/dividend-adjusted daily bars for ``symbols`` in [start, end].

    ``symbols=None`` means every symbol of the source (not allowed for yfinance).
    Unknown or rejected symbols go to ``problems``; ``DataError`` if nothing loads.
    For yfinance an empty, partial or stale answer raises ``DataError`` naming the
    symbols instead (a download gap must never pass silently).
    ``cache_dir`` is used by yfinance only (default ~/.cache/tradeship/yfinance).
    ``cache``: a `marketdata.cache.DataCache` to reuse an identical earlier load from
    (same source content, symbols, range and code; see marketdata.cache); None: read.
    """
    spec = parse_source(source)
    first, last = _load_day(start, "start"), _load_day(end, "end")
    if first is not None and last is not None and first > last:
        raise DataError(f"start {first.date()} is after end {last.date()}")
    wanted = _load_symbols(symbols)

    key = None
    if cache is not None and spec.kind in ("demo", "parquet", "csv"):
        where = None if spec.kind == "demo" else _load_existing(spec.location or "", spec.kind)
        key = cache.key(spec.kind, where, wanted, first, last)
    hit = cache.get(key) if cache is not None and key is not None else None
    if hit is None:
        loaded = _read_checked(spec, wanted, first, last, cache_dir)
        if cache is not None and key is not None and loaded.bars:
            cache.put(key, loaded)
    else:
        loaded = hit
    bars, problems, label, synthetic = loaded
    if problems:
        log = logging.getLogger("tradeship.marketdata")
        for sym, message in problems.items():
            # Rejections are warnings; repairs of loaded symbols are informational.
            log.log(logging.INFO if sym in bars else logging.WARNING, "%s", message)
    if not bars:
        shown = "; ".join(list(problems.values())[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataError(
            f"nothing loaded from {label}: {shown or 'the source has no symbols'}{more}",
            symbols=list(problems),
        )
    return MarketData(bars=bars, problems=problems, source=label, synthetic=synthetic)


def _read_checked(
    spec: SourceSpec,
    wanted: list[str] | None,
    first: pd.Timestamp | None,
    last: pd.Timestamp | None,
    cache_dir: str | Path | None,
) -> LoadedData:
    """Read, validate, adjust and clip: the work `load` caches."""
    problems: dict[str, str] = {}
    raw: dict[str, tuple[pd.DataFrame, str]] = {}
    synthetic = False
    if spec.kind == "demo":
        label, synthetic = "demo (synthetic)", True
        everything = source_reader("demo").demo_bars()
        raw = {s: (f, "") for s, f in everything.items() if wanted is None or s in wanted}
    elif spec.kind == "parquet":
        path = _load_existing(spec.location or "", "parquet")
        label = f"parquet:{path}"
        raw, problems = source_reader("parquet").read_parquet_source(path, wanted)
    elif spec.kind == "csv":
        path = _load_existing(spec.location or "", "csv")
        label = f"csv:{path}"
        raw, problems = source_reader("csv").read_csv_source(path, wanted)
    else:
        label = "yfinance"
        if wanted is None:
            raise DataError(
                "yfinance needs symbols=[...]: it cannot list every ticker; "
                "pass the tickers to download"
            )
        fetched = source_reader("yfinance").fetch_yahoo(wanted, first, last, cache_dir=cache_dir)
        raw = {s: (f, "yfinance") for s, f in fetched.items()}

    bars: dict[str, pd.DataFrame] = {}
    for sym in sorted(raw):
        frame, origin = raw[sym]
        try:
            clean, note = validate_bars(sym, frame, origin=origin)
        except DataError as exc:
            problems[sym] = "; ".join(filter(None, [problems.get(sym), str(exc)]))
            continue
        if note:
            problems[sym] = "; ".join(filter(None, [problems.get(sym), note]))
        adjusted = adjust_bars(clean)
        lo = first if first is not None else adjusted.index[0]
        hi = last if last is not None else adjusted.index[-1]
        window = adjusted.loc[(adjusted.index >= lo) & (adjusted.index <= hi)]
        if window.empty:
            problems[sym] = "; ".join(
                filter(
                    None,
                    [
                        problems.get(sym),
                        f"{sym}: no bars between {lo.date()} and {hi.date()} (data covers "
                        f"{adjusted.index[0].date()}..{adjusted.index[-1].date()})",
                    ],
                )
            )
            continue
        bars[sym] = window

    for sym in wanted or []:
        if sym not in raw and sym not in problems:
            problems[sym] = f"{sym}: not found in {label}"

    return LoadedData(bars, dict(sorted(problems.items())), label, synthetic)
