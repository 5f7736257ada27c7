"""Issue #12 against the local paper broker: the broker's clock, per-symbol staleness,
market-on-open fills equal to the backtest's, and the exported entry point's arguments.

Real parts only: the sandbox over real HTTP, alpaca-py, a real SQLite journal, real
Backtrader for the backtest side. The decision is a small momentum rule written here
(`TopMomentum`), so these tests do not depend on a particular strategy's code.
"""

from __future__ import annotations

import math

import backtrader as bt
import httpx
import pandas as pd
import pytest
from shared_data import SP500_PARQUET, needs_parquet

from backtests.broker import configure_broker
from live.execution import shares_for_weights
from live.journal import open_journal
from live.runtime import RunError, cli_main, run_strategy
from live.sandbox import SandboxServer
from marketdata import load
from strategies.history import to_history

SYMBOLS = ["SYN000", "SYN001", "SYN002", "SYN003", "SYN004", "SYN005"]
CASH = 100_000.0


class TopMomentum:
    """Hold the two symbols with the best 5-session return, equal weights, every session
    (the former weights contract: an object with decide, warmup_bars and name)."""

    name = "top_momentum"

    def warmup_bars(self) -> int:
        return 6

    def decide(self, history: pd.DataFrame, holdings: dict, now) -> dict[str, float]:
        closes = history["close"].iloc[-6:]
        momentum = (closes.iloc[-1] / closes.iloc[0]).sort_values(ascending=False, kind="stable")
        return {str(s): 0.5 for s in momentum.index[:2]}


def in_shares(weights: dict[str, float], history: pd.DataFrame, book: dict) -> dict[str, float]:
    """What a Backtrader class's next() asks for, sized at the last close (shares contract)."""
    held = {s: q for s, q in book.items() if s != "$CASH"}
    prices = {str(s): float(p) for s, p in history["close"].iloc[-1].items()}
    return shares_for_weights(weights, held, book["$CASH"], prices)


def top_momentum_decide(history: pd.DataFrame, holdings: dict, now) -> dict[str, float]:
    """TopMomentum as an exported module's decide(): the book in, target shares out."""
    return in_shares(TopMomentum().decide(history, holdings, now), history, holdings)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADESHIP_JOURNAL", f"sqlite:{tmp_path / 'journal.sqlite'}")
    monkeypatch.delenv("TRADESHIP_NOW", raising=False)
    monkeypatch.setenv("TRADESHIP_REQUEST_TIMEOUT", "5")
    return tmp_path


def start_sandbox(
    tmp_path, monkeypatch, date: str, source: str = "demo", symbols: list[str] = SYMBOLS
) -> SandboxServer:
    server = SandboxServer(
        tmp_path / "sandbox.db", date=date, source=source, cash=CASH, symbols=symbols
    )
    server.__enter__()
    monkeypatch.setenv("APCA_API_BASE_URL", server.base_url)
    monkeypatch.setenv("APCA_API_KEY_ID", server.key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", server.secret)
    return server


@pytest.fixture
def sandbox(env, monkeypatch):
    server = start_sandbox(env, monkeypatch, "2024-05-31")
    yield server
    server.__exit__(None, None, None)


def set_clock(server: SandboxServer, when: str) -> None:
    answer = httpx.post(
        server.base_url + "/sandbox/clock",
        json={"time": when},
        headers={"APCA-API-KEY-ID": server.key, "APCA-API-SECRET-KEY": server.secret},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def all_orders(server: SandboxServer) -> list:
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    request = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500)
    return server.trading_client().get_orders(request)


def run(symbols: list[str] = SYMBOLS, **kwargs) -> list[dict]:
    """An exported module's run(): its decide() with the bars it reads (shares contract)."""
    return run_strategy(
        top_momentum_decide,
        symbols,
        warmup_bars=6,
        strategy_name="top_momentum",
        strategy_id="top-momentum-1",
        **kwargs,
    )


# -- item 2: the broker's clock is the truth -----------------------------------------------


def test_a_past_as_of_time_is_refused_in_a_run_that_can_trade(sandbox, monkeypatch):
    with pytest.raises(RunError, match="is not the broker's clock"):
        run(now="2016-11-28T15:00", source="demo")
    monkeypatch.setenv("TRADESHIP_NOW", "2016-11-28T15:00")  # left over in an environment
    with pytest.raises(RunError, match="unset TRADESHIP_NOW"):
        run(source="demo")
    assert all_orders(sandbox) == []
    runs = open_journal().recent_runs(5)
    assert [r["status"] for r in runs] == ["blocked", "blocked"]


def test_without_now_a_run_acts_at_the_broker_clock_and_a_dry_run_may_replay(sandbox):
    # the sandbox's clock is 2024-05-31 15:00 (a Friday); the machine's date is not
    orders = run(source="demo", fill="market")
    assert orders and {o["outcome"] for o in orders} == {"submitted"}
    assert {o["status"] for o in orders} <= {"accepted", "new", "filled"}
    assert open_journal().recent_runs(1)[0]["slot"] == "20240531"
    replay = run(now="2024-03-04T15:00", source="demo", dry_run=True)
    assert replay and {o["status"] for o in replay} == {"dry_run"}
    assert len(all_orders(sandbox)) == len(orders)  # the replay sent nothing
    close_enough = run(now="2024-05-31T15:03", source="demo", fill="market")
    assert {o["outcome"] for o in close_enough} <= {"already_submitted"}


def test_the_former_weights_contract_trades_the_same_orders(sandbox):
    """A strategy object speaking weights goes through the same sizing: the same orders."""
    as_object = run_strategy(
        TopMomentum(),
        SYMBOLS,
        strategy_id="obj",
        now="2024-05-31T15:00",
        dry_run=True,
        source="demo",
    )
    as_export = run(now="2024-05-31T15:00", dry_run=True, source="demo")
    assert [(o["symbol"], o["side"], o["qty"]) for o in as_object] == [
        (o["symbol"], o["side"], o["qty"]) for o in as_export
    ]


def test_a_late_reconcile_only_delivery_names_its_slot_time_and_is_not_refused(sandbox):
    # a scheduler's late delivery: its intended time is 20 minutes behind the broker's
    assert run(now="2024-05-31T14:40", source="demo", submit=False) == []
    assert open_journal().recent_runs(1)[0]["status"] == "reconciled"
    assert all_orders(sandbox) == []


# -- item 3: one stale symbol stops the run, named -----------------------------------------


def write_yahoo_csvs(folder, cut: dict[str, str]) -> str:
    data = load("demo", SYMBOLS, "2024-01-01", "2024-06-10")
    folder.mkdir()
    for symbol, frame in data.bars.items():
        frame = frame.loc[: cut.get(symbol, "2099-01-01")]
        pd.DataFrame(
            {
                "Date": frame.index.strftime("%Y-%m-%d"),
                "Open": frame["open"],
                "High": frame["high"],
                "Low": frame["low"],
                "Close": frame["close"],
                "Adj Close": frame["close"],
                "Volume": frame["volume"].astype("int64"),
            }
        ).to_csv(folder / f"{symbol}.csv", index=False)
    return f"csv:{folder}"


def test_one_symbol_three_sessions_stale_stops_the_run_and_is_named(env):
    source = write_yahoo_csvs(env / "csv", {"SYN003": "2024-05-28"})
    with pytest.raises(RunError, match=r"SYN003 \(last bar 2024-05-28\)") as caught:
        run(now="2024-06-03T15:00", source=source, dry_run=True)
    assert "SYN000" not in str(caught.value) and "2024-05-31" in str(caught.value)
    fresh = write_yahoo_csvs(env / "fresh", {})
    assert run(now="2024-06-03T15:00", source=fresh, dry_run=True)


# -- item 5: fill modes, their cut-offs, and fills equal to the backtest's ------------------


def test_fill_modes_refuse_orders_sent_after_their_cut_off(sandbox):
    with pytest.raises(RunError, match="unknown fill mode"):
        run(source="demo", fill="vwap")
    assert run(now="2024-05-31T15:00", source="demo", fill="open") == []
    message = open_journal().recent_runs(1)[0]["message"]
    assert "opg" in message and "before 09:28" in message and "2024-05-31" in message
    set_clock(sandbox, "2024-05-31T15:55")
    assert run(source="demo", fill="close") == []
    assert "before 15:50" in open_journal().recent_runs(1)[0]["message"]
    assert all_orders(sandbox) == []


class BacktestSide(bt.Strategy):
    """The backtest of TopMomentum: decide at bar t-1 for t, size at t-1's close with the
    live runs' conversion (one sizing rule), sells first, fill at t's open."""

    params = (("history", None), ("fills", None), ("trade_from", None), ("exectype", None))

    def next(self) -> None:
        i = len(self) - 1
        history = self.p.history
        if i + 1 >= len(history) or history.index[i + 1] < self.p.trade_from:
            return
        feeds = {d._name: d for d in self.datas}
        positions = {n: self.getposition(d).size for n, d in feeds.items()}
        cash = self.broker.getcash()
        book = {n: q for n, q in positions.items() if q}
        window = history.iloc[: i + 1]
        wanted = top_momentum_decide(window, {**book, "$CASH": cash}, history.index[i + 1])
        deltas = {n: w - positions.get(n, 0.0) for n, w in wanted.items()}
        for name, delta in sorted(deltas.items(), key=lambda kv: (kv[1] > 0, kv[0])):
            if delta:
                send = self.buy if delta > 0 else self.sell
                send(data=feeds[name], size=abs(delta), exectype=self.p.exectype)

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            day = bt.num2date(order.executed.dt).date().isoformat()
            side = "buy" if order.isbuy() else "sell"
            self.p.fills.append(
                (day, order.data._name, side, abs(order.executed.size), order.executed.price)
            )


def backtest_fills(
    first: str, last: str, fill: str, source: str = "demo", symbols: list[str] = SYMBOLS
) -> list[tuple]:
    data = load(source, symbols, pd.Timestamp(first) - pd.Timedelta(days=60), last)
    history = to_history(data.bars)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(CASH)

    class Config:
        commission = 0.0
        slippage = 0.0

    configure_broker(cerebro, Config())
    for symbol in symbols:
        frame = history.xs(symbol, axis=1, level="symbol")
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=symbol)
    fills: list = []
    trade_from = pd.Timestamp(first)
    exectype = bt.Order.Close if fill == "close" else bt.Order.Market
    cerebro.addstrategy(
        BacktestSide, history=history, fills=fills, trade_from=trade_from, exectype=exectype
    )
    cerebro.run(runonce=False)
    return sorted(f for f in fills if first <= f[0] <= last)


def paper_fills(server: SandboxServer) -> list[tuple]:
    """Every order at the broker, which must all be filled, as backtest-like fill rows."""
    fills = []
    for order in all_orders(server):
        assert order.status.value == "filled", (order.symbol, order.status)
        fills.append(
            (
                pd.Timestamp(order.filled_at).tz_convert("America/New_York").date().isoformat(),
                order.symbol,
                order.side.value,
                float(order.filled_qty),
                float(order.filled_avg_price),
            )
        )
    return sorted(fills)


def trade_sessions(server, sessions, fill, tif, run_at, filled_by, **kwargs) -> None:
    for day in sessions:
        set_clock(server, f"{day}T{run_at}")
        sent = run(fill=fill, **kwargs)
        assert sent and {o["time_in_force"] for o in sent} == {tif}
        set_clock(server, f"{day}T{filled_by}")  # the open (close) crosses: they fill


def assert_same_fills(paper: list[tuple], backtest: list[tuple]) -> None:
    assert [f[:4] for f in paper] == [f[:4] for f in backtest]
    assert all(
        math.isclose(p[4], b[4], rel_tol=1e-12) for p, b in zip(paper, backtest, strict=True)
    )


@pytest.mark.parametrize(
    ("fill", "tif", "run_at", "filled_by"),
    [("open", "opg", "09:00", "09:31"), ("close", "cls", "15:00", "16:01")],
)
def test_paper_fills_equal_the_backtest_fills(sandbox, fill, tif, run_at, filled_by):
    """Item 5's proof: opg runs before 09:28 (cls runs before 15:50) for four sessions;
    every fill equals the backtest's fill of the same session, in price and quantity."""
    sessions = ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06"]
    backtest = backtest_fills(sessions[0], sessions[-1], fill)
    # both start flat with the same cash on 2024-06-03 (bars before it only warm up)
    trade_sessions(sandbox, sessions, fill, tif, run_at, filled_by, source="demo")
    assert len(backtest) >= 6 and {f[0] for f in backtest} >= set(sessions[:2])
    assert_same_fills(paper_fills(sandbox), backtest)


REAL = ["AAPL", "MSFT", "JPM", "XOM", "KO", "PG", "NVDA", "WMT"]


@needs_parquet
def test_opg_paper_fills_equal_the_backtest_fills_on_real_sp500_data(env, monkeypatch):
    """The same proof on the shared S&P 500 data, five sessions of June 2019."""
    source = f"parquet:{SP500_PARQUET}"
    sessions = ["2019-06-10", "2019-06-11", "2019-06-12", "2019-06-13", "2019-06-14"]
    backtest = backtest_fills(sessions[0], sessions[-1], "open", source, REAL)
    server = start_sandbox(env, monkeypatch, "2019-06-07", source, REAL)
    try:
        trade_sessions(
            server, sessions, "open", "opg", "09:00", "09:31", source=source, symbols=REAL
        )
        assert len(backtest) >= 8
        assert_same_fills(paper_fills(server), backtest)
    finally:
        server.__exit__(None, None, None)


# -- item 8: the exported entry point parses its arguments --------------------------------


def test_cli_main_rejects_unknown_arguments_and_passes_known_ones(capsys):
    calls = []

    def fake_run(**kwargs):  # the exported run(), recorded: no broker needed here
        calls.append(kwargs)
        return []

    with pytest.raises(SystemExit) as exited:
        cli_main(["--dryrun"], fake_run)
    assert exited.value.code == 2 and calls == []
    assert "unrecognized arguments: --dryrun" in capsys.readouterr().err
    assert cli_main(["--dry-run", "--now", "2024-06-03T09:00"], fake_run) == 0
    assert calls == [{"now": "2024-06-03T09:00", "dry_run": True, "source": None}]

    def refused(**kwargs):
        raise RunError("the market is closed")

    assert cli_main([], refused) == 2
    assert "error: the market is closed" in capsys.readouterr().err


# -- item 10: a partly filled order's remainder is completed by the next run ---------------


def once_on_monday(history, holdings, now):
    """Decides only for Monday 2024-06-03 (half the book in SYN001); nothing after."""
    if pd.Timestamp(now).date().isoformat() != "2024-06-03":
        return None
    return in_shares({"SYN001": 0.5}, history, holdings)


class PartialFillBroker:
    """The broker port at the network edge, faked: the first order fills 60% at the open,
    then its remainder expires (Alpaca can do this to a day or opg order)."""

    def __init__(self) -> None:
        self.now = pd.Timestamp("2024-06-03T09:00", tz="America/New_York")
        self.orders: dict[str, dict] = {}
        self.held: dict[str, float] = {}
        self.cash = CASH

    def account_snapshot(self) -> dict:
        return {
            "id": "acct-1",
            "status": "ACTIVE",
            "trading_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "cash": self.cash,
            "equity": self.cash,
            "buying_power": 2 * self.cash,
        }

    def clock(self) -> dict:
        return {"timestamp": self.now, "is_open": False}

    def positions(self) -> dict:
        return dict(self.held)

    def open_orders(self) -> list:
        return []

    def order_by_client_id(self, client_order_id: str):
        return self.orders.get(client_order_id)

    def submit_once(self, order) -> dict:
        part = math.floor(order.qty * 0.6) if not self.orders else order.qty
        self.held[order.symbol] = self.held.get(order.symbol, 0.0) + part
        self.cash -= part * order.reference_price
        answer = {
            "id": f"o{len(self.orders)}",
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "remaining": order.qty - part,
            "status": "expired" if part < order.qty else "filled",
        }
        self.orders[order.client_order_id] = answer
        return {**answer, "outcome": "submitted"}


def test_the_remainder_of_a_partly_filled_order_is_traded_at_the_next_run(env):
    broker = PartialFillBroker()

    def once(day: str) -> list[dict]:
        broker.now = pd.Timestamp(f"{day}T09:00", tz="America/New_York")
        return run_strategy(
            once_on_monday,
            SYMBOLS,
            warmup_bars=6,
            strategy_id="once",
            source="demo",
            fill="open",
            broker=broker,
        )

    (first,) = once("2024-06-03")
    target = first["qty"]
    assert broker.held["SYN001"] == math.floor(target * 0.6)
    (second,) = once("2024-06-04")  # not a rebalance: completes the remainder, new slot's id
    assert (second["side"], second["qty"]) == ("buy", target - math.floor(target * 0.6))
    assert second["client_order_id"] != first["client_order_id"]
    assert "20240604" in second["client_order_id"]
    assert broker.held["SYN001"] == target
    assert once("2024-06-05") == []  # on target: nothing more
    statuses = [r["status"] for r in open_journal().recent_runs(5)]
    assert statuses == ["no_rebalance", "done", "done"]
