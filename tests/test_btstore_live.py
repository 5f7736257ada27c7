"""Backtrader live on Alpaca (live.btstore) against the local sandbox, end to end.

Real parts only: Cerebro running the strategy's own Backtrader class (`prophet_momentum`,
through `tradeship.commands.live.build_live_cerebro`, or a plain Backtrader strategy) in
a thread, `AlpacaStore`/`AlpacaData`/`AlpacaBroker` on alpaca-py,
the sandbox over real HTTP on 127.0.0.1 with its SQLite file. The TEST moves the sandbox's
simulated clock (POST /sandbox/clock, to 17:00 of each session: after its close and the
store's settle time) while Cerebro runs, each time after the strategy has finished its
``next()`` for the live bar, as the wall clock would between two sessions: each live bar's
orders wait at Alpaca and fill at the next open, the backtest's fill. Every sandbox answer
is checked against Alpaca's OpenAPI specs (Trading and Market Data; skipped when
../shared/specs is absent).
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
import time
from collections import defaultdict
from pathlib import Path

import backtrader as bt
import httpx
import pandas as pd
import pytest

from backtests.forecast_cache import ForecastCache
from backtests.forecasting import FastForecaster
from backtests.runner import BacktestConfig, run_backtest
from live.btstore import AlpacaStore
from live.sandbox import SandboxServer
from live.sandbox.contract import ContractRecorder
from live.settings import LiveSettings
from marketdata import load
from strategies.registry import build_strategy
from strategies.sizing import target_quantity
from tradeship.commands import live as live_command
from tradeship.commands.live import LiveLog, Watch, build_live_cerebro, strategy_id_for
from tradeship.settings import Settings

SPEC = Path(__file__).resolve().parents[1].parent / "shared/specs/alpaca-trading-openapi.yaml"
SYMBOLS = [f"SYN{i:03d}" for i in range(10)]
PARAMS = {
    "top_n": 3,
    "prophet_window": 60,
    "momentum_lookback": 20,
    "rebalance_every": 1,
    "threshold": 0.0,
}
FIRST = "2024-06-03"  # the first session traded: decided on Friday 2024-05-31's live bar
LIVE_BARS = ["2024-05-31", "2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06"]
SESSIONS = ["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"]
NEW_YORK = "America/New_York"


# -- the backtest every live run is compared with ------------------------------------------
def _bar_day(strategy) -> pd.Timestamp:
    stamp = max(d.datetime[0] for d in strategy.datas if len(d))
    return pd.Timestamp(bt.num2date(stamp).date())


def _placement(strategy, order) -> tuple:
    side = "buy" if order.isbuy() else "sell"
    return (_bar_day(strategy), order.data._name, side, abs(float(order.created.size)))


def _recording(method, placed: list):
    def record(self, *args, **kwargs):
        order = method(self, *args, **kwargs)
        placed.append(_placement(self, order))
        return order

    return record


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    # the conftest's private cache (TRADESHIP_CACHE_DIR) folder, which tests share
    root = tmp_path_factory.getbasetemp() / "tradeship-cache" / "forecasts"
    with FastForecaster(cache=ForecastCache(root), workers=1) as owned:
        yield owned


@pytest.fixture(scope="module")
def backtest(forecaster):
    """run_backtest over the same bars, every order the strategy placed recorded."""
    placed: list = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bt.Strategy, "buy", _recording(bt.Strategy.buy, placed))
        patch.setattr(bt.Strategy, "sell", _recording(bt.Strategy.sell, placed))
        config = BacktestConfig(
            "prophet_momentum", PARAMS, "demo", SYMBOLS, start=FIRST, end=SESSIONS[-1]
        )
        result = run_backtest(config, forecaster=forecaster)
    return result, placed


# -- the live side ----------------------------------------------------------------------------
class Recorder(Watch):
    """What the test watches: placed orders, data statuses, store news, next() done."""

    def __init__(self, run: LiveRun) -> None:
        self.run = run

    def bar(self, strategy, bar, live) -> None:
        self.run.bar_done((bar, live))

    def placed(self, strategy, order) -> None:
        self.run.placed.append(_placement(strategy, order))

    def data(self, strategy, data, status) -> None:
        self.run.statuses[data._name].append(data._getstatusname(status))

    def store(self, strategy, message) -> None:
        self.run.store_messages.append(message)

    def order(self, strategy, order) -> None:
        self.run.orders.append((order.data._name, order.getstatusname()))


class LiveRun:
    """Cerebro + the btstore against a sandbox, in a thread the test can wait on."""

    def __init__(self, sandbox, forecaster, *, until: str, fromdate, reconntimeout=0.1):
        self.placed: list = []
        self.statuses: dict[str, list[str]] = defaultdict(list)
        self.store_messages: list[str] = []
        self.orders: list[tuple[str, str]] = []
        self.log = LiveLog()
        self._bars: list = []
        self._cond = threading.Condition()
        self.error: BaseException | None = None
        self.store = AlpacaStore(
            key_id=sandbox.key,
            secret_key=sandbox.secret,
            base_url=sandbox.base_url,
            poll_interval=0.05,
            settings=LiveSettings(request_timeout=1.0, retry_budget=3.0),
        )
        self.spec = build_strategy("prophet_momentum", PARAMS)
        self.cerebro = build_live_cerebro(
            self.spec,
            SYMBOLS,
            store=self.store,
            strategy_id=strategy_id_for("prophet_momentum", self.spec.params, SYMBOLS),
            backfill_from=pd.Timestamp(fromdate).date(),
            until=pd.Timestamp(until).date(),
            forecaster=forecaster,
            log=self.log,
            watch=Recorder(self),
            qcheck=0.05,
            order_poll=0.05,
            reconntimeout=reconntimeout,
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.cerebro.run()
        except BaseException as exc:  # surfaced by join()
            self.error = exc
        with self._cond:
            self._cond.notify_all()

    def start(self) -> LiveRun:
        self.thread.start()
        return self

    def bar_done(self, bar) -> None:
        with self._cond:
            self._bars.append(bar)
            self._cond.notify_all()

    def wait_bar(self, day: str, timeout: float = 90) -> None:
        """Until next() has finished for the bar of `day`."""
        target = pd.Timestamp(day)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(b is not None and b[0] == target for b in self._bars):
                if self.error is not None or not self.thread.is_alive():
                    raise AssertionError(f"cerebro stopped before {day}: {self.error!r}")
                left = deadline - time.monotonic()
                assert left > 0, f"no next() for {day} within {timeout} s"
                self._cond.wait(min(left, 0.5))

    def join(self, timeout: float = 60) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "cerebro did not stop at --until"
        if self.error is not None:
            raise self.error


def control(sandbox, method: str, path: str, body: dict | None = None) -> dict:
    answer = httpx.request(
        method,
        sandbox.base_url + path,
        json=body,
        timeout=10,
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def broker_orders(sandbox) -> list:
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    request = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, direction="asc")
    return sandbox.trading_client().get_orders(request)


def session_of(order) -> str:
    """The slot (session YYYYMMDD) in a tradeship client order id: ts-<slot>-<symbol>-..."""
    return order.client_order_id.split("-")[1]


@pytest.fixture
def contract():
    recorder = ContractRecorder(SPEC)
    yield recorder
    recorder.assert_valid()


@pytest.fixture
def sandbox(tmp_path, contract):
    with SandboxServer(tmp_path / "sandbox.db", date="2024-05-31", on_exchange=contract) as server:
        yield server


def after_close(sandbox, day: str) -> None:
    """The clock to 17:00 of `day`: its bar is complete (close + settle); orders queued
    before cross `day`'s open and filled there."""
    control(sandbox, "POST", "/sandbox/clock", {"time": f"{day}T17:00:00-04:00"})


def assert_parity(run: LiveRun, sandbox, backtest) -> None:
    """Same orders, same fills as the backtest over the same bars."""
    result, placed = backtest
    first_bar = pd.Timestamp(LIVE_BARS[0])
    assert run.placed == [p for p in placed if p[0] >= first_bar]
    assert run.placed, "the parity window should trade"
    # at the broker: every fill equals the backtest's (session, symbol, side, qty, price)
    fills = [
        (
            pd.Timestamp(o.filled_at).tz_convert(NEW_YORK).date().isoformat(),
            o.symbol,
            o.side.value,
            float(o.filled_qty),
            float(o.filled_avg_price),
        )
        for o in broker_orders(sandbox)
        if o.status.value == "filled"
    ]
    expected = [
        (r.date, r.symbol, r.side, float(r.quantity), float(r.price))
        for r in result.orders.itertuples()
        if r.date in SESSIONS
    ]
    assert sorted(fills) == sorted(expected)
    # what the backtest's broker refused (Margin), Alpaca refused too (live bars only:
    # orders placed during backfill are never placed, see the live class)
    refused = [line.split(":")[0] for line in result.notes if "Margin order" in line]
    assert [n for n, s in run.orders if s == "Rejected"] == refused
    ids = [o.client_order_id for o in broker_orders(sandbox)]
    assert len(ids) == len(set(ids))  # no order twice


def test_prophet_momentum_live_places_the_backtests_orders(sandbox, backtest, forecaster):
    result, _ = backtest
    after_close(sandbox, LIVE_BARS[0])
    run = LiveRun(sandbox, forecaster, until=LIVE_BARS[-1], fromdate=result.history.index[0])
    run.start()
    run.wait_bar(LIVE_BARS[0])
    for day in LIVE_BARS[1:]:
        after_close(sandbox, day)
        run.wait_bar(day)
    run.join()
    after_close(sandbox, SESSIONS[-1])  # the last live bar's orders fill at its open
    assert_parity(run, sandbox, backtest)

    # backfilled bars reached next(): every session from the first bar, once, in order
    bars = [b for b, _ in run.log.bars]
    assert bars == list(result.history.loc[: LIVE_BARS[-1]].index)
    live = [b for b, is_live in run.log.bars if is_live]
    assert live == [pd.Timestamp(d) for d in LIVE_BARS]
    assert len(bars) - len(live) >= 70
    # ... and none of them traded: every order at the broker is for a live session
    assert {session_of(o) for o in broker_orders(sandbox)} <= {s.replace("-", "") for s in SESSIONS}
    assert all(sent["slot"] >= "20240603" for sent in run.store.broker.sent)
    # the data statuses Backtrader reported, per feed: backfill, live, end (--until)
    assert dict(run.statuses) == dict.fromkeys(SYMBOLS, ["DELAYED", "LIVE", "DISCONNECTED"])
    # one bars request per published session (the backfill + each live session)
    assert run.store.stats["bar_requests"] == len(LIVE_BARS)


def test_dropped_connections_neither_duplicate_bars_nor_orders(
    sandbox, contract, backtest, forecaster
):
    result, _ = backtest
    after_close(sandbox, LIVE_BARS[0])
    run = LiveRun(sandbox, forecaster, until=LIVE_BARS[-1], fromdate=result.history.index[0])
    run.start()
    run.wait_bar(LIVE_BARS[0])

    # 1. the bars path answers 500 three times, then the clock times out twice
    bars_down = {"status": 500, "times": 3, "paths": ["/v2/stocks/*"]}
    control(sandbox, "POST", "/sandbox/faults", bars_down)
    control(sandbox, "POST", "/sandbox/faults", {"delay": 1.5, "times": 2, "paths": ["/v2/clock"]})
    after_close(sandbox, LIVE_BARS[1])
    run.wait_bar(LIVE_BARS[1])

    # 2. the sandbox goes away (process stopped) and comes back on the same SQLite file
    port, db = sandbox.port, sandbox.db_path
    sandbox.stop()
    time.sleep(0.6)  # polls fail meanwhile: connection refused
    with SandboxServer(db, port=port, on_exchange=contract) as restarted:
        orders_path_faults(run, restarted)
        after_close(restarted, SESSIONS[-1])
        assert_parity(run, restarted, backtest)  # same orders, none twice, same fills

    bars = [b for b, _ in run.log.bars]
    assert bars == list(result.history.loc[: LIVE_BARS[-1]].index)  # each session once
    assert run.store.stats["failures"] >= 5
    assert any("connection broken" in m for m in run.store_messages)
    assert any(m.startswith("reconnected") for m in run.store_messages)
    assert "CONNBROKEN" in run.statuses["SYN000"]
    assert run.statuses["SYN000"][-2:] == ["LIVE", "DISCONNECTED"]
    order_faults = [
        e.fault for e in contract.exchanges if (e.method, e.path) == ("POST", "/v2/orders")
    ]
    assert [f for f in order_faults if f] == ["status 500", "status 500", "timeout_after_accept"]


def orders_path_faults(run: LiveRun, sandbox) -> None:
    """The rest of the run on the restarted sandbox, with faults on the orders path."""
    after_close(sandbox, LIVE_BARS[2])
    run.wait_bar(LIVE_BARS[2])

    # 3. the orders path: two 500s, then an order Alpaca stores but answers too late
    control(
        sandbox,
        "POST",
        "/sandbox/faults",
        {"status": 500, "times": 2, "paths": ["/v2/orders"], "methods": ["POST"]},
    )
    control(sandbox, "POST", "/sandbox/faults", {"timeout_after_accept": 1.5})
    after_close(sandbox, LIVE_BARS[3])
    run.wait_bar(LIVE_BARS[3])
    control(sandbox, "DELETE", "/sandbox/faults")
    after_close(sandbox, LIVE_BARS[4])
    run.wait_bar(LIVE_BARS[4])
    run.join()


def test_a_restarted_process_finds_its_orders_instead_of_sending_them_again(
    sandbox, backtest, forecaster
):
    """After the close the decision's orders wait at Alpaca; a second process deciding the
    same session computes the same client order ids, finds them, and sends nothing."""
    result, _ = backtest
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-03T17:00:00-04:00"})
    first = LiveRun(sandbox, forecaster, until="2024-06-03", fromdate=result.history.index[0])
    first.start().join()
    queued = broker_orders(sandbox)
    assert queued and {o.status.value for o in queued} == {"accepted"}
    assert {session_of(o) for o in queued} == {"20240604"}

    second = LiveRun(sandbox, forecaster, until="2024-06-04", fromdate=result.history.index[0])
    second.start()
    second.wait_bar("2024-06-03")
    assert [o.client_order_id for o in broker_orders(sandbox)] == [
        o.client_order_id for o in queued
    ]
    assert {s["outcome"] for s in second.store.broker.sent} == {"already_submitted"}
    # the clock crosses the open: the adopted orders fill and reach notify_order
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-04T17:00:00-04:00"})
    second.wait_bar("2024-06-04")
    second.join()
    ids = {q.client_order_id for q in queued}
    filled = [o for o in broker_orders(sandbox) if o.client_order_id in ids]
    assert {o.status.value for o in filled} == {"filled"}
    completed = [name for name, status in second.orders if status == "Completed"]
    assert sorted(completed) == sorted(o.symbol for o in filled)
    day_open = result.history["open"].loc["2024-06-04"]
    for order in filled:  # filled at the open of the session they were for
        assert float(order.filled_avg_price) == float(day_open[order.symbol])


class Greedy(bt.Strategy):
    """alpaca-backtrader-api's user: a plain Backtrader strategy that buys on every bar."""

    params = (("seen", None),)

    def next(self):
        status = self.data0._getstatusname(self.data0._laststatus)
        self.p.seen["bars"].append((self.data0.datetime.date(0), status))
        self.p.seen.setdefault("placed", []).append(self.buy(data=self.data0, size=1))

    def notify_order(self, order):
        self.p.seen["orders"].append((order.getstatusname(), order.info.get("reason")))

    def notify_store(self, msg, *args, **kwargs):
        self.p.seen.setdefault("store", []).append(msg)


def test_next_runs_once_per_completed_bar_and_backfill_never_trades(sandbox):
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T15:00:00-04:00"})
    seen: dict[str, list] = {"bars": [], "orders": []}
    store = AlpacaStore(
        key_id=sandbox.key,
        secret_key=sandbox.secret,
        base_url=sandbox.base_url,
        poll_interval=0.02,
        settings=LiveSettings(request_timeout=1.0, retry_budget=3.0),
    )
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    cerebro.setbroker(store.getbroker(order_poll=0.02))
    cerebro.adddata(store.getdata(dataname="SYN004", fromdate=dt.datetime(2024, 5, 1), qcheck=0.02))
    cerebro.addstrategy(Greedy, seen=seen)
    thread = threading.Thread(target=cerebro.run, daemon=True)
    thread.start()

    def wait_for(check, timeout=30):
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline and thread.is_alive(), seen["orders"][-3:]
            time.sleep(0.02)

    wait_for(lambda: seen["bars"] and seen["bars"][-1][0] == dt.date(2024, 6, 4))
    wait_for(lambda: ("Accepted", None) in seen["orders"])
    polls, bars = store.stats["polls"], len(seen["bars"])
    wait_for(lambda: store.stats["polls"] - polls >= 10)  # idle: polls, no new bar
    assert len(seen["bars"]) == bars and store.stats["bar_requests"] == 1
    # the close passes (+15 min settle): that session's bar, exactly once
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T16:20:00-04:00"})
    wait_for(lambda: len(seen["bars"]) == bars + 1)
    time.sleep(0.3)
    assert len(seen["bars"]) == bars + 1
    # after the close its order waits; crossing the next open fills it at that open
    control(sandbox, "POST", "/sandbox/advance")
    wait_for(lambda: [s for s, _ in seen["orders"]].count("Completed") == 2)
    cerebro.runstop()
    thread.join(10)

    days = [d for d, _ in seen["bars"]]
    assert days == sorted(set(days)) and days[0] == dt.date(2024, 5, 1)
    assert [s for _, s in seen["bars"]] == ["DELAYED"] * (len(days) - 2) + ["LIVE"] * 2
    refused = [r for s, r in seen["orders"] if s == "Rejected"]
    assert len(refused) == len(days) - 2 and all("not live" in r for r in refused)
    sent = broker_orders(sandbox)
    assert [(o.symbol, session_of(o), o.status.value) for o in sent] == [
        ("SYN004", "20240605", "filled"),
        ("SYN004", "20240606", "filled"),
    ]


def test_the_live_command_decides_once_live_and_stops_at_until(
    sandbox, backtest, monkeypatch, capsys
):
    result, placed = backtest
    after_close(sandbox, "2024-06-03")
    monkeypatch.setenv("APCA_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("APCA_API_KEY_ID", sandbox.key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", sandbox.secret)
    parser = argparse.ArgumentParser(prog="tradeship")
    live_command.register(parser.add_subparsers(), Settings())
    argv = ["live", "--strategy", "prophet_momentum", "--symbols", ",".join(SYMBOLS)]
    argv += [f"--param={k}={v}" for k, v in PARAMS.items()]
    argv += ["--backfill-from", str(result.history.index[0].date()), "--until", "2024-06-03"]
    argv += ["--poll", "0.05", "--workers", "1"]
    args = parser.parse_args(argv)
    assert args.func(args, Settings()) == 0
    out = capsys.readouterr().out
    assert "bar 2024-06-03 LIVE: next() ran" in out
    assert "data SYN000: DISCONNECTED" in out and "order(s) sent" in out
    # the backtest's 2024-06-03 bar bought SYN007 with the whole book; the live account is
    # flat, so it buys SYN007 with the whole account, sized the same way at the same close
    day = pd.Timestamp("2024-06-03")
    assert [(s, side) for b, s, side, _ in placed if b == day and side == "buy"] == [
        ("SYN007", "buy")
    ]
    close = float(result.history["close"].loc[day, "SYN007"])
    sent = broker_orders(sandbox)
    assert [(o.symbol, o.side.value, float(o.qty)) for o in sent] == [
        ("SYN007", "buy", target_quantity(1.0, 100_000.0, close))
    ]
    assert [(session_of(o), o.status.value) for o in sent] == [("20240604", "accepted")]
    after_close(sandbox, "2024-06-04")  # the order waited for the open and fills there
    (filled,) = broker_orders(sandbox)
    assert filled.status.value == "filled"
    assert float(filled.filled_avg_price) == float(
        result.history["open"].loc["2024-06-04"]["SYN007"]
    )


def test_the_strategy_id_is_the_exported_modules():
    from exporters.export import build_export

    spec, compiled = build_export("prophet_momentum", PARAMS, SYMBOLS, default_source="demo")
    expected = strategy_id_for(spec.strategy, spec.params, list(spec.symbols))
    assert expected == strategy_id_for(
        "prophet_momentum", build_strategy("prophet_momentum", PARAMS).params, SYMBOLS
    )
    assert f"STRATEGY_ID = {expected!r}" in compiled.text


def test_the_store_refuses_what_the_exported_run_refuses(monkeypatch):
    from live.alpaca_broker import BrokerError

    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    with pytest.raises(BrokerError, match="APCA_API_KEY_ID"):
        AlpacaStore(secret_key="s")
    with pytest.raises(BrokerError, match="TRADESHIP_ALLOW_LIVE"):
        AlpacaStore(key_id="k", secret_key="s", paper=False)


def run_greedy(
    sandbox, settings: LiveSettings, *, historical=False, broker=True, until=True, stop=None
):
    """Greedy on SYN004 from 2024-05-28 until the feed ends (todate 2024-06-04), or, with
    ``until=False``, in a thread until ``stop(seen)`` is true."""
    seen: dict[str, list] = {"bars": [], "orders": [], "store": []}
    store = AlpacaStore(
        key_id=sandbox.key,
        secret_key=sandbox.secret,
        base_url=sandbox.base_url,
        poll_interval=0.02,
        settings=settings,
    )
    seen["store_object"] = store
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    if broker:
        cerebro.setbroker(store.getbroker(order_poll=0.02, resend_after=0.1))
    feed = store.getdata(
        dataname="SYN004",
        fromdate=dt.datetime(2024, 5, 28),
        todate=dt.datetime(2024, 6, 4) if until else None,
        historical=historical,
        qcheck=0.02,
    )
    cerebro.adddata(feed)
    cerebro.addstrategy(Greedy, seen=seen)
    if until:
        cerebro.run()
        return seen, store
    thread = threading.Thread(target=cerebro.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not stop(seen):
        assert time.monotonic() < deadline and thread.is_alive(), seen["orders"]
        time.sleep(0.05)
    cerebro.runstop()
    thread.join(10)
    return seen, store


def test_an_order_whose_answer_is_lost_is_sent_again_under_its_id_once(sandbox):
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T15:00:00-04:00"})
    posts = {"paths": ["/v2/orders"], "methods": ["POST"]}
    control(sandbox, "POST", "/sandbox/faults", {"status": 500, "times": 5, **posts})
    control(sandbox, "POST", "/sandbox/faults", {"timeout_after_accept": 1.5})
    settings = LiveSettings(request_timeout=1.0, retry_budget=3.0)
    moved = []

    def stop(seen) -> bool:
        if ("Accepted", None) in seen["orders"] and not moved:
            # sent during the session: it fills at the close; 16:05 is before the settle
            # time, so no new bar (and no second order) arrives
            control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T16:05:00-04:00"})
            moved.append(True)
        return ("Completed", None) in seen["orders"]

    seen, store = run_greedy(sandbox, settings, until=False, stop=stop)
    assert [(o.symbol, session_of(o), o.status.value) for o in broker_orders(sandbox)] == [
        ("SYN004", "20240605", "filled")
    ]
    assert [s for s, _ in seen["orders"] if s != "Rejected"] == [
        "Submitted",
        "Accepted",
        "Completed",
    ]
    assert "Submitted" not in [s for s, _ in seen["orders"][:-3]]  # one order, one send
    assert any(m.startswith("no answer for") for m in seen["store"])  # it was sent again
    assert store.broker.sent[-1]["client_order_id"] == broker_orders(sandbox)[0].client_order_id


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"max_order_notional": 50.0}, "TRADESHIP_MAX_ORDER_NOTIONAL"),
        ({"max_position_weight": 0.0001}, "TRADESHIP_MAX_POSITION_WEIGHT"),
        ({"max_orders": 0}, "TRADESHIP_MAX_ORDERS"),
        ({"kill_switch": True}, "kill switch"),
    ],
)
def test_the_live_risk_limits_refuse_orders_before_alpaca_sees_them(sandbox, limits, reason):
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T15:00:00-04:00"})
    seen, _ = run_greedy(sandbox, LiveSettings(request_timeout=1.0, **limits))
    live = seen["placed"][-1]  # the order placed on the live bar (2024-06-04)
    assert seen["bars"][-1] == (dt.date(2024, 6, 4), "LIVE")
    assert live.status == live.Rejected and reason in live.info["reason"]
    assert all("not live" in o.info["reason"] for o in seen["placed"][:-1])
    assert broker_orders(sandbox) == []


def test_a_historical_feed_backfills_and_stops_without_trading(sandbox):
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T15:00:00-04:00"})
    seen, store = run_greedy(sandbox, LiveSettings(), historical=True)
    assert [d for d, _ in seen["bars"]] == [
        dt.date(2024, 5, 28),
        dt.date(2024, 5, 29),
        dt.date(2024, 5, 30),
        dt.date(2024, 5, 31),
        dt.date(2024, 6, 3),
        dt.date(2024, 6, 4),
    ]
    assert {s for _, s in seen["bars"]} == {"DELAYED"}
    assert {s for s, _ in seen["orders"]} == {"Rejected"} and broker_orders(sandbox) == []
    # Cerebro's own broker (a backtest on Alpaca's bars) fills them instead
    seen, _ = run_greedy(sandbox, LiveSettings(), historical=True, broker=False)
    assert [s for s, _ in seen["orders"]].count("Completed") == 5


def test_a_session_waits_for_a_late_symbol_then_goes_without_it(sandbox):
    clock = [0.0]
    store = AlpacaStore(
        key_id=sandbox.key,
        secret_key=sandbox.secret,
        base_url=sandbox.base_url,
        bar_grace=60.0,
        monotonic=lambda: clock[0],
    )
    d1, d2 = dt.date(2024, 6, 3), dt.date(2024, 6, 4)
    rows = {d1: {"A": (1.0,) * 5, "B": (1.0,) * 5}, d2: {"A": (1.0,) * 5}}
    assert store._complete_through(rows, d2) == d1  # B traded on d1: wait for its d2 bar
    clock[0] = 59.0
    assert store._complete_through(rows, d2) == d1
    clock[0] = 61.0
    assert store._complete_through(rows, d2) == d2  # grace over: publish without B
    assert "no 2024-06-04 bar for B" in store.get_notifications()[-1][0]


def test_a_split_re_adjusts_the_history_already_delivered(sandbox):
    """Alpaca's adjusted bars change after a split: the feed rescales what it delivered,
    so one history never mixes two bases (here a fake 2:1 split effective 2024-06-05)."""
    control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T15:00:00-04:00"})
    state: dict = {}

    def stop(seen):
        store = seen["store_object"]
        if not seen["bars"]:
            return False
        if "patched" not in state and seen["bars"][-1][0] == dt.date(2024, 6, 4):
            real = store.rest.data_client.get_stock_bars

            def split(request):
                barset = real(request)
                for symbol, bars in barset.data.items():
                    barset.data[symbol] = [
                        b.model_copy(
                            update={
                                "open": b.open / 2,
                                "high": b.high / 2,
                                "low": b.low / 2,
                                "close": b.close / 2,
                                "volume": b.volume * 2,
                            }
                        )
                        if b.timestamp.date() <= dt.date(2024, 6, 4)
                        else b
                        for b in bars
                    ]
                return barset

            store.rest.data_client.get_stock_bars = split
            state["patched"] = True
            control(sandbox, "POST", "/sandbox/clock", {"time": "2024-06-05T16:20:00-04:00"})
        told = any("re-adjusted" in m for m in seen["store"])
        return seen["bars"][-1][0] == dt.date(2024, 6, 5) and told

    seen, store = run_greedy(sandbox, LiveSettings(), until=False, stop=stop)
    feed = store.feeds[0]
    closes = list(feed.close.array)[: len(seen["bars"])]
    truth = load("demo", ["SYN004"], "2024-05-28", "2024-06-05").bars["SYN004"]["close"]
    assert closes[:-1] == [c / 2 for c in truth.iloc[:-1]]  # the old basis, halved
    assert closes[-1] == truth.iloc[-1]  # the new bar, as Alpaca sends it
    assert any("re-adjusted its bars through 2024-06-04" in m for m in seen["store"])
