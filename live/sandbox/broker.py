"""The sandbox's paper broker: Alpaca's order, position and account rules, without HTTP.

`SandboxBroker` owns the SQLite store and the market data; `live.sandbox.app` turns its
answers into Alpaca's HTTP responses. Every method returns the JSON body Alpaca would send
(dicts with ids as UUID strings, timestamps as RFC 3339, amounts as decimal strings) or
raises `AlpacaError` with Alpaca's status, code and message.

Fill and valuation rules (the same as the backtest's, see ARCHITECTURE.md "Decision time"):

- A market order submitted while the simulated market is open (09:30 to the close of an
  NYSE session) fills at once, entirely, at **that session's open** from the data source,
  the price a backtest fills the same decision at. It is answered `filled`.
- An order submitted while the market is closed is `accepted` and waits; when the clock
  next crosses a session's 09:30 open it fills at that open (`filled_at` = 09:30 New York).
- A buy needs buying power: cash minus the estimated cost of open buy orders. At a queued
  fill the cash is checked again against the real cost; an order that no longer fits (the
  open gapped up) or whose symbol has no bar that day is `rejected`, as Backtrader's
  broker refuses it (status Margin). Sells may not exceed the position (no shorting).
- Positions are valued at the last price known at the simulated time, with no lookahead:
  the session's **open** while the market is open in it, its **close** once the clock is
  past its close (until the next open). `lastday_price` is the previous session's close;
  `last_equity` is the equity at the previous session's close.
- Cash and positions are not stored: they are replayed from the filled orders.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd

from live.sandbox import clock as clk
from live.sandbox.store import Store
from marketdata import MarketData, load

DEFAULT_CASH = Decimal("100000")
MONEY_PLACES = 4
QTY_PLACES = 9
MAX_CLIENT_ORDER_ID = 48
OPEN_STATUSES = ("new", "accepted", "pending_new", "partially_filled", "accepted_for_bidding")
CLOSED_STATUSES = ("filled", "canceled", "expired", "rejected", "replaced", "done_for_day")
SUPPORTED_TIF = ("day", "gtc", "opg")
EXCHANGE = "NYSE"  # the data sources carry no listing venue; one valid Alpaca value for all
_SETTLEMENT_LOOKAHEAD = 15  # calendar days that surely hold the next two sessions
_ASSET_NAMESPACE = uuid.UUID("5f0c2c4e-0d44-4b55-9c1a-7a1b2d3e4f50")
# Market Data API (GET /v2/stocks/bars): daily bars only, the data source's adjusted prices
BAR_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
DAILY_TIMEFRAMES = ("1Day", "1D")
BAR_LIMIT_DEFAULT = 1000
BAR_LIMIT_MAX = 10000
DATA_FEEDS = ("iex", "sip", "otc", "delayed_sip", "boats", "overnight")


class AlpacaError(Exception):
    """An error answer in Alpaca's shape: HTTP status plus {"code", "message"}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def _invalid(message: str) -> AlpacaError:
    return AlpacaError(422, 40010001, message)


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
    except (ValueError, binascii.Error, UnicodeDecodeError):
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
        self._frames: dict[str, pd.DataFrame] = {
            s: f[["open", "close"]] for s, f in data.bars.items() if not f.empty
        }
        self._ohlcv: dict[str, pd.DataFrame] = {
            s: f[list(BAR_FIELDS.values())] for s, f in data.bars.items() if not f.empty
        }
        if not self._frames:
            raise ValueError(f"the data source {data.source} has no bars")
        self.first_day = min(f.index[0] for f in self._frames.values()).date()
        self.last_day = max(f.index[-1] for f in self._frames.values()).date()

    @property
    def symbols(self) -> list[str]:
        return sorted(self._frames)

    def has(self, symbol: str) -> bool:
        return symbol in self._frames

    def on(self, symbol: str, day: dt.date) -> tuple[float, float] | None:
        """(open, close) of `symbol` in session `day`, None without a bar that day."""
        frame = self._frames.get(symbol)
        if frame is None:
            return None
        stamp = pd.Timestamp(day)
        pos = frame.index.searchsorted(stamp)
        if pos < len(frame) and frame.index[pos] == stamp:
            row = frame.iloc[pos]
            return float(row["open"]), float(row["close"])
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
        frame = self._frames.get(symbol)
        if frame is None:
            return None
        pos = frame.index.searchsorted(pd.Timestamp(day), side="right") - 1
        return None if pos < 0 else float(frame.iloc[pos]["close"])


# -- ledger -------------------------------------------------------------------------------
@dataclass
class Holding:
    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # cost basis of the shares still held (average cost)

    @property
    def avg_entry_price(self) -> Decimal:
        return self.cost / self.qty if self.qty else Decimal(0)


@dataclass
class Ledger:
    cash: Decimal
    holdings: dict[str, Holding] = field(default_factory=dict)


def replay(initial_cash: Decimal, fills: list[dict[str, Any]], until: str | None = None) -> Ledger:
    """Cash and holdings after the filled orders (those filled at or before `until`)."""
    ledger = Ledger(initial_cash)
    for order in fills:
        if until is not None and order["filled_at"] > until:
            break
        qty = Decimal(order["filled_qty"])
        price = Decimal(order["filled_avg_price"])
        held = ledger.holdings.setdefault(order["symbol"], Holding())
        if order["side"] == "buy":
            ledger.cash -= qty * price
            held.qty += qty
            held.cost += qty * price
        else:
            ledger.cash += qty * price
            held.cost -= held.avg_entry_price * qty
            held.qty -= qty
        if held.qty == 0:
            del ledger.holdings[order["symbol"]]
    return ledger


# -- the broker ---------------------------------------------------------------------------
def _parse_amount(body: dict[str, Any], name: str) -> Decimal | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _invalid(f"invalid {name}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise _invalid(f"invalid {name}") from None
    if not amount.is_finite() or amount <= 0:
        raise _invalid(f"{name} must be > 0")
    return amount.quantize(Decimal(1).scaleb(-QTY_PLACES), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    client_order_id: str

    @property
    def fractional(self) -> bool:
        return self.notional is not None or (self.qty is not None and self.qty % 1 != 0)


def parse_order_request(body: Any) -> OrderRequest:
    """Check a POST /v2/orders body the way Alpaca does (422 with code 40010001)."""
    if not isinstance(body, dict):
        raise AlpacaError(400, 40010000, "request body format is invalid")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        raise _invalid("symbol is required")
    side = body.get("side")
    if side not in ("buy", "sell"):
        raise _invalid("side must be buy or sell")
    order_type = body.get("type", body.get("order_type"))
    if order_type is None:
        raise _invalid("type is required")
    if order_type != "market":
        raise AlpacaError(
            422, 42210000, f"order type {order_type!r} is not supported by the sandbox"
        )
    tif = body.get("time_in_force")
    if tif is None:
        raise _invalid("time_in_force is required")
    if tif not in SUPPORTED_TIF:
        raise AlpacaError(422, 42210000, f"time_in_force {tif!r} is not supported by the sandbox")
    if body.get("order_class") not in (None, "", "simple"):
        raise AlpacaError(422, 42210000, "the sandbox supports simple orders only")
    if body.get("extended_hours"):
        raise AlpacaError(422, 42210000, "extended hours order must be DAY limit orders")
    qty, notional = _parse_amount(body, "qty"), _parse_amount(body, "notional")
    if qty is not None and notional is not None:
        raise _invalid("qty and notional cannot both be specified")
    if qty is None and notional is None:
        raise _invalid("qty or notional is required")
    if notional is not None and notional < 1:
        raise AlpacaError(403, 40310000, "cost basis must be >= 1")
    client_order_id = body.get("client_order_id")
    if client_order_id in (None, ""):
        client_order_id = str(uuid.uuid4())
    if not isinstance(client_order_id, str):
        raise _invalid("invalid client_order_id")
    if len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise _invalid(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
    request = OrderRequest(symbol.strip().upper(), side, tif, qty, notional, client_order_id)
    if request.fractional and tif != "day":
        raise AlpacaError(422, 42210000, "fractional orders must be DAY orders")
    return request


class SandboxBroker:
    """Alpaca's paper account, on a simulated clock, persisted in one SQLite file.

    `db_path` may hold an earlier sandbox: its account, clock and orders are kept. Then
    `source`/`cash` must match what it was created with (None: take what it has) and
    `date` may only move its clock forward. A new database starts with `cash` (default
    100000) at 15:00 New York of session `date` (default: the last session of the data).
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        source: str | None = None,
        cash: float | Decimal | None = None,
        date: str | dt.date | None = None,
        symbols: list[str] | None = None,
    ) -> None:
        self.store = Store(db_path)
        self._lock = threading.RLock()
        self._symbols = symbols
        self._prices: PriceBook | None = None
        try:
            self._open(source, cash, date)
        except BaseException:
            self.store.close()
            raise

    # -- setup ----------------------------------------------------------------------------
    def _open(self, source: str | None, cash: Any, date: str | dt.date | None) -> None:
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
        try:
            first = clk.parse_day(start) if start else dt.date(1970, 1, 1)
            last = clk.parse_day(end) if end else dt.date(2029, 12, 31)
        except ValueError:
            raise _invalid("start and end must be dates (YYYY-MM-DD) or RFC 3339") from None
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
            for _ in range(sessions):
                day = clk.next_session(day)
            return self.set_clock(clk.trading_time(day))

    def set_clock(self, when: dt.datetime) -> dict[str, Any]:
        """Move the clock forward to `when`; queued orders fill at any open crossed."""
        with self._lock:
            when = clk.to_utc(when)
            if when < self.now():
                raise conflict(
                    f"the sandbox clock only moves forward (it is {ny_timestamp(self.now())})"
                )
            session = clk.phase(when).session
            if session > self.prices.last_day:
                raise conflict(
                    f"no market data for session {session} in {self.source} (the data ends "
                    f"{self.prices.last_day}); the sandbox cannot move there"
                )
            settled = self._move_clock(when)
            return {"clock": self.clock(), "settled": settled, "state": self.state()}

    def _move_clock(self, target: dt.datetime) -> list[dict[str, Any]]:
        settled: list[dict[str, Any]] = []
        with self._lock, self.store.transaction() as conn:
            opens = clk.opens_between(self.now(), target)
            if opens:
                session = opens[0]
                for row in self.store.orders(OPEN_STATUSES):
                    changes = self._fill(row, session, clk.session_open_at(session))
                    self.store.update_order(row["id"], changes, conn)
                    settled.append(self._order_json({**row, **changes}))
            self.store.set_meta({"clock": timestamp(target)}, conn)
        return settled

    # -- valuation ------------------------------------------------------------------------
    def _mark(self, symbol: str, p: clk.Phase) -> Decimal:
        """Last price known at the simulated time (see the module docstring)."""
        bar = self.prices.on(symbol, p.session)
        if p.is_open and bar is not None:
            return price_decimal(bar[0])
        found = self.prices.close_asof(symbol, p.session)
        return price_decimal(found) if found is not None else Decimal(0)

    def _lastday(self, symbol: str, p: clk.Phase) -> Decimal:
        found = self.prices.close_asof(symbol, clk.previous_session(p.session).date())
        return price_decimal(found) if found is not None else self._mark(symbol, p)

    def _ledger(self, until: dt.datetime | None = None) -> Ledger:
        return replay(
            self._initial_cash(),
            self.store.filled_orders(),
            None if until is None else timestamp(until),
        )

    def _pending(self, p: clk.Phase) -> tuple[Decimal, dict[str, Decimal]]:
        """(estimated cost of open buys, estimated qty of open sells per symbol)."""
        reserved, selling = Decimal(0), {}
        for row in self.store.orders(OPEN_STATUSES):
            mark = self._mark(row["symbol"], p)
            if row["side"] == "buy":
                reserved += (
                    Decimal(row["notional"]) if row["notional"] else Decimal(row["qty"]) * mark
                )
            else:
                qty = Decimal(row["qty"]) if row["qty"] else Decimal(row["notional"]) / (mark or 1)
                selling[row["symbol"]] = selling.get(row["symbol"], Decimal(0)) + qty
        return reserved, selling

    def account(self) -> dict[str, Any]:
        with self._lock:
            p = clk.phase(self.now())
            ledger = self._ledger()
            long_value = sum(
                (h.qty * self._mark(s, p) for s, h in ledger.holdings.items()), Decimal(0)
            )
            equity = ledger.cash + long_value
            reserved, _ = self._pending(p)
            buying_power = max(Decimal(0), ledger.cash - reserved)
            prev = clk.previous_session(p.session).date()
            before = self._ledger(until=clk.session_close_at(prev))
            last_equity = before.cash + sum(
                (
                    h.qty * price_decimal(self.prices.close_asof(s, prev) or 0)
                    for s, h in before.holdings.items()
                ),
                Decimal(0),
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
                "daytrading_buying_power": "0",
                "effective_buying_power": bp,
                "non_marginable_buying_power": bp,
                "options_buying_power": bp,
                "bod_dtbp": "0",
                "cash": money(ledger.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": money(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": self.store.get_meta("created_at"),
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": False,
                "equity": money(equity),
                "last_equity": money(last_equity),
                "long_market_value": money(long_value),
                "short_market_value": "0",
                "position_market_value": money(long_value),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
                "balance_asof": prev.isoformat(),
                "crypto_tier": 0,
                "intraday_adjustments": "0",
                "pending_reg_taf_fees": "0",
            }

    def positions(self) -> list[dict[str, Any]]:
        with self._lock:
            p = clk.phase(self.now())
            _, selling = self._pending(p)
            ledger = self._ledger()
            return [
                self._position_json(s, h, p, selling.get(s, Decimal(0)))
                for s, h in sorted(ledger.holdings.items())
            ]

    def position(self, symbol_or_asset_id: str) -> dict[str, Any]:
        wanted = symbol_or_asset_id.strip()
        for pos in self.positions():
            if wanted.upper() == pos["symbol"] or wanted.lower() == pos["asset_id"]:
                return pos
        raise not_found("position does not exist")

    def _position_json(
        self, symbol: str, held: Holding, p: clk.Phase, selling: Decimal
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
            "side": "long",
            "market_value": money(market_value),
            "cost_basis": money(held.cost),
            "unrealized_pl": money(unrealized),
            "unrealized_plpc": decimal_text(
                unrealized / held.cost if held.cost else Decimal(0), 10
            ),
            "unrealized_intraday_pl": money(intraday),
            "unrealized_intraday_plpc": decimal_text(
                intraday / day_base if day_base else Decimal(0), 10
            ),
            "current_price": decimal_text(current),
            "lastday_price": decimal_text(lastday),
            "change_today": decimal_text(current / lastday - 1 if lastday else Decimal(0), 10),
            "qty_available": decimal_text(max(Decimal(0), held.qty - selling), QTY_PLACES),
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
        except ValueError:
            raise _invalid("start and end must be RFC 3339 timestamps or YYYY-MM-DD") from None
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

    # -- assets ---------------------------------------------------------------------------
    def asset(self, symbol_or_asset_id: str) -> dict[str, Any]:
        wanted = symbol_or_asset_id.strip()
        symbol = wanted.upper()
        if not self.prices.has(symbol):
            by_id = {asset_id_for(s): s for s in self.prices.symbols}
            if wanted.lower() not in by_id:
                raise not_found(f"asset not found for {wanted}")
            symbol = by_id[wanted.lower()]
        active = self._tradable_session(symbol) is not None
        return {
            "id": asset_id_for(symbol),
            "class": "us_equity",
            "exchange": EXCHANGE,
            "symbol": symbol,
            "name": f"{symbol} (sandbox asset, {self.source} data)",
            "status": "active" if active else "inactive",
            "tradable": active,
            "marginable": True,
            "shortable": False,
            "easy_to_borrow": False,
            "fractionable": True,
            "maintenance_margin_requirement": 100,
            "attributes": [],
        }

    def _fill_session(self, p: clk.Phase) -> dt.date:
        return p.session if p.is_open else clk.ny_date(p.next_open)

    def _tradable_session(self, symbol: str) -> dt.date | None:
        """The session an order for `symbol` would fill in, if the data has a bar there
        (or the session lies past the end of the data, where the order just waits)."""
        session = self._fill_session(clk.phase(self.now()))
        if self.prices.on(symbol, session) is not None or session > self.prices.last_day:
            return session
        return None

    # -- orders ---------------------------------------------------------------------------
    def _order_json(self, row: dict[str, Any]) -> dict[str, Any]:
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
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": row["asset_id"],
            "symbol": row["symbol"],
            "asset_class": "us_equity",
            "notional": row["notional"],
            "qty": row["qty"],
            "filled_qty": row["filled_qty"],
            "filled_avg_price": row["filled_avg_price"],
            "order_class": "simple",
            "order_type": row["type"],
            "type": row["type"],
            "side": row["side"],
            "position_intent": "buy_to_open" if row["side"] == "buy" else "sell_to_close",
            "time_in_force": row["time_in_force"],
            "limit_price": None,
            "stop_price": None,
            "status": row["status"],
            "extended_hours": False,
            "legs": None,
            "expires_at": row["expires_at"],
        }

    def submit_order(self, body: Any) -> dict[str, Any]:
        request = parse_order_request(body)
        with self._lock:
            if self.store.client_order_id_taken(request.client_order_id):
                raise _invalid("client_order_id must be unique")
            if not self.prices.has(request.symbol):
                raise AlpacaError(422, 42210000, f'asset "{request.symbol}" not found')
            session = self._tradable_session(request.symbol)
            if session is None:
                raise AlpacaError(422, 42210000, f"asset {request.symbol} is not active")
            now = self.now()
            p = clk.phase(now)
            if request.time_in_force == "opg" and p.is_open:
                raise AlpacaError(
                    422, 42210000, "opg orders must be submitted while the market is closed"
                )
            bar = self.prices.on(request.symbol, session)
            reference = (
                price_decimal(bar[0]) if p.is_open and bar else self._mark(request.symbol, p)
            )
            self._check_affordable(request, reference, p)
            stamp = timestamp(now)
            row = {
                "id": str(uuid.uuid4()),
                "client_order_id": request.client_order_id,
                "symbol": request.symbol,
                "asset_id": asset_id_for(request.symbol),
                "side": request.side,
                "type": "market",
                "time_in_force": request.time_in_force,
                "qty": None if request.qty is None else decimal_text(request.qty, QTY_PLACES),
                "notional": None
                if request.notional is None
                else decimal_text(request.notional, QTY_PLACES),
                "status": "accepted",
                "created_at": stamp,
                "updated_at": stamp,
                "submitted_at": stamp,
                "filled_qty": "0",
                "expires_at": timestamp(clk.session_close_at(session))
                if request.time_in_force == "day"
                else None,
            }
            if p.is_open:
                row.update(self._fill(row, p.session, now))
            with self.store.transaction() as conn:
                self.store.insert_order(row, conn)
            return self._order_json(self.store.order(order_id=row["id"]) or row)

    def _check_affordable(self, request: OrderRequest, reference: Decimal, p: clk.Phase) -> None:
        reserved, selling = self._pending(p)
        ledger = self._ledger()
        if request.side == "buy":
            cost = request.notional if request.notional is not None else request.qty * reference
            if cost > ledger.cash - reserved:
                raise AlpacaError(403, 40310000, "insufficient buying power")
            return
        qty = request.qty if request.qty is not None else request.notional / (reference or 1)
        held = ledger.holdings.get(request.symbol, Holding()).qty
        available = held - selling.get(request.symbol, Decimal(0))
        if qty > available:
            raise AlpacaError(
                403,
                40310000,
                f"insufficient qty available for order (requested: {decimal_text(qty, 9)}, "
                f"available: {decimal_text(available, 9)})",
            )

    def _fill(self, row: dict[str, Any], session: dt.date, at: dt.datetime) -> dict[str, Any]:
        """The changes that fill `row` at `session`'s open (or reject it, see module doc)."""
        stamp = timestamp(at)
        bar = self.prices.on(row["symbol"], session)
        if bar is None:
            reason = f"no {row['symbol']} bar on {session}"
            return {
                "status": "rejected",
                "failed_at": stamp,
                "updated_at": stamp,
                "reject_reason": reason,
            }
        price = price_decimal(bar[0])
        if row["qty"] is not None:
            qty = Decimal(row["qty"])
        else:
            qty = (Decimal(row["notional"]) / price).quantize(
                Decimal(1).scaleb(-QTY_PLACES), rounding=ROUND_DOWN
            )
        ledger = self._ledger()
        reason = None
        if row["side"] == "buy" and qty * price > ledger.cash:
            reason = "insufficient buying power at the open"
        if row["side"] == "sell" and qty > ledger.holdings.get(row["symbol"], Holding()).qty:
            reason = "insufficient qty at the open"
        if reason is not None or qty <= 0:
            reason = reason or "quantity rounds to zero"
            return {
                "status": "rejected",
                "failed_at": stamp,
                "updated_at": stamp,
                "reject_reason": reason,
            }
        return {
            "status": "filled",
            "filled_at": stamp,
            "updated_at": stamp,
            "filled_qty": decimal_text(qty, QTY_PLACES),
            "filled_avg_price": decimal_text(price),
        }

    def order(self, order_id: str) -> dict[str, Any]:
        row = self.store.order(order_id=order_id.strip().lower())
        if row is None:
            raise not_found("order not found")
        return self._order_json(row)

    def order_by_client_order_id(self, client_order_id: str) -> dict[str, Any]:
        row = self.store.order(client_order_id=client_order_id)
        if row is None:
            raise not_found("order not found")
        return self._order_json(row)

    def orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: str | None = None,
        until: str | None = None,
        direction: str = "desc",
        symbols: list[str] | None = None,
        side: str | None = None,
    ) -> list[dict[str, Any]]:
        if status not in ("open", "closed", "all"):
            raise _invalid("status must be open, closed or all")
        if not 1 <= limit <= 500:
            raise _invalid("limit must be between 1 and 500")
        if direction not in ("asc", "desc"):
            raise _invalid("direction must be asc or desc")
        try:
            lo = timestamp(clk.parse_instant(after)) if after else None
            hi = timestamp(clk.parse_instant(until)) if until else None
        except ValueError:
            raise _invalid("after and until must be RFC 3339 timestamps") from None
        statuses = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES, "all": None}[status]
        rows = self.store.orders(statuses)
        wanted = {s.strip().upper() for s in symbols or [] if s.strip()}
        picked = [
            r
            for r in rows
            if (lo is None or r["submitted_at"] > lo)
            and (hi is None or r["submitted_at"] < hi)
            and (not wanted or r["symbol"] in wanted)
            and (side is None or r["side"] == side)
        ]
        picked.sort(key=lambda r: (r["submitted_at"], r["seq"]))
        if direction == "desc":
            picked.reverse()
        return [self._order_json(r) for r in picked[:limit]]

    def cancel_order(self, order_id: str) -> None:
        with self._lock:
            row = self.store.order(order_id=order_id.strip().lower())
            if row is None:
                raise not_found("order not found")
            if row["status"] not in OPEN_STATUSES:
                raise AlpacaError(422, 42210000, f'order is already in "{row["status"]}" state')
            stamp = timestamp(self.now())
            with self.store.transaction() as conn:
                self.store.update_order(
                    row["id"],
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
                "data_first_day": self.prices.first_day.isoformat(),
                "data_last_day": self.prices.last_day.isoformat(),
                "db_path": str(self.store.path),
                "initial_cash": money(self._initial_cash()),
                "cash": account["cash"],
                "equity": account["equity"],
                "buying_power": account["buying_power"],
                "positions": {pos["symbol"]: pos["qty"] for pos in self.positions()},
                "orders": counts,
            }
