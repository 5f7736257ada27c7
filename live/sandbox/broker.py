"""The sandbox's paper broker: Alpaca's order, position and account rules, without HTTP.

`SandboxBroker` owns the SQLite store and the market data; `live.sandbox.app` turns its
answers into Alpaca's HTTP responses. Every method returns the JSON body Alpaca would send
(dicts with ids as UUID strings, timestamps as RFC 3339, amounts as decimal strings) or
raises `AlpacaError` with Alpaca's status, code and message.

The order lifecycle is Alpaca's: `POST /v2/orders` answers `accepted`; once the simulated
clock moves while the market is open the order is `new`; it fills (or expires, or is
canceled) only when the clock crosses a price the daily data has, the session's open or
its close (`live.sandbox.fills` says which order gets which price), and `filled_at` is
that simulated instant. `opg` orders are refused from 09:28 to 19:00 New York of a session
day, `cls` orders from 10 minutes before the close to 19:00, as Alpaca refuses them.

Accounts: `margin` (the default, as Alpaca's paper accounts): buying power is
`multiplier` x equity minus the gross value of the positions (Reg T, multiplier 2 from
$2,000 of equity, else 1), a sell of a symbol not held opens a short (whole shares), and
day trades are counted over the last 5 sessions; with equity under $25,000 a 4th day trade
is refused (pattern day trader protection). `cash`: buying power is the cash, no shorts.
Buying power also subtracts the estimated cost of open buy orders; at a fill the order is
checked again against the real cost and `rejected` if it no longer fits.

Positions are valued at the last price known at the simulated time, with no lookahead:
the session's **open** while the market is open in it, its **close** once the clock is
past its close. Cash and positions are not stored: they are replayed from the fills.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from live.sandbox import clock as clk
from live.sandbox import fills
from live.sandbox.requests import (
    MAX_QTY,
    QTY_PLACES,
    AlpacaError,
    OrderRequest,
    client_order_id_of,
    invalid,
    parse_day,
    parse_decimal,
    parse_instant,
    parse_order_request,
    parse_price,
    unprocessable,
)
from live.sandbox.store import Store
from marketdata import MarketData, load

__all__ = ["AlpacaError", "SandboxBroker", "parse_order_request"]

DEFAULT_CASH = Decimal("100000")
ACCOUNT_TYPES = ("margin", "cash")
MONEY_PLACES = 4
OPEN_STATUSES = ("new", "accepted", "pending_new", "partially_filled", "accepted_for_bidding")
CLOSED_STATUSES = ("filled", "canceled", "expired", "rejected", "replaced", "done_for_day")
STOP_TYPES = ("stop", "stop_limit", "trailing_stop")
EXCHANGE = "NYSE"  # the data sources carry no listing venue; one valid Alpaca value for all
MARGIN_MINIMUM = Decimal(2000)  # Reg T: below this equity, no margin and no shorting
PDT_EQUITY = Decimal(25000)  # pattern day trader protection applies below this equity
PDT_TRADES = 4  # the 4th day trade within 5 sessions makes a pattern day trader
PDT_SESSIONS = 5
INITIAL_MARGIN = Decimal("0.5")
MAINTENANCE_MARGIN = Decimal("0.3")
OPG_CUTOFF = dt.time(9, 28)  # opg orders are refused from here ...
AUCTION_REOPEN = dt.time(19, 0)  # ... to here (and cls orders from the cls cut-off)
CLS_CUTOFF = dt.timedelta(minutes=10)  # before the close
CALENDAR_FIRST = dt.date(1970, 1, 1)
CALENDAR_LAST = dt.date(2029, 12, 31)
_SETTLEMENT_LOOKAHEAD = 15  # calendar days that surely hold the next two sessions
_ASSET_NAMESPACE = uuid.UUID("5f0c2c4e-0d44-4b55-9c1a-7a1b2d3e4f50")
# Market Data API (GET /v2/stocks/bars): daily bars only, the data source's adjusted prices
BAR_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
DAILY_TIMEFRAMES = ("1Day", "1D")
BAR_LIMIT_DEFAULT = 1000
BAR_LIMIT_MAX = 10000
DATA_FEEDS = ("iex", "sip", "otc", "delayed_sip", "boats", "overnight")
ACTIVITY_TYPES = (
    "FILL", "TRANS", "MISC", "ACATC", "ACATS", "CSD", "CSW", "DIV", "DIVCGL", "DIVCGS",
    "DIVFEE", "DIVFT", "DIVNRA", "DIVROC", "DIVTW", "DIVTXEX", "INT", "INTNRA", "INTTW",
    "JNL", "JNLC", "JNLS", "MA", "NC", "OPASN", "OPEXP", "OPXRC", "PTC", "PTR", "REORG",
    "SC", "SSO", "SSP", "CFEE", "FEE",
)  # fmt: skip
_invalid = invalid


def not_found(message: str) -> AlpacaError:
    return AlpacaError(404, 40410000, message)


def conflict(message: str) -> AlpacaError:
    return AlpacaError(409, 40910000, message)


# -- formatting ---------------------------------------------------------------------------
def timestamp(instant: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds, as Alpaca writes order timestamps."""
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ny_timestamp(instant: dt.datetime) -> str:
    """RFC 3339 in New York time, as Alpaca writes the clock."""
    return instant.astimezone(clk.NEW_YORK).isoformat()


def decimal_text(value: Decimal, places: int | None = None) -> str:
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def money(value: Decimal) -> str:
    return decimal_text(value, MONEY_PLACES)


def price_decimal(value: float) -> Decimal:
    """The data source's float exactly as Python prints it (no cent rounding: parity)."""
    return Decimal(repr(float(value)))


def asset_id_for(symbol: str) -> str:
    return str(uuid.uuid5(_ASSET_NAMESPACE, symbol))


def bar_timestamp(day: dt.date) -> dt.datetime:
    """A daily bar's time stamp: midnight New York of its session, in UTC."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=clk.NEW_YORK).astimezone(dt.UTC)


def bar_text(day: dt.date) -> str:
    return bar_timestamp(day).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bar_bound(text: str) -> dt.datetime:
    """`start`/`end` of a bars request: RFC 3339, or a date (its midnight New York)."""
    cleaned = text.strip()
    if len(cleaned) == 10:
        return bar_timestamp(dt.date.fromisoformat(cleaned))
    return clk.parse_instant(cleaned)


def _encode_page_token(symbol: str, day: dt.date) -> str:
    return base64.urlsafe_b64encode(f"{symbol}|{day.isoformat()}".encode()).decode()


def _decode_page_token(token: str) -> tuple[str, dt.date]:
    try:
        symbol, _, day = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return symbol, dt.date.fromisoformat(day)
    except (ValueError, binascii.Error, UnicodeError):
        raise _invalid("invalid page_token") from None


# -- market data --------------------------------------------------------------------------
_LOADED: dict[tuple[str, tuple[str, ...] | None], MarketData] = {}
_LOAD_LOCK = threading.Lock()


def load_market_data(source: str, symbols: list[str] | None = None) -> MarketData:
    """`marketdata.load(source, symbols)`, once per process for the same arguments."""
    key = (source, tuple(symbols) if symbols else None)
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = load(source, symbols=symbols)
        return _LOADED[key]


class PriceBook:
    """Daily bars per symbol and session, looked up without lookahead."""

    def __init__(self, data: MarketData) -> None:
        self.source = data.source
        self.synthetic = data.synthetic
        self._ohlcv: dict[str, pd.DataFrame] = {
            s: f[list(BAR_FIELDS.values())] for s, f in data.bars.items() if not f.empty
        }
        if not self._ohlcv:
            raise ValueError(f"the data source {data.source} has no bars")
        self.first_day = min(f.index[0] for f in self._ohlcv.values()).date()
        self.last_day = max(f.index[-1] for f in self._ohlcv.values()).date()

    @property
    def symbols(self) -> list[str]:
        return sorted(self._ohlcv)

    def has(self, symbol: str) -> bool:
        return symbol in self._ohlcv

    def bar(self, symbol: str, day: dt.date) -> fills.Bar | None:
        """`symbol`'s session `day` as exact decimals, None without a bar that day."""
        frame = self._ohlcv.get(symbol)
        if frame is None:
            return None
        stamp = pd.Timestamp(day)
        pos = frame.index.searchsorted(stamp)
        if pos < len(frame) and frame.index[pos] == stamp:
            row = frame.iloc[pos]
            return fills.Bar(
                open=price_decimal(row["open"]),
                high=price_decimal(row["high"]),
                low=price_decimal(row["low"]),
                close=price_decimal(row["close"]),
            )
        return None

    def daily_bars(
        self, symbol: str, first: dt.date, last: dt.date
    ) -> list[tuple[dt.date, dict[str, float]]]:
        """`symbol`'s bars of the sessions first..last (both included), oldest first."""
        frame = self._ohlcv.get(symbol)
        if frame is None or first > last:
            return []
        lo = frame.index.searchsorted(pd.Timestamp(first), side="left")
        hi = frame.index.searchsorted(pd.Timestamp(last), side="right")
        part = frame.iloc[lo:hi]
        return [
            (stamp.date(), {key: float(row[i]) for i, key in enumerate(BAR_FIELDS)})
            for stamp, row in zip(part.index, part.to_numpy(dtype="float64"), strict=True)
        ]

    def close_asof(self, symbol: str, day: dt.date) -> float | None:
        """The last close at or before session `day`."""
        frame = self._ohlcv.get(symbol)
        if frame is None:
            return None
        pos = frame.index.searchsorted(pd.Timestamp(day), side="right") - 1
        return None if pos < 0 else float(frame.iloc[pos]["close"])


# -- ledger -------------------------------------------------------------------------------
@dataclass
class Holding:
    """A position: `qty` > 0 long, < 0 short; `cost` is the signed cost basis."""

    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    opened_today: Decimal = Decimal(0)  # shares opened in `session` (day-trade counting)
    session: dt.date | None = None

    @property
    def avg_entry_price(self) -> Decimal:
        return self.cost / self.qty if self.qty else Decimal(0)


@dataclass
class Ledger:
    cash: Decimal
    holdings: dict[str, Holding] = field(default_factory=dict)
    day_trades: list[dt.date] = field(default_factory=list)  # the session of each

    def apply(self, symbol: str, side: str, qty: Decimal, price: Decimal, day: dt.date) -> None:
        """Book one fill. A fill that reduces a position opened in the same session is a
        day trade (Alpaca's count: one per closing fill)."""
        signed = qty if side == "buy" else -qty
        held = self.holdings.setdefault(symbol, Holding())
        if held.session != day:
            held.session, held.opened_today = day, Decimal(0)
        self.cash -= signed * price
        if held.qty == 0 or (held.qty > 0) == (signed > 0):  # opening / adding
            held.qty += signed
            held.cost += signed * price
            held.opened_today += qty
        else:  # reducing (orders never flip a position: refused at submission)
            closing = min(qty, abs(held.qty))
            average = held.avg_entry_price
            held.qty += signed
            held.cost = average * held.qty
            if held.opened_today > 0:
                self.day_trades.append(day)
                held.opened_today -= min(held.opened_today, closing)
        if held.qty == 0:
            held.cost = Decimal(0)
            if held.opened_today == 0:
                del self.holdings[symbol]

    def positions(self) -> dict[str, Holding]:
        return {s: h for s, h in self.holdings.items() if h.qty != 0}


def replay(initial_cash: Decimal, filled: list[dict[str, Any]], until: str | None = None) -> Ledger:
    """Cash, positions and day trades after the filled orders (filled at or before `until`)."""
    ledger = Ledger(initial_cash)
    for order in filled:
        if until is not None and order["filled_at"] > until:
            break
        ledger.apply(
            order["symbol"],
            order["side"],
            Decimal(order["filled_qty"]),
            Decimal(order["filled_avg_price"]),
            clk.ny_date(clk.parse_instant(order["filled_at"])),
        )
    return ledger


# -- the broker ---------------------------------------------------------------------------
class SandboxBroker:
    """Alpaca's paper account, on a simulated clock, persisted in one SQLite file.

    `db_path` may hold an earlier sandbox: its account, clock and orders are kept. Then
    `source`/`cash`/`account` must match what it was created with (None: take what it has)
    and `date` may only move its clock forward. A new database starts with `cash` (default
    100000) in a `margin` (default) or `cash` account at 15:00 New York of session `date`
    (default: the last session of the data).
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        source: str | None = None,
        cash: float | Decimal | None = None,
        date: str | dt.date | None = None,
        symbols: list[str] | None = None,
        account: str | None = None,
    ) -> None:
        if account is not None and account not in ACCOUNT_TYPES:
            raise ValueError(f"account must be one of {', '.join(ACCOUNT_TYPES)}, not {account!r}")
        self.store = Store(db_path)
        self._lock = threading.RLock()
        self._symbols = symbols
        self._prices: PriceBook | None = None
        try:
            self._open(source, cash, date, account)
        except BaseException:
            self.store.close()
            raise

    # -- setup ----------------------------------------------------------------------------
    def _open(
        self, source: str | None, cash: Any, date: str | dt.date | None, account: str | None
    ) -> None:
        stored_source = self.store.get_meta("source")
        if stored_source is not None and source is not None and source != stored_source:
            raise ValueError(
                f"{self.store.path} was created with source {stored_source!r}, not {source!r}"
            )
        day = self._check_day(date) if date is not None else None
        self.source = stored_source or source or "demo"
        if day is not None and not self.prices.first_day <= day <= self.prices.last_day:
            raise ValueError(
                f"{day} is outside the data of {self.source} "
                f"({self.prices.first_day}..{self.prices.last_day})"
            )
        if stored_source is None:
            start_day = day or self.prices.last_day
            start = clk.trading_time(clk.session_on_or_before(start_day))
            initial = Decimal(str(cash)) if cash is not None else DEFAULT_CASH
            if initial <= 0:
                raise ValueError(f"cash must be positive, got {cash}")
            account_id = uuid.uuid4()
            self.store.set_meta(
                {
                    "source": self.source,
                    "initial_cash": str(initial),
                    "account_id": str(account_id),
                    "account_number": "PA" + account_id.hex[:10].upper(),
                    "account_type": account or "margin",
                    "created_at": timestamp(start),
                    "clock": timestamp(start),
                }
            )
            return
        stored_cash = Decimal(self.store.get_meta("initial_cash") or "0")
        if cash is not None and Decimal(str(cash)) != stored_cash:
            raise ValueError(
                f"{self.store.path} was created with cash {stored_cash}, not {cash}; "
                "use a new --db for a different starting cash"
            )
        if account is not None and account != self.account_type:
            raise ValueError(
                f"{self.store.path} holds a {self.account_type} account, not {account}; "
                "use a new --db for another account type"
            )
        if day is not None:
            target = clk.trading_time(day)
            if target < self.now():
                raise ValueError(
                    f"{self.store.path}: the sandbox clock is already at "
                    f"{ny_timestamp(self.now())}; --date can only move it forward"
                )
            self._move_clock(target)

    def _check_day(self, value: str | dt.date) -> dt.date:
        day = clk.parse_day(value) if isinstance(value, str) else value
        if not clk.is_session(day):
            raise ValueError(f"{day} is not an NYSE session (the next is {clk.next_session(day)})")
        return day

    @property
    def account_type(self) -> str:
        """`margin` or `cash` (a database from before account types is a cash account)."""
        return self.store.get_meta("account_type") or "cash"

    @property
    def margin(self) -> bool:
        return self.account_type == "margin"

    @property
    def prices(self) -> PriceBook:
        """The data source's bars, loaded on first use (once per process and source)."""
        if self._prices is None:
            self._prices = PriceBook(load_market_data(self.source, self._symbols))
        return self._prices

    def close(self) -> None:
        self.store.close()

    # -- clock ----------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return clk.parse_instant(self.store.get_meta("clock") or "")

    def _initial_cash(self) -> Decimal:
        return Decimal(self.store.get_meta("initial_cash") or "0")

    def clock(self) -> dict[str, Any]:
        p = clk.phase(self.now())
        return {
            "timestamp": ny_timestamp(p.now),
            "is_open": p.is_open,
            "next_open": ny_timestamp(p.next_open),
            "next_close": ny_timestamp(p.next_close),
        }

    def calendar(self, start: str | None, end: str | None) -> list[dict[str, Any]]:
        """NYSE sessions from `start` to `end` (both optional; the calendar spans
        1970-2029; dates outside it are clamped, an empty parameter is refused)."""
        first = parse_day(start, "start") if start is not None else CALENDAR_FIRST
        last = parse_day(end, "end") if end is not None else CALENDAR_LAST
        first, last = max(first, CALENDAR_FIRST), min(last, CALENDAR_LAST)
        if first > last:
            return []
        days = clk.sessions_between(first, last + dt.timedelta(days=_SETTLEMENT_LOOKAHEAD))
        out = []
        for i, day in enumerate(days):
            t_plus = 1 if day >= clk.T_PLUS_ONE_FROM else 2
            if day > last or i + t_plus >= len(days):  # past the end of the NYSE calendar
                break
            close = clk.session_close_at(day).astimezone(clk.NEW_YORK)
            out.append(
                {
                    "date": day.isoformat(),
                    "open": clk.OPEN_TIME.strftime("%H:%M"),
                    "close": close.strftime("%H:%M"),
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": days[i + t_plus].isoformat(),
                }
            )
        return out

    def advance(self, sessions: int = 1) -> dict[str, Any]:
        """Move to 15:00 New York of the `sessions`-th session after the clock's date."""
        if sessions < 1:
            raise _invalid("sessions must be >= 1")
        with self._lock:
            day = clk.ny_date(self.now())
            ahead = clk.sessions_between(day + dt.timedelta(days=1), self.prices.last_day)
            if sessions > len(ahead):
                raise conflict(
                    f"only {len(ahead)} session(s) of {self.source} data remain after {day} "
                    f"(the data ends {self.prices.last_day}); advance fewer sessions"
                )
            return self.set_clock(clk.trading_time(ahead[sessions - 1]))

    def set_clock(self, when: dt.datetime) -> dict[str, Any]:
        """Move the clock forward to `when`; orders fill at the opens and closes crossed."""
        with self._lock:
            try:
                when = clk.to_utc(when)
            except (OverflowError, ValueError):
                raise _invalid("not a time the sandbox can represent") from None
            if when < self.now():
                raise conflict(
                    f"the sandbox clock only moves forward (it is {ny_timestamp(self.now())})"
                )
            limit = self.prices.last_day + dt.timedelta(days=_SETTLEMENT_LOOKAHEAD)
            session = clk.phase(when).session if clk.ny_date(when) <= limit else None
            if session is None or session > self.prices.last_day:
                raise conflict(
                    f"no market data for {clk.ny_date(when)} in {self.source} (the data ends "
                    f"{self.prices.last_day}); the sandbox cannot move there"
                )
            settled = self._move_clock(when)
            return {"clock": self.clock(), "settled": settled, "state": self.state()}

    def _events(
        self, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[dt.datetime, str, dt.date]]:
        """The price instants (opens and closes) in (start, end], in time order."""
        if end <= start:
            return []
        out = []
        for day in clk.sessions_between(clk.ny_date(start), clk.ny_date(end)):
            for instant, kind in (
                (clk.session_open_at(day), fills.OPEN),
                (clk.session_close_at(day), fills.CLOSE),
            ):
                if start < instant <= end:
                    out.append((instant, kind, day))
        return out

    def _move_clock(self, target: dt.datetime) -> list[dict[str, Any]]:
        """Run every price event between the clock and `target`, then move the clock.

        Returns the orders that changed (filled, expired, canceled, rejected, now `new`)."""
        changed: dict[str, dict[str, Any]] = {}
        with self._lock, self.store.transaction() as conn:
            start = self.now()
            ledger = self._ledger()
            for instant, kind, day in self._events(start, target):
                # stops first: a bracket whose day reached both exits leaves at its stop
                rows = sorted(
                    self.store.orders(OPEN_STATUSES),
                    key=lambda r: (r["type"] not in STOP_TYPES, r["seq"]),
                )
                for row in rows:
                    current = {**row, **changed.get(row["id"], {})}
                    if current["status"] not in OPEN_STATUSES:
                        continue
                    delta = self._at_event(current, instant, kind, day, ledger)
                    if delta:
                        self.store.update_order(row["id"], delta, conn)
                        changed[row["id"]] = {**changed.get(row["id"], {}), **delta}
                        if delta.get("status") in CLOSED_STATUSES:
                            self._cascade(current, delta["status"], instant, changed, conn)
            if clk.phase(target).is_open or any(
                k == fills.OPEN for _, k, _ in self._events(start, target)
            ):
                stamp = timestamp(target)
                for row in self.store.orders(("accepted", "pending_new")):
                    if row["id"] in changed or row["submitted_at"] >= stamp:
                        continue
                    delta = {"status": "new", "updated_at": stamp}
                    self.store.update_order(row["id"], delta, conn)
                    changed[row["id"]] = delta
            self.store.set_meta({"clock": timestamp(target)}, conn)
        return [self.order(order_id) for order_id in changed]

    def _cascade(
        self,
        row: dict[str, Any],
        status: str,
        at: dt.datetime,
        changed: dict[str, dict[str, Any]],
        conn: Any,
    ) -> None:
        """An advanced order's other members after `row` ended with `status`: a filled
        bracket/oto entry releases its `held` legs; a filled exit cancels its siblings
        (one-cancels-other); an entry that ends unfilled cancels its legs."""
        if (row.get("order_class") or "simple") == "simple":
            return
        stamp = timestamp(at)
        is_entry = row.get("parent_id") is None and row["order_class"] in ("bracket", "oto")
        if is_entry and status == "filled":
            updates = {leg["id"]: {"status": "new", "updated_at": stamp} for leg in
                       self.store.legs(row["id"]) if leg["status"] == "held"}  # fmt: skip
        elif is_entry or status == "filled":
            parent_id = row.get("parent_id") or row["id"]
            group = [self.store.order(order_id=parent_id) or {}, *self.store.legs(parent_id)]
            updates = {}
            for other in group:
                current = {**other, **changed.get(other.get("id", ""), {})}
                if current.get("id") in (None, row["id"]) or current["status"] not in (
                    *OPEN_STATUSES,
                    "held",
                ):
                    continue
                updates[current["id"]] = {
                    "status": "canceled",
                    "canceled_at": stamp,
                    "updated_at": stamp,
                }
        else:
            return
        for order_id, delta in updates.items():
            self.store.update_order(order_id, delta, conn)
            changed[order_id] = {**changed.get(order_id, {}), **delta}

    def _at_event(
        self,
        row: dict[str, Any],
        instant: dt.datetime,
        kind: str,
        day: dt.date,
        ledger: Ledger,
    ) -> dict[str, Any]:
        """The changes one price event makes to one open order (see `live.sandbox.fills`)."""
        stamp = timestamp(instant)
        if row["submitted_at"] >= stamp:
            return {}
        bar = self.prices.bar(row["symbol"], day)
        if bar is None:
            if row["type"] == "market" and (kind == fills.OPEN) != (row["time_in_force"] == "cls"):
                reason = f"no {row['symbol']} bar on {day}"
                return {"status": "rejected", "failed_at": stamp, "updated_at": stamp,
                        "reject_reason": reason}  # fmt: skip
            if kind == fills.CLOSE and row["time_in_force"] != "gtc":
                return {"status": "expired", "expired_at": stamp, "updated_at": stamp}
            return {}
        if kind == fills.OPEN:
            outcome = fills.at_open(row, bar)
        else:
            during = row["submitted_at"] >= timestamp(clk.session_open_at(day))
            outcome = fills.at_close(row, bar, during)
        if outcome.becomes is not None:
            return {"type": outcome.becomes, "stop_price": None, "updated_at": stamp}
        if outcome.hwm is not None:  # a trailing stop moved, still working
            stop = fills.trailing_stop_price(row, outcome.hwm)
            return {"hwm": decimal_text(outcome.hwm), "stop_price": decimal_text(stop)}
        if outcome.status == "expired":
            return {"status": "expired", "expired_at": stamp, "updated_at": stamp}
        if outcome.status == "canceled":
            return {"status": "canceled", "canceled_at": stamp, "updated_at": stamp}
        if outcome.price is None:
            return {}
        return self._fill(row, outcome.price, instant, ledger)

    def _fill(
        self, row: dict[str, Any], price: Decimal, at: dt.datetime, ledger: Ledger
    ) -> dict[str, Any]:
        """Fill `row` at `price` (or reject it when it no longer fits the account) and book
        the fill in `ledger`."""
        stamp = timestamp(at)
        if row["qty"] is not None:
            qty = Decimal(row["qty"])
        else:
            qty = (Decimal(row["notional"]) / price).quantize(
                Decimal(1).scaleb(-QTY_PLACES), rounding=ROUND_DOWN
            )
        held = ledger.holdings.get(row["symbol"], Holding()).qty
        reason = None
        if qty <= 0:
            reason = "quantity rounds to zero"
        elif row["side"] == "buy" and held >= 0:
            marks = self._marks_at(at)
            marks[row["symbol"]] = price
            if qty * price > self._buying_power(ledger, marks, Decimal(0)):
                reason = "insufficient buying power at the fill"
        elif row["side"] == "sell" and held > 0 and qty > held:
            reason = "insufficient qty at the fill"
        elif row["side"] == "sell" and held <= 0:
            marks = self._marks_at(at)
            marks[row["symbol"]] = price
            if not self.margin or qty % 1 != 0:
                reason = "insufficient qty at the fill (no short selling in this account)"
            elif qty * price > self._buying_power(ledger, marks, Decimal(0)):
                reason = "insufficient buying power for the short sale at the fill"
        elif row["side"] == "buy" and held < 0 and qty > -held:
            reason = "insufficient qty at the fill"
        if reason is not None:
            return {"status": "rejected", "failed_at": stamp, "updated_at": stamp,
                    "reject_reason": reason}  # fmt: skip
        ledger.apply(row["symbol"], row["side"], qty, price, clk.ny_date(at))
        return {
            "status": "filled",
            "filled_at": stamp,
            "updated_at": stamp,
            "filled_qty": decimal_text(qty, QTY_PLACES),
            "filled_avg_price": decimal_text(price),
        }

    # -- valuation ------------------------------------------------------------------------
    def _mark(self, symbol: str, p: clk.Phase) -> Decimal:
        """Last price known at the simulated time (see the module docstring)."""
        bar = self.prices.bar(symbol, p.session)
        if p.is_open and bar is not None:
            return bar.open
        found = self.prices.close_asof(symbol, p.session)
        return price_decimal(found) if found is not None else Decimal(0)

    def _marks_at(self, at: dt.datetime) -> dict[str, Decimal]:
        """Marks of every held or ordered symbol at instant `at` (an open or a close)."""
        p = clk.phase(at)
        symbols = {r["symbol"] for r in self.store.orders()}
        return {s: self._mark(s, p) for s in symbols}

    def _lastday(self, symbol: str, p: clk.Phase) -> Decimal:
        found = self.prices.close_asof(symbol, clk.previous_session(p.session).date())
        return price_decimal(found) if found is not None else self._mark(symbol, p)

    def _ledger(self, until: dt.datetime | None = None) -> Ledger:
        return replay(
            self._initial_cash(),
            self.store.filled_orders(),
            None if until is None else timestamp(until),
        )

    def _pending(self, p: clk.Phase) -> tuple[Decimal, dict[str, Decimal], dict[str, Decimal]]:
        """(estimated cost of open orders that use buying power, open sell qty per symbol,
        open buy qty per symbol)."""
        reserved, selling, buying = Decimal(0), {}, {}
        for row in self.store.orders(OPEN_STATUSES):
            mark = self._order_price(row, self._mark(row["symbol"], p))
            if row["notional"]:
                qty = Decimal(row["notional"]) / (mark or 1)
            else:
                qty = Decimal(row["qty"])
            book = buying if row["side"] == "buy" else selling
            book[row["symbol"]] = book.get(row["symbol"], Decimal(0)) + qty
            if row["position_intent"] in (None, "buy_to_open", "sell_to_open"):
                if row["side"] == "buy" or row["position_intent"] == "sell_to_open":
                    reserved += Decimal(row["notional"]) if row["notional"] else qty * mark
        return reserved, selling, buying

    @staticmethod
    def _order_price(row: dict[str, Any], mark: Decimal) -> Decimal:
        """The price an open order is estimated at: its limit (or stop), else the mark."""
        for name in ("limit_price", "stop_price"):
            if row.get(name):
                return Decimal(row[name])
        return mark

    def _exposure(self, ledger: Ledger, marks: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
        """(long market value, short market value <= 0)."""
        long_value, short_value = Decimal(0), Decimal(0)
        for symbol, held in ledger.positions().items():
            value = held.qty * marks.get(symbol, Decimal(0))
            if value >= 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def _multiplier(self, equity: Decimal) -> Decimal:
        return Decimal(2) if self.margin and equity >= MARGIN_MINIMUM else Decimal(1)

    def _buying_power(
        self, ledger: Ledger, marks: dict[str, Decimal], reserved: Decimal
    ) -> Decimal:
        """Cash account: cash. Margin: multiplier x equity - gross position value (Reg T).
        Both minus the estimated cost of open orders that open positions."""
        long_value, short_value = self._exposure(ledger, marks)
        equity = ledger.cash + long_value + short_value
        if self.margin:
            power = self._multiplier(equity) * equity - (long_value - short_value)
        else:
            power = ledger.cash
        return max(Decimal(0), power - reserved)

    def _marks(self, p: clk.Phase, ledger: Ledger) -> dict[str, Decimal]:
        return {s: self._mark(s, p) for s in ledger.positions()}

    def _equity(self, ledger: Ledger, marks: dict[str, Decimal]) -> Decimal:
        long_value, short_value = self._exposure(ledger, marks)
        return ledger.cash + long_value + short_value

    def _equity_at_close(self, day: dt.date) -> Decimal:
        """Equity at session `day`'s close, replayed (fills up to that close)."""
        before = self._ledger(until=clk.session_close_at(day))
        marks = {s: price_decimal(self.prices.close_asof(s, day) or 0) for s in before.positions()}
        return self._equity(before, marks)

    def _daytrade_count(self, ledger: Ledger, session: dt.date) -> int:
        """Day trades in the last 5 sessions (this one included)."""
        window = clk.sessions_between(session - dt.timedelta(days=14), session)[-PDT_SESSIONS:]
        first = window[0] if window else session
        return sum(1 for day in ledger.day_trades if first <= day <= session)

    def account(self) -> dict[str, Any]:
        with self._lock:
            p = clk.phase(self.now())
            ledger = self._ledger()
            marks = self._marks(p, ledger)
            long_value, short_value = self._exposure(ledger, marks)
            equity = ledger.cash + long_value + short_value
            reserved, _, _ = self._pending(p)
            buying_power = self._buying_power(ledger, marks, reserved)
            prev = clk.previous_session(p.session).date()
            last_equity = self._equity_at_close(prev)
            multiplier = self._multiplier(equity)
            gross = long_value - short_value
            initial_margin = gross * INITIAL_MARGIN if self.margin else Decimal(0)
            maintenance = gross * MAINTENANCE_MARGIN if self.margin else Decimal(0)
            daytrades = self._daytrade_count(ledger, p.session)
            daytrading_bp = (
                max(Decimal(0), 4 * (last_equity - maintenance))
                if self.margin and last_equity >= PDT_EQUITY
                else Decimal(0)
            )
            bp = money(buying_power)
            return {
                "id": self.store.get_meta("account_id"),
                "admin_configurations": {},
                "user_configurations": None,
                "account_number": self.store.get_meta("account_number"),
                "status": "ACTIVE",
                "crypto_status": "INACTIVE",
                "options_approved_level": 0,
                "options_trading_level": 0,
                "currency": "USD",
                "buying_power": bp,
                "regt_buying_power": bp,
                "daytrading_buying_power": money(daytrading_bp),
                "effective_buying_power": bp,
                "non_marginable_buying_power": money(max(Decimal(0), ledger.cash - reserved)),
                "options_buying_power": bp,
                "bod_dtbp": money(daytrading_bp),
                "cash": money(ledger.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": money(equity),
                "pattern_day_trader": daytrades >= PDT_TRADES,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": self.store.get_meta("created_at"),
                "trade_suspended_by_user": False,
                "multiplier": str(multiplier),
                "shorting_enabled": self.margin and equity >= MARGIN_MINIMUM,
                "equity": money(equity),
                "last_equity": money(last_equity),
                "long_market_value": money(long_value),
                "short_market_value": money(short_value),
                "position_market_value": money(long_value + short_value),
                "initial_margin": money(initial_margin),
                "maintenance_margin": money(maintenance),
                "last_maintenance_margin": money(maintenance),
                "sma": "0",
                "daytrade_count": daytrades,
                "balance_asof": prev.isoformat(),
                "crypto_tier": 0,
                "intraday_adjustments": "0",
                "pending_reg_taf_fees": "0",
            }

    def positions(self) -> list[dict[str, Any]]:
        with self._lock:
            p = clk.phase(self.now())
            _, selling, buying = self._pending(p)
            ledger = self._ledger()
            out = []
            for symbol, held in sorted(ledger.positions().items()):
                closing = selling if held.qty > 0 else buying
                out.append(self._position_json(symbol, held, p, closing.get(symbol, Decimal(0))))
            return out

    def position(self, symbol_or_asset_id: str) -> dict[str, Any]:
        wanted = symbol_or_asset_id.strip()
        for pos in self.positions():
            if wanted.upper() == pos["symbol"] or wanted.lower() == pos["asset_id"]:
                return pos
        raise not_found("position does not exist")

    def _position_json(
        self, symbol: str, held: Holding, p: clk.Phase, closing: Decimal
    ) -> dict[str, Any]:
        current = self._mark(symbol, p)
        lastday = self._lastday(symbol, p)
        market_value = held.qty * current
        unrealized = market_value - held.cost
        day_base = held.qty * lastday
        intraday = market_value - day_base
        return {
            "asset_id": asset_id_for(symbol),
            "symbol": symbol,
            "exchange": EXCHANGE,
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": decimal_text(held.qty, QTY_PLACES),
            "avg_entry_price": decimal_text(held.avg_entry_price, 6),
            "side": "long" if held.qty > 0 else "short",
            "market_value": money(market_value),
            "cost_basis": money(held.cost),
            "unrealized_pl": money(unrealized),
            "unrealized_plpc": decimal_text(
                unrealized / abs(held.cost) if held.cost else Decimal(0), 10
            ),
            "unrealized_intraday_pl": money(intraday),
            "unrealized_intraday_plpc": decimal_text(
                intraday / abs(day_base) if day_base else Decimal(0), 10
            ),
            "current_price": decimal_text(current),
            "lastday_price": decimal_text(lastday),
            "change_today": decimal_text(current / lastday - 1 if lastday else Decimal(0), 10),
            "qty_available": decimal_text(
                (max(Decimal(0), abs(held.qty) - closing)) * (1 if held.qty > 0 else -1),
                QTY_PLACES,
            ),
        }

    # -- market data ----------------------------------------------------------------------
    def last_completed_session(self, now: dt.datetime | None = None) -> dt.date:
        """The latest session whose close is at or before `now` (default: the clock)."""
        now = self.now() if now is None else now
        p = clk.phase(now)
        if now >= clk.session_close_at(p.session):
            return p.session
        return clk.previous_session(p.session).date()

    def bars(
        self,
        *,
        symbols: str | None,
        timeframe: str | None,
        start: str | None = None,
        end: str | None = None,
        limit: int = BAR_LIMIT_DEFAULT,
        page_token: str | None = None,
        adjustment: str | None = None,
        feed: str | None = None,
        sort: str | None = None,
    ) -> dict[str, Any]:
        """GET /v2/stocks/bars: completed daily bars only, never past the simulated clock.

        A session's bar exists once the clock is at or past that session's close (no
        partial bar of the session in progress: no lookahead). Its `t` is midnight New York
        of the session, as Alpaca stamps daily bars; prices are the data source's adjusted
        floats (adjustment=all), the same the sandbox fills orders at. The data has no
        trade count or VWAP: `n` and `vw` are null. Results are sorted by symbol, then by
        time (`sort` asc/desc); `limit` bars per page, `next_page_token` continues.
        """
        wanted = sorted({s.strip().upper() for s in (symbols or "").split(",") if s.strip()})
        if not wanted:
            raise _invalid("symbols is required")
        if not timeframe:
            raise _invalid("timeframe is required")
        if timeframe not in DAILY_TIMEFRAMES:
            raise AlpacaError(
                422,
                42210000,
                f"the sandbox serves daily bars only (timeframe=1Day), not {timeframe!r}",
            )
        if adjustment not in (None, "", "all"):
            raise AlpacaError(
                422,
                42210000,
                f"the sandbox has no {adjustment!r} prices: its data is adjusted for splits "
                "and dividends (adjustment=all)",
            )
        if feed not in (None, "", *DATA_FEEDS):
            raise _invalid(f"invalid feed {feed!r}")
        sort = sort or "asc"
        if sort not in ("asc", "desc"):
            raise _invalid("sort must be asc or desc")
        if not 1 <= limit <= BAR_LIMIT_MAX:
            raise _invalid(f"limit must be between 1 and {BAR_LIMIT_MAX}")
        after = _decode_page_token(page_token) if page_token else None
        now = self.now()
        try:
            lo = _bar_bound(start) if start else bar_timestamp(clk.ny_date(now))
            hi = min(_bar_bound(end), now) if end else now
        except (ValueError, OverflowError):
            raise _invalid("start and end must be RFC 3339 timestamps or YYYY-MM-DD") from None
        lo = max(lo, bar_timestamp(self.prices.first_day))  # inside the data: no overflow
        if hi < lo:
            return {"bars": {}, "next_page_token": None}
        first = clk.ny_date(lo)
        if bar_timestamp(first) < lo:
            first += dt.timedelta(days=1)
        last = min(clk.ny_date(hi), self.last_completed_session(now))
        out: dict[str, list[dict[str, Any]]] = {}
        count, token = 0, None
        last_returned: tuple[str, dt.date] = ("", first)
        for symbol in wanted:
            if after is not None and symbol < after[0]:
                continue
            rows = self.prices.daily_bars(symbol, first, last)
            if sort == "desc":
                rows.reverse()
            if after is not None and symbol == after[0]:
                rows = [r for r in rows if (r[0] > after[1] if sort == "asc" else r[0] < after[1])]
            for day, values in rows:
                if count == limit:
                    token = _encode_page_token(*last_returned)
                    break
                out.setdefault(symbol, []).append(
                    {"t": bar_text(day), **values, "n": None, "vw": None}
                )
                last_returned = (symbol, day)
                count += 1
            if token is not None:
                break
        return {"bars": out, "next_page_token": token}

    def symbol_bars(self, symbol: str, **query: Any) -> dict[str, Any]:
        """GET /v2/stocks/{symbol}/bars: `bars` of one symbol as a list (same rules)."""
        wanted = symbol.strip().upper()
        if not wanted or "," in wanted:
            raise _invalid("symbol must be one ticker")
        found = self.bars(symbols=wanted, **query)
        return {
            "bars": found["bars"].get(wanted, []),
            "symbol": wanted,
            "next_page_token": found["next_page_token"],
        }

    # -- assets ---------------------------------------------------------------------------
    def _asset_json(self, symbol: str, session: dt.date) -> dict[str, Any]:
        active = self.prices.bar(symbol, session) is not None or session > self.prices.last_day
        return {
            "id": asset_id_for(symbol),
            "class": "us_equity",
            "exchange": EXCHANGE,
            "symbol": symbol,
            "name": f"{symbol} (sandbox asset, {self.source} data)",
            "status": "active" if active else "inactive",
            "tradable": active,
            "marginable": True,
            "shortable": self.margin,
            "easy_to_borrow": self.margin,
            "fractionable": True,
            "maintenance_margin_requirement": int(MAINTENANCE_MARGIN * 100),
            "attributes": [],
        }

    def asset(self, symbol_or_asset_id: str) -> dict[str, Any]:
        wanted = symbol_or_asset_id.strip()
        symbol = wanted.upper()
        if not self.prices.has(symbol):
            by_id = {asset_id_for(s): s for s in self.prices.symbols}
            if wanted.lower() not in by_id:
                raise not_found(f"asset not found for {wanted}")
            symbol = by_id[wanted.lower()]
        return self._asset_json(symbol, self._fill_session(clk.phase(self.now())))

    def assets(
        self, status: str | None = None, asset_class: str | None = None, exchange: str | None = None
    ) -> list[dict[str, Any]]:
        """GET /v2/assets: every symbol of the data source (us_equity, listed as NYSE)."""
        if status not in (None, "", "active", "inactive"):
            raise _invalid("status must be active or inactive")
        if asset_class not in (None, "", "us_equity") or exchange not in (None, "", EXCHANGE):
            return []
        session = self._fill_session(clk.phase(self.now()))
        out = [self._asset_json(s, session) for s in self.prices.symbols]
        return [a for a in out if not status or a["status"] == status]

    def _fill_session(self, p: clk.Phase) -> dt.date:
        return p.session if p.is_open else clk.ny_date(p.next_open)

    def _tradable_session(self, symbol: str) -> dt.date | None:
        """The session an order for `symbol` would fill in, if the data has a bar there
        (or the session lies past the end of the data, where the order just waits)."""
        session = self._fill_session(clk.phase(self.now()))
        if self.prices.bar(symbol, session) is not None or session > self.prices.last_day:
            return session
        return None

    # -- orders ---------------------------------------------------------------------------
    def _order_json(self, row: dict[str, Any], nested: bool = False) -> dict[str, Any]:
        """Alpaca's Order; `nested` puts an advanced order's exit legs under `legs`."""
        side = row["side"]
        legs = None
        if (
            nested
            and row.get("parent_id") is None
            and (row.get("order_class") or "simple") != ("simple")
        ):
            legs = [self._order_json(leg) for leg in self.store.legs(row["id"])]
        intent = row.get("position_intent") or ("buy_to_open" if side == "buy" else "sell_to_close")
        return {
            "id": row["id"],
            "client_order_id": row["client_order_id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "submitted_at": row["submitted_at"],
            "filled_at": row["filled_at"],
            "expired_at": row["expired_at"],
            "canceled_at": row["canceled_at"],
            "failed_at": row["failed_at"],
            "replaced_at": row.get("replaced_at"),
            "replaced_by": row.get("replaced_by"),
            "replaces": row.get("replaces"),
            "asset_id": row["asset_id"],
            "symbol": row["symbol"],
            "asset_class": "us_equity",
            "notional": row["notional"],
            "qty": row["qty"],
            "filled_qty": row["filled_qty"],
            "filled_avg_price": row["filled_avg_price"],
            "order_class": row.get("order_class") or "simple",
            "order_type": row["type"],
            "type": row["type"],
            "side": side,
            "position_intent": intent,
            "time_in_force": row["time_in_force"],
            "limit_price": row.get("limit_price"),
            "stop_price": row.get("stop_price"),
            "status": row["status"],
            "extended_hours": False,
            "legs": legs,
            "expires_at": row["expires_at"],
        } | self._trail_json(row)

    @staticmethod
    def _trail_json(row: dict[str, Any]) -> dict[str, Any]:
        """`trail_price`/`trail_percent`/`hwm` for trailing stops only: the spec makes them
        non-nullable strings and alpaca-py defaults them to None, so others omit them."""
        if row["type"] != "trailing_stop":
            return {}
        return {
            name: row.get(name)
            for name in ("trail_price", "trail_percent", "hwm")
            if row.get(name) is not None
        }

    def _check_window(self, tif: str, now: dt.datetime) -> dt.date:
        """Alpaca's auction windows; returns the session the order is for."""
        local = now.astimezone(clk.NEW_YORK)
        today = local.date()
        session_day = clk.is_session(today)
        after_hours = local.time() >= AUCTION_REOPEN
        if tif == "opg" and session_day and OPG_CUTOFF <= local.time() < AUCTION_REOPEN:
            raise unprocessable("opg orders must be submitted after 7:00pm and before 9:28am")
        if tif == "cls" and session_day:
            cutoff = (clk.session_close_at(today) - CLS_CUTOFF).astimezone(clk.NEW_YORK).time()
            if cutoff <= local.time() < AUCTION_REOPEN:
                raise unprocessable(
                    f"cls orders must be submitted after 7:00pm and before "
                    f"{cutoff.strftime('%H:%M')} ET"
                )
            if not after_hours:
                return today
        if tif in ("opg", "cls"):
            if session_day and not after_hours and local.time() < OPG_CUTOFF:
                return today
            return clk.next_session(today)
        return self._fill_session(clk.phase(now))

    def _intent(self, side: str, held: Decimal) -> str:
        if side == "buy":
            return "buy_to_close" if held < 0 else "buy_to_open"
        return "sell_to_close" if held > 0 else "sell_to_open"

    def _check_affordable(
        self, request: OrderRequest, reference: Decimal, p: clk.Phase, ledger: Ledger
    ) -> str:
        """Buying power and available quantity at submission; returns the position intent."""
        reserved, selling, buying = self._pending(p)
        held = ledger.holdings.get(request.symbol, Holding()).qty
        intent = self._intent(request.side, held)
        price = request.limit_price or request.stop_price or reference
        qty = request.qty if request.qty is not None else request.notional / (price or 1)
        if intent in ("sell_to_close", "buy_to_close"):
            pending = selling if held > 0 else buying
            available = abs(held) - pending.get(request.symbol, Decimal(0))
            if qty > available:
                raise AlpacaError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {decimal_text(qty, 9)}, "
                    f"available: {decimal_text(max(available, Decimal(0)), 9)})",
                )
            return intent
        if intent == "sell_to_open":
            if not self.margin:
                raise AlpacaError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {decimal_text(qty, 9)}, "
                    "available: 0)",
                )
            if request.fractional:
                raise AlpacaError(403, 40310000, "fractional orders cannot be sold short")
            if buying.get(request.symbol):
                raise AlpacaError(
                    403, 40310000, "cannot open a short sell while a long buy order is open"
                )
        if intent == "buy_to_open" and selling.get(request.symbol):
            raise AlpacaError(
                403, 40310000, "cannot open a long buy while a short sell order is open"
            )
        marks = self._marks(p, ledger)
        cost = request.notional if request.notional is not None else qty * price
        if cost > self._buying_power(ledger, marks, reserved):
            raise AlpacaError(403, 40310000, "insufficient buying power")
        return intent

    def _check_day_trade(self, request: OrderRequest, p: clk.Phase, ledger: Ledger) -> None:
        """Pattern day trader protection (margin accounts under $25,000 of equity)."""
        if not self.margin:
            return
        held = ledger.holdings.get(request.symbol)
        if held is None or held.qty == 0 or held.opened_today <= 0 or held.session != p.session:
            return
        closes = (held.qty > 0) == (request.side == "sell")
        if not closes or self._daytrade_count(ledger, p.session) < PDT_TRADES - 1:
            return
        if self._equity(ledger, self._marks(p, ledger)) < PDT_EQUITY:
            raise AlpacaError(403, 40310100, "trade denied due to pattern day trading protection")

    def submit_order(self, body: Any) -> dict[str, Any]:
        request = parse_order_request(body)
        with self._lock:
            if self.store.client_order_id_taken(request.client_order_id):
                raise _invalid("client_order_id must be unique")
            return self._place(request)

    def _place(self, request: OrderRequest, replaces: dict[str, Any] | None = None) -> dict:
        """Check and store one order (answered `accepted`); `replaces` is the order a
        PATCH replaces (left out of the buying-power estimate)."""
        if not self.prices.has(request.symbol):
            raise unprocessable(f'asset "{request.symbol}" not found')
        if self._tradable_session(request.symbol) is None:
            raise unprocessable(f"asset {request.symbol} is not active")
        now = self.now()
        p = clk.phase(now)
        session = self._check_window(request.time_in_force, now)
        ledger = self._ledger()
        self._check_day_trade(request, p, ledger)
        intent = self._check_affordable(request, self._mark(request.symbol, p), p, ledger)
        stamp = timestamp(now)
        mark = self._mark(request.symbol, p)
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "client_order_id": request.client_order_id,
            "symbol": request.symbol,
            "asset_id": asset_id_for(request.symbol),
            "side": request.side,
            "type": request.type,
            "time_in_force": request.time_in_force,
            "qty": None if request.qty is None else decimal_text(request.qty, QTY_PLACES),
            "notional": None if request.notional is None else decimal_text(request.notional, 2),
            "limit_price": None
            if request.limit_price is None
            else decimal_text(request.limit_price),
            "stop_price": None if request.stop_price is None else decimal_text(request.stop_price),
            "trail_price": None
            if request.trail_price is None
            else decimal_text(request.trail_price),
            "trail_percent": None
            if request.trail_percent is None
            else decimal_text(request.trail_percent),
            "status": "accepted",
            "created_at": stamp,
            "updated_at": stamp,
            "submitted_at": stamp,
            "filled_qty": "0",
            "position_intent": intent,
            "replaces": None if replaces is None else replaces["id"],
            "expires_at": timestamp(clk.session_close_at(session))
            if request.time_in_force in ("day", "opg", "cls")
            else None,
        }
        if request.type == "trailing_stop":  # the watermark starts at the last known price
            row["hwm"] = decimal_text(mark)
            row["stop_price"] = decimal_text(fills.trailing_stop_price(row, mark))
        row["order_class"] = request.order_class
        legs = self._legs(request, row)
        with self.store.transaction() as conn:
            if replaces is not None:
                self.store.update_order(
                    replaces["id"],
                    {
                        "status": "replaced",
                        "replaced_at": stamp,
                        "replaced_by": row["id"],
                        "updated_at": stamp,
                    },  # fmt: skip
                    conn,
                )
            self.store.insert_order(row, conn)
            for leg in legs:
                self.store.insert_order(leg, conn)
        return self._order_json(self.store.order(order_id=row["id"]) or row, nested=True)

    def _legs(self, request: OrderRequest, parent: dict[str, Any]) -> list[dict[str, Any]]:
        """The exit legs of a bracket/oto (`held` until the entry fills, opposite side) or
        an oco order (its stop leg, working at once, same side). The stop-loss leg comes
        first: when a session's range reaches both exits, it is the one that fills."""
        if request.order_class == "simple":
            return []
        oco = request.order_class == "oco"
        side = request.side if oco else ("sell" if request.side == "buy" else "buy")
        closing = "sell_to_close" if side == "sell" else "buy_to_close"
        specs = []
        if request.stop_loss is not None:
            kind = "stop_limit" if request.stop_loss_limit is not None else "stop"
            specs.append((kind, request.stop_loss_limit, request.stop_loss))
        if request.take_profit is not None and not oco:
            specs.append(("limit", request.take_profit, None))
        return [
            {
                **parent,
                "id": str(uuid.uuid4()),
                "client_order_id": str(uuid.uuid4()),
                "side": side,
                "type": kind,
                "limit_price": None if limit is None else decimal_text(limit),
                "stop_price": None if stop is None else decimal_text(stop),
                "status": parent["status"] if oco else "held",
                "position_intent": closing,
                "order_class": request.order_class,
                "parent_id": parent["id"],
                "replaces": None,
            }
            for kind, limit, stop in specs
        ]

    def replace_order(self, order_id: str, body: Any) -> dict[str, Any]:
        """PATCH /v2/orders/{id}: a new order with the changed fields replaces an open one."""
        if not isinstance(body, dict):
            raise AlpacaError(400, 40010000, "request body format is invalid")
        with self._lock:
            row = self.store.order(order_id=order_id.strip().lower())
            if row is None:
                raise not_found("order not found")
            if row["status"] not in OPEN_STATUSES:
                raise unprocessable(f'order is already in "{row["status"]}" state')
            if row["notional"] is not None:
                raise unprocessable("notional orders cannot be replaced")
            if (row.get("order_class") or "simple") != "simple":
                raise unprocessable(
                    "the sandbox cannot replace bracket, oco or oto orders: cancel and resend"
                )
            qty = parse_decimal(body.get("qty"), "qty", QTY_PLACES, MAX_QTY)
            limit = parse_price(body.get("limit_price"), "limit_price")
            stop = parse_price(body.get("stop_price"), "stop_price")
            trail = body.get("trail")
            if trail not in (None, "") and row["type"] != "trailing_stop":
                raise unprocessable("only trailing stop orders take trail")
            if limit is not None and row["type"] not in ("limit", "stop_limit"):
                raise unprocessable(f"a {row['type']} order has no limit_price to replace")
            if stop is not None and row["type"] not in ("stop", "stop_limit"):
                raise unprocessable(f"a {row['type']} order has no stop_price to replace")
            client_order_id = client_order_id_of(body.get("client_order_id"))
            if self.store.client_order_id_taken(client_order_id):
                raise _invalid("client_order_id must be unique")
            merged = {
                "symbol": row["symbol"],
                "side": row["side"],
                "type": row["type"],
                "time_in_force": body.get("time_in_force") or row["time_in_force"],
                "qty": str(qty) if qty is not None else row["qty"],
                "limit_price": str(limit) if limit is not None else row["limit_price"],
                "stop_price": str(stop) if stop is not None else row["stop_price"],
                "client_order_id": client_order_id,
            }
            if row["type"] == "trailing_stop":
                which = "trail_price" if row["trail_price"] is not None else "trail_percent"
                merged["stop_price"] = None
                merged[which] = trail if trail not in (None, "") else row[which]
            request = parse_order_request(merged)
            # the old order's reservation must not count against its own replacement
            with self.store.transaction() as conn:
                self.store.update_order(row["id"], {"status": "pending_replace"}, conn)
            try:
                return self._place(request, replaces=row)
            except BaseException:
                with self.store.transaction() as conn:
                    self.store.update_order(row["id"], {"status": row["status"]}, conn)
                raise

    def order(self, order_id: str, nested: bool = False) -> dict[str, Any]:
        row = self.store.order(order_id=order_id.strip().lower())
        if row is None:
            raise not_found("order not found")
        return self._order_json(row, nested)

    def order_by_client_order_id(self, client_order_id: str) -> dict[str, Any]:
        row = self.store.order(client_order_id=client_order_id)
        if row is None:
            raise not_found("order not found")
        return self._order_json(row, nested=True)

    def orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: str | None = None,
        until: str | None = None,
        direction: str = "desc",
        symbols: list[str] | None = None,
        side: str | None = None,
        nested: bool = False,
    ) -> list[dict[str, Any]]:
        """GET /v2/orders; `nested` lists an advanced order's legs under it, not beside it."""
        if status not in ("open", "closed", "all"):
            raise _invalid("status must be open, closed or all")
        if not 1 <= limit <= 500:
            raise _invalid("limit must be between 1 and 500")
        if direction not in ("asc", "desc"):
            raise _invalid("direction must be asc or desc")
        lo = timestamp(parse_instant(after, "after")) if after else None
        hi = timestamp(parse_instant(until, "until")) if until else None
        listed_open = (*OPEN_STATUSES, "held", "pending_replace")
        statuses = {"open": listed_open, "closed": CLOSED_STATUSES, "all": None}[status]
        rows = self.store.orders(statuses)
        wanted = {s.strip().upper() for s in symbols or [] if s.strip()}
        picked = [
            r
            for r in rows
            if (lo is None or r["submitted_at"] > lo)
            and (hi is None or r["submitted_at"] < hi)
            and (not wanted or r["symbol"] in wanted)
            and (side is None or r["side"] == side)
            and not (nested and r.get("parent_id"))
        ]
        picked.sort(key=lambda r: (r["submitted_at"], r["seq"]))
        if direction == "desc":
            picked.reverse()
        return [self._order_json(r, nested) for r in picked[:limit]]

    def cancel_order(self, order_id: str) -> None:
        with self._lock:
            row = self.store.order(order_id=order_id.strip().lower())
            if row is None:
                raise not_found("order not found")
            if row["status"] not in OPEN_STATUSES:
                raise unprocessable(f'order is already in "{row["status"]}" state')
            stamp = timestamp(self.now())
            group = [row]
            if (row.get("order_class") or "simple") != "simple":  # the whole bracket / oco
                parent_id = row.get("parent_id") or row["id"]
                group = [self.store.order(order_id=parent_id) or row, *self.store.legs(parent_id)]
            with self.store.transaction() as conn:
                for member in group:
                    if member["id"] == row["id"] or member["status"] in (*OPEN_STATUSES, "held"):
                        self.store.update_order(
                            member["id"],
                            {"status": "canceled", "canceled_at": stamp, "updated_at": stamp},
                            conn,
                        )

    def cancel_all(self) -> list[dict[str, Any]]:
        with self._lock:
            out = []
            for row in self.store.orders(OPEN_STATUSES):
                self.cancel_order(row["id"])
                out.append({"id": row["id"], "status": 200, "body": self.order(row["id"])})
            return out

    # -- closing positions ----------------------------------------------------------------
    def close_position(
        self, symbol_or_asset_id: str, qty: str | None = None, percentage: str | None = None
    ) -> dict[str, Any]:
        """DELETE /v2/positions/{symbol}: a market day order that closes all of it, `qty`
        shares or `percentage` percent."""
        with self._lock:
            position = self.position(symbol_or_asset_id)
            held = abs(Decimal(position["qty"]))
            if qty not in (None, "") and percentage not in (None, ""):
                raise _invalid("qty and percentage cannot both be specified")
            amount = held
            if qty not in (None, ""):
                amount = parse_decimal(qty, "qty", QTY_PLACES, MAX_QTY) or held
            elif percentage not in (None, ""):
                share = parse_decimal(percentage, "percentage", QTY_PLACES, Decimal(100))
                amount = (held * (share or 0) / 100).quantize(
                    Decimal(1).scaleb(-QTY_PLACES), rounding=ROUND_DOWN
                )
                if held % 1 == 0:
                    amount = amount.to_integral_value(rounding=ROUND_DOWN)
                if amount <= 0:
                    raise _invalid("percentage is too small to close any share")
            side = "sell" if Decimal(position["qty"]) > 0 else "buy"
            request = parse_order_request(
                {
                    "symbol": position["symbol"],
                    "side": side,
                    "type": "market",
                    "time_in_force": "day",
                    "qty": str(amount),
                }  # fmt: skip
            )
            return self._place(request)

    def close_all_positions(self, cancel_orders: bool = False) -> list[dict[str, Any]]:
        """DELETE /v2/positions: 207 with one {"symbol", "status", "body"} per position."""
        with self._lock:
            if cancel_orders:
                self.cancel_all()
            out = []
            for position in self.positions():
                try:
                    body = self.close_position(position["symbol"])
                    out.append(
                        {
                            "symbol": position["symbol"],
                            "status": 200,
                            "order_id": body["id"],
                            "body": body,
                        }
                    )
                except AlpacaError as exc:
                    out.append(
                        {"symbol": position["symbol"], "status": exc.status, "body": exc.body()}
                    )
            return out

    # -- account activities and portfolio history ------------------------------------------
    def activities(
        self,
        activity_types: str | None = None,
        date: str | None = None,
        after: str | None = None,
        until: str | None = None,
        direction: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> list[dict[str, Any]]:
        """GET /v2/account/activities[/{type}]: one FILL per filled order (the sandbox has
        no other activity: no transfers, dividends or fees)."""
        types = {t.strip().upper() for t in (activity_types or "").split(",") if t.strip()}
        unknown = types - set(ACTIVITY_TYPES)
        if unknown:
            raise _invalid(f"unknown activity type(s) {', '.join(sorted(unknown))}")
        direction = direction or "desc"
        if direction not in ("asc", "desc"):
            raise _invalid("direction must be asc or desc")
        if not 1 <= page_size <= 100:
            raise _invalid("page_size must be between 1 and 100")
        if date and (after or until):
            raise _invalid("date cannot be used with after or until")
        if types and "FILL" not in types:
            return []
        lo = hi = None
        if date:
            day = parse_day(date, "date")
            if not dt.date.min < day < dt.date.max:
                return []
            lo = timestamp(bar_timestamp(day) - dt.timedelta(microseconds=1))
            hi = timestamp(bar_timestamp(day + dt.timedelta(days=1)))
        if after:
            lo = timestamp(parse_instant(after, "after"))
        if until:
            hi = timestamp(parse_instant(until, "until"))
        rows = [
            r
            for r in self.store.filled_orders()
            if (lo is None or r["filled_at"] > lo) and (hi is None or r["filled_at"] < hi)
        ]
        items = [self._fill_activity(r) for r in rows]
        if direction == "desc":
            items.reverse()
        if page_token:
            ids = [a["id"] for a in items]
            if page_token not in ids:
                raise _invalid("invalid page_token")
            items = items[ids.index(page_token) + 1 :]
        return items[:page_size]

    @staticmethod
    def _fill_activity(row: dict[str, Any]) -> dict[str, Any]:
        at = clk.parse_instant(row["filled_at"])
        return {
            "id": f"{at.strftime('%Y%m%d%H%M%S%f')[:17]}::{row['id']}",
            "activity_type": "FILL",
            "transaction_time": row["filled_at"],
            "type": "fill",
            "price": row["filled_avg_price"],
            "qty": row["filled_qty"],
            "side": row["side"] if row.get("position_intent") != "sell_to_open" else "sell_short",
            "symbol": row["symbol"],
            "leaves_qty": "0",
            "order_id": row["id"],
            "cum_qty": row["filled_qty"],
            "order_status": "filled",
        }

    def portfolio_history(
        self,
        period: str | None = None,
        timeframe: str | None = None,
        date_end: str | None = None,
    ) -> dict[str, Any]:
        """GET /v2/account/portfolio/history: equity at each session close (timeframe 1D
        only: the data is daily), from the account's first session, `period` back from
        `date_end` (default: the last closed session)."""
        if timeframe not in (None, "", "1D"):
            raise unprocessable(
                f"the sandbox has daily prices only: use timeframe=1D, not {timeframe!r}"
            )
        period = period or "1M"
        units = {"D": 1, "W": 7, "M": 30, "A": 365}
        number, unit = period[:-1], period[-1:].upper()
        if unit not in units or not number.isdigit() or not 0 < int(number) <= 100:
            raise _invalid("period is a number and D, W, M or A, such as 1M")
        last = self.last_completed_session()
        if date_end:
            last = min(last, parse_day(date_end, "date_end"))
        created = clk.ny_date(clk.parse_instant(self.store.get_meta("created_at") or ""))
        span = dt.timedelta(days=int(number) * units[unit] - 1)
        first = created if last - created <= span else last - span  # no date underflow
        days = clk.sessions_between(first, last) if first <= last else []
        base = self._initial_cash()
        if days:
            before = clk.previous_session(days[0]).date()
            base = self._equity_at_close(before) if before >= created else base
        equity = [self._equity_at_close(day) for day in days]
        return {
            "timestamp": [int(bar_timestamp(day).timestamp()) for day in days],
            "equity": [float(money(e)) for e in equity],
            "profit_loss": [float(money(e - base)) for e in equity],
            "profit_loss_pct": [float(decimal_text((e - base) / base, 10)) for e in equity],
            "base_value": float(money(base)),
            "timeframe": "1D",
            "cashflow": {},
        }

    # -- sandbox --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self._lock:
            p = clk.phase(self.now())
            account = self.account()
            counts: dict[str, int] = {}
            for row in self.store.orders():
                counts[row["status"]] = counts.get(row["status"], 0) + 1
            return {
                "now": ny_timestamp(p.now),
                "session": p.session.isoformat(),
                "is_open": p.is_open,
                "prices_at": "open" if p.is_open else "close",
                "source": self.source,
                "synthetic": self.prices.synthetic,
                "account_type": self.account_type,
                "data_first_day": self.prices.first_day.isoformat(),
                "data_last_day": self.prices.last_day.isoformat(),
                "db_path": str(self.store.path),
                "initial_cash": money(self._initial_cash()),
                "cash": account["cash"],
                "equity": account["equity"],
                "buying_power": account["buying_power"],
                "daytrade_count": account["daytrade_count"],
                "positions": {pos["symbol"]: pos["qty"] for pos in self.positions()},
                "orders": counts,
            }
