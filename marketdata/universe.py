"""Which symbols a strategy may pick on each session: index membership as data.

Why: ranking every symbol the price source has lets a 2018 backtest pick names that
joined the S&P 500 only later (lookahead through the universe). A universe is one of

- ``membership:PATH``: a point-in-time file ``ticker,start_date,end_date`` (one row per
  stay in the index; empty ``end_date`` = still a member; a ticker may have several stays);
- ``symbols:A,B,C`` (or ``--symbols`` alone): a plain list, members on every session;
- ``all``: every symbol of the source, on every session (not point-in-time).

All three load into one ``Membership`` with the same ``matrix``/``members_on``/``current``,
so callers never branch on the kind.

Stays are half-open: a ticker is a member from ``start_date`` (inclusive) up to
``end_date`` (exclusive). The shared file is written that way: 503 of its 581 end dates
are the start date of the replacement that joined that day (TSLA joined 2020-12-21,
replacing AIV), HRS ends on the day its new ticker LHX starts, and with an exclusive end
the file gives 495 members on 2005-01-03 and 427 of the price file's 504 symbols on
2018-01-02, as its README says. MKTX (start 2019-07-01) is therefore a member on
2019-07-01 and not on 2019-06-28.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from marketdata.errors import DataError
from marketdata.load import _load_day, _load_symbols, parse_source

UNIVERSE_FORMS = "'membership:PATH', 'symbols:A,B,C' or 'all'"
UNIVERSE_MEMBERSHIP_FILE = "sp500_membership.csv"
UNIVERSE_COLUMNS = ("ticker", "start_date", "end_date")
UNIVERSE_MAX_ERRORS = 5

UniverseKind = Literal["membership", "symbols", "all"]


@dataclass(frozen=True)
class UniverseSpec:
    """A parsed universe rule; ``rule`` is its canonical text (what an export records)."""

    kind: UniverseKind
    path: Path | None = None
    symbols: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        """Canonical text form, parseable again by ``parse_universe``."""
        if self.kind == "membership":
            return f"membership:{self.path}"
        if self.kind == "symbols":
            return "symbols:" + ",".join(self.symbols)
        return "all"

    @property
    def point_in_time(self) -> bool:
        """True when membership changes over time (a membership file)."""
        return self.kind == "membership"

    def describe(self) -> str:
        """One sentence for the first line of a report."""
        if self.kind == "membership":
            name = self.path.name if self.path is not None else "?"
            return (
                f"Universe: point-in-time index membership from {name}; a symbol is a "
                "candidate only on sessions when it was a member."
            )
        if self.kind == "symbols":
            shown = ", ".join(self.symbols[:10])
            more = f" and {len(self.symbols) - 10} more" if len(self.symbols) > 10 else ""
            return (
                f"Universe: the {len(self.symbols)} listed symbol(s) ({shown}{more}), "
                "candidates on every session (not point-in-time)."
            )
        return (
            "Universe: every symbol of the data source on every session (--universe all), "
            "not point-in-time: names may be picked before they joined the index."
        )

    def load(self, source_symbols: Sequence[str] | None = None) -> Membership:
        """The membership this rule gives; ``all`` needs the source's symbols."""
        if self.kind == "membership":
            assert self.path is not None
            return load_membership(self.path)
        if self.kind == "symbols":
            return _universe_static(self, self.symbols)
        if source_symbols is None:
            raise DataError(
                "the 'all' universe needs the symbols of the data source; load the data first"
            )
        return _universe_static(self, _load_symbols(source_symbols) or [])


@dataclass(frozen=True, repr=False)
class Membership:
    """Stays in the universe: ``stays`` has columns ticker, start, end (NaT = open-ended).

    ``last_date`` is the latest date the file records (None for a plain list); after it,
    membership is only assumed unchanged. ``digest`` is the sha256 of the file's bytes.
    The frame is shared with the in-process cache: treat it as read-only.
    """

    stays: pd.DataFrame
    spec: UniverseSpec
    digest: str = ""
    last_date: pd.Timestamp | None = None

    def __repr__(self) -> str:
        return (
            f"Membership({self.spec.rule!r}, stays={len(self.stays)}, "
            f"tickers={len(self.tickers)}, last_date="
            f"{None if self.last_date is None else self.last_date.date()})"
        )

    @property
    def tickers(self) -> list[str]:
        """Every ticker with at least one stay, sorted."""
        return sorted(set(self.stays["ticker"]))

    def describe(self) -> str:
        """One sentence for the first line of a report (see ``UniverseSpec.describe``)."""
        return self.spec.describe()

    def matrix(self, sessions: pd.DatetimeIndex, symbols: Sequence[str]) -> pd.DataFrame:
        """Bool frame (sessions x symbols): True where the symbol is a member that session.

        A symbol without any stay is False throughout. Sessions may be in any order.
        """
        index = pd.DatetimeIndex(sessions)
        days = _universe_days(index).asi8
        columns = list(dict.fromkeys(symbols))
        out = np.zeros((len(index), len(columns)), dtype=bool)
        position = {sym: i for i, sym in enumerate(columns)}
        stays = self.stays[self.stays["ticker"].isin(position)]
        lo_all, hi_all = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        for ticker, start, end in stays.itertuples(index=False, name=None):
            lo = lo_all if pd.isna(start) else start.value
            hi = hi_all if pd.isna(end) else end.value
            out[:, position[ticker]] |= (days >= lo) & (days < hi)
        return pd.DataFrame(out, index=index, columns=columns)[list(symbols)]

    def members_on(self, day: Any) -> list[str]:
        """Tickers that were members on the calendar date of ``day``, sorted."""
        when = _universe_when(day, "day")
        starts, ends = self.stays["start"], self.stays["end"]
        live = (starts.isna() | (starts <= when)) & (ends.isna() | (ends > when))
        return sorted(set(self.stays.loc[live, "ticker"]))

    def current(self, as_of: Any) -> list[str]:
        """The latest known members for a live run at ``as_of`` (see ``current_warning``)."""
        return self.members_on(as_of)

    def current_warning(self, as_of: Any) -> str | None:
        """A sentence to show when ``as_of`` is past the file's last date, else None."""
        when = _universe_when(as_of, "as_of")
        if self.last_date is None or when <= self.last_date:
            return None
        return (
            f"membership {self.spec.rule} ends {self.last_date.date()}, before "
            f"{when.date()}: the members used are those of {self.last_date.date()}; "
            "update the file if the index changed since"
        )


def parse_universe(
    text: str | None, source: str, symbols: Sequence[str] | None = None
) -> UniverseSpec:
    """Parse ``--universe`` (``text``) given the data source and ``--symbols``.

    Default (``text`` None): ``--symbols`` alone keeps a plain list; otherwise a
    ``parquet:`` source whose folder holds ``sp500_membership.csv`` (the shared S&P data)
    is point-in-time on that file, and any other source is ``all``.
    """
    if text is None or not text.strip():
        if symbols:
            return UniverseSpec("symbols", symbols=tuple(_load_symbols(symbols) or ()))
        spec = parse_source(source)
        if spec.kind == "parquet" and spec.location:
            candidate = Path(spec.location).expanduser().parent / UNIVERSE_MEMBERSHIP_FILE
            if candidate.is_file():
                return UniverseSpec("membership", path=candidate.resolve())
        return UniverseSpec("all")
    kind, sep, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "all" and not rest.strip():
        return UniverseSpec("all")
    if kind == "symbols" and sep:
        names = [s for s in rest.split(",") if s.strip()]
        if not names:
            raise DataError(f"universe {text!r} lists no symbols; use 'symbols:A,B,C'")
        return UniverseSpec("symbols", symbols=tuple(_load_symbols(names) or ()))
    if kind == "membership" and sep:
        if not rest.strip():
            raise DataError(f"universe {text!r} needs a file path after 'membership:'")
        path = Path(rest.strip()).expanduser()
        if not path.is_file():
            raise DataError(
                f"membership file not found: {path}; give an existing "
                "ticker,start_date,end_date CSV, or use --universe all"
            )
        return UniverseSpec("membership", path=path.resolve())
    raise DataError(f"unknown universe {text!r}; use {UNIVERSE_FORMS}")


def load_membership(path: str | Path) -> Membership:
    """Read and validate a ``ticker,start_date,end_date`` file; cached by content hash.

    Raises ``DataError`` naming ticker, line and dates for: missing columns, empty
    ticker, unparseable or missing start date, unparseable end date, end not after
    start, and overlapping stays of one ticker.
    """
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read membership file {file}: {exc.strerror or exc}; "
            "give an existing ticker,start_date,end_date CSV"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    try:
        stays, last_date = _universe_parse(digest, data)
    except DataError as exc:
        raise DataError(f"membership file {file.name} {exc}") from None
    spec = UniverseSpec("membership", path=file.resolve())
    return Membership(stays=stays, spec=spec, digest=digest, last_date=last_date)


def coverage(
    membership: Membership,
    sessions: pd.DatetimeIndex,
    symbols_with_data: Iterable[str] | Mapping[str, Iterable[Any]],
) -> dict[str, Any]:
    """How much of the universe the price data covers over ``sessions``.

    ``symbols_with_data`` is either the symbols that have prices (covered on every
    session) or a mapping symbol -> the dates of its bars (covered on those dates only),
    e.g. ``{s: f.index for s, f in market_data.bars.items()}``. Returns
    ``member_sessions``, ``missing_sessions``, ``missing_share`` (None when no member),
    ``by_year`` {year: missing share} and ``missing_symbols`` (members with no prices
    at all over ``sessions``, sorted).
    """
    index = pd.DatetimeIndex(sessions)
    tickers = membership.tickers
    members = membership.matrix(index, tickers).to_numpy()
    covered = np.zeros_like(members)
    if isinstance(symbols_with_data, Mapping):
        days = _universe_days(index)
        for i, sym in enumerate(tickers):
            dates = symbols_with_data.get(sym)
            if dates is not None:
                covered[:, i] = days.isin(_universe_days(pd.DatetimeIndex(list(dates))))
    else:
        have = set(symbols_with_data)
        covered[:, [i for i, sym in enumerate(tickers) if sym in have]] = True
    missing = members & ~covered
    per_session = pd.DataFrame(
        {"members": members.sum(axis=1), "missing": missing.sum(axis=1)}, index=index
    )
    by_year = per_session.groupby(index.year).sum()
    member_sessions, missing_sessions = int(members.sum()), int(missing.sum())
    never = members.any(axis=0) & ~(members & covered).any(axis=0)
    return {
        "member_sessions": member_sessions,
        "missing_sessions": missing_sessions,
        "missing_share": missing_sessions / member_sessions if member_sessions else None,
        "by_year": {
            int(year): float(row["missing"] / row["members"])
            for year, row in by_year.iterrows()
            if row["members"]
        },
        "missing_symbols": [sym for sym, gone in zip(tickers, never, strict=True) if gone],
    }


def coverage_sentence(report: Mapping[str, Any]) -> str:
    """One sentence for a report from a ``coverage`` result: what the backtest could not trade."""
    share = report.get("missing_share")
    if share is None:
        return "Coverage: the universe has no members over these sessions."
    years = report.get("by_year", {})
    per_year = ", ".join(f"{year}: {value:.0%}" for year, value in sorted(years.items()))
    names = report.get("missing_symbols", [])
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    tail = f"; {len(names)} member ticker(s) have no prices ({shown})" if names else ""
    return (
        f"Coverage: {share:.1%} of member-sessions had no price data ({per_year}){tail}; "
        "survivorship bias is reduced, not removed."
    )


def _universe_static(spec: UniverseSpec, symbols: Sequence[str]) -> Membership:
    """A plain list as open-ended stays, so it answers like a membership file."""
    stays = pd.DataFrame(
        {
            "ticker": pd.Series(list(symbols), dtype=object),
            "start": pd.Series(pd.NaT, index=range(len(symbols)), dtype="datetime64[ns]"),
            "end": pd.Series(pd.NaT, index=range(len(symbols)), dtype="datetime64[ns]"),
        }
    )
    return Membership(stays=stays, spec=spec)


def _universe_when(value: Any, name: str) -> pd.Timestamp:
    """A required date-like value as a midnight timestamp (tz-aware: its New York date)."""
    day = _load_day(value, name)
    if day is None:
        raise DataError(f"{name} is missing: give a date")
    return day


def _universe_days(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Session labels as tz-naive midnights (tz-aware: their New York date)."""
    if index.tz is not None:
        index = index.tz_convert("America/New_York").tz_localize(None)
    return index.normalize().as_unit("ns")


@lru_cache(maxsize=8)
def _universe_parse(digest: str, data: bytes) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Parse and validate file bytes; memoised per content (``digest``) within the process.

    Error messages read as the rest of a sentence starting with the file's name.
    """
    try:
        raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"is not a readable CSV: {exc}") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    lacking = [c for c in UNIVERSE_COLUMNS if c not in raw.columns]
    if lacking:
        raise DataError(
            f"lacks column(s) {', '.join(lacking)}; "
            f"expected the header {','.join(UNIVERSE_COLUMNS)}"
        )
    errors: list[str] = []
    table = raw[list(UNIVERSE_COLUMNS)].apply(lambda col: col.str.strip())
    table["ticker"] = table["ticker"].str.upper()
    table["line"] = np.arange(2, len(table) + 2)
    table["start"] = _universe_dates(table["start_date"])
    table["end"] = _universe_dates(table["end_date"])
    bad_start = table["start"].isna()
    bad_end = table["end"].isna() & (table["end_date"] != "")
    backwards = table["end"].notna() & (table["end"] <= table["start"])
    for row in table.loc[(table["ticker"] == "") | bad_start | bad_end | backwards].itertuples():
        where = f"line {row.line}" + (f" ({row.ticker})" if row.ticker else "")
        if not row.ticker:
            errors.append(f"{where}: empty ticker")
        elif pd.isna(row.start):
            errors.append(f"{where}: start_date {row.start_date!r} is not a YYYY-MM-DD date")
        elif pd.isna(row.end):
            errors.append(f"{where}: end_date {row.end_date!r} is not a YYYY-MM-DD date")
        else:
            errors.append(
                f"{where}: end_date {row.end_date} is not after start_date {row.start_date}"
            )
    stays = (
        table.loc[(table["ticker"] != "") & ~bad_start & ~bad_end]
        .sort_values(["ticker", "start"], kind="stable")
        .reset_index(drop=True)
    )
    earlier_end = stays.groupby("ticker")["end"].shift()
    same = stays["ticker"].eq(stays["ticker"].shift())
    overlap = same & (earlier_end.isna() | (stays["start"] < earlier_end))
    earlier_start = stays["start"].shift()
    for i in np.flatnonzero(overlap.to_numpy()):
        shown = "open" if pd.isna(earlier_end.iloc[i]) else str(earlier_end.iloc[i].date())
        errors.append(
            f"{stays['ticker'].iloc[i]}: stay from {stays['start'].iloc[i].date()} overlaps "
            f"the stay {earlier_start.iloc[i].date()}..{shown}"
        )
    stays = stays[["ticker", "start", "end"]]
    if errors:
        more = (
            f" (and {len(errors) - UNIVERSE_MAX_ERRORS} more)"
            if len(errors) > UNIVERSE_MAX_ERRORS
            else ""
        )
        raise DataError(
            f"is invalid: {'; '.join(errors[:UNIVERSE_MAX_ERRORS])}"
            f"{more}; fix these rows (one row per stay, empty end_date = still a member)"
        )
    if stays.empty:
        raise DataError("has no rows; add ticker,start_date,end_date rows")
    dates = pd.concat([stays["start"], stays["end"].dropna()])
    return stays, pd.Timestamp(dates.max())


def _universe_dates(texts: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` texts as datetime64[ns]; NaT for an empty or unparseable one."""
    return pd.to_datetime(texts, format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")


def universe_record(membership: Membership, symbols: Sequence[str]) -> dict[str, Any] | None:
    """What an export records of its universe: None for a plain list or ``all`` (its
    symbols on every session), else the rule and the stays of `symbols`, JSON-able."""
    if not membership.spec.point_in_time:
        return None
    wanted = set(symbols)
    rows = [
        [ticker, _universe_iso(start), _universe_iso(end)]
        for ticker, start, end in membership.stays.itertuples(index=False, name=None)
        if ticker in wanted
    ]
    last = membership.last_date
    return {
        "rule": membership.spec.rule,
        "last_date": None if last is None else last.date().isoformat(),
        "stays": sorted(rows),
    }


def membership_from_record(record: Mapping[str, Any]) -> Membership:
    """The `Membership` an export recorded with `universe_record`."""
    rows = record.get("stays") or []
    stays = pd.DataFrame(
        {
            "ticker": pd.Series([r[0] for r in rows], dtype=object),
            "start": pd.to_datetime(pd.Series([r[1] for r in rows], dtype=object)),
            "end": pd.to_datetime(pd.Series([r[2] for r in rows], dtype=object)),
        }
    )
    last = record.get("last_date")
    spec = UniverseSpec("membership", path=Path(str(record.get("rule", "membership:?"))[11:]))
    return Membership(
        stays=stays, spec=spec, last_date=None if last is None else pd.Timestamp(last)
    )


def members_for_replay(
    record: Mapping[str, Any] | None, history: pd.DataFrame, session: Any
) -> pd.DataFrame | None:
    """Membership on every bar's next session and on `session`, for a replay (None: all)."""
    if not record:
        return None
    index = pd.DatetimeIndex(history.index).append(pd.DatetimeIndex([pd.Timestamp(session)]))
    symbols = list(history["close"].columns)
    return membership_from_record(record).matrix(index, symbols)


def _universe_iso(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def current_symbols(
    record: Mapping[str, Any] | None, symbols: Sequence[str], as_of: Any
) -> list[str]:
    """The symbols a live run loads and may pick at `as_of`: the recorded universe's
    members then (a member the data source lacks stops the run, named, like any stale
    symbol), or `symbols` when the universe is a plain list."""
    if not record:
        return sorted(symbols)
    membership = membership_from_record(record)
    warning = membership.current_warning(as_of)
    if warning:
        print(f"warning: {warning}")
    return membership.current(as_of)
