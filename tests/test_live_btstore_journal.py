"""#14 item 7: the Backtrader store's broker (`tradeship live`) writes the journal that an
exported run() writes, so `tradeship journal` shows both.

Real parts: the sandbox over HTTP, alpaca-py, Cerebro with AlpacaStore/AlpacaData/
AlpacaBroker, a SQLite journal. The strategy is a plain Backtrader one (buys 1 share a bar).
"""

from __future__ import annotations

import datetime as dt

import backtrader as bt
import httpx
import pytest

from live.btstore import AlpacaStore
from live.journal import open_journal
from live.sandbox import SandboxServer
from live.settings import LiveSettings
from tradeship.cli import main


class BuyOne(bt.Strategy):
    def next(self):
        self.buy(data=self.data0, size=1)


@pytest.fixture
def sandbox(tmp_path):
    with SandboxServer(tmp_path / "sandbox.db", date="2024-06-05") as server:
        yield server


def run_store(sandbox, journal, settings: LiveSettings) -> AlpacaStore:
    store = AlpacaStore(
        key_id=sandbox.key,
        secret_key=sandbox.secret,
        base_url=sandbox.base_url,
        poll_interval=0.02,
        settings=settings,
    )
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    cerebro.setbroker(store.getbroker(strategy_id="buy-one", order_poll=0.02, journal=journal))
    cerebro.adddata(
        store.getdata(
            dataname="SYN004",
            fromdate=dt.datetime(2024, 5, 28),
            todate=dt.datetime(2024, 6, 4),
            qcheck=0.02,
        )
    )
    cerebro.addstrategy(BuyOne)
    cerebro.run()
    return store


def test_live_orders_are_journaled_before_and_after_they_are_sent(sandbox, tmp_path, capsys):
    url = f"sqlite:{tmp_path / 'journal.sqlite'}"
    journal = open_journal(url)
    store = run_store(sandbox, journal, LiveSettings(request_timeout=2.0))
    assert len(store.broker.sent) == 1  # the live bar (2024-06-04) only; backfill never trades
    (run,) = journal.recent_runs(5)
    assert (run["strategy_id"], run["slot"], run["status"]) == ("buy-one", "20240605", "done")
    assert run["as_of"].startswith("2024-06-05T15:00")  # the broker's clock, not the machine's
    (order,) = run["orders"]
    assert (order["symbol"], order["side"], order["qty"], order["state"]) == (
        "SYN004",
        "buy",
        1.0,
        "sent",
    )
    assert order["client_order_id"] == store.broker.sent[0]["client_order_id"]
    assert order["broker_order_id"] and order["broker_status"] in ("accepted", "new", "filled")
    assert main(["journal", "--journal", url]) == 0
    shown = capsys.readouterr().out
    assert "buy-one" in shown and "buy 1 SYN004  sent" in shown


def test_a_refused_live_order_is_journaled_as_a_blocked_run(sandbox, tmp_path):
    journal = open_journal(f"sqlite:{tmp_path / 'journal.sqlite'}")
    store = run_store(sandbox, journal, LiveSettings(kill_switch=True))
    assert store.broker.sent == []
    (run,) = journal.recent_runs(5)
    assert run["status"] == "blocked" and "kill switch" in run["message"]
    assert run["orders"] == []
    answer = httpx.get(
        sandbox.base_url + "/v2/orders?status=all",
        headers={"APCA-API-KEY-ID": sandbox.key, "APCA-API-SECRET-KEY": sandbox.secret},
        timeout=10,
    )
    assert answer.json() == []


# -- item 11: `tradeship live` dates come from the broker's clock ---------------------------


def test_the_default_backfill_follows_the_broker_clock_and_until_must_agree(tmp_path):
    from tradeship.commands.live import broker_today, check_dates, default_backfill_from

    with SandboxServer(tmp_path / "old.db", date="2012-06-01") as old:
        store = AlpacaStore(key_id=old.key, secret_key=old.secret, base_url=old.base_url)
        today = broker_today(store)
    assert today == dt.date(2012, 6, 1)  # the simulated clock, not the machine's date
    start = default_backfill_from(100, today)
    assert dt.date(2011, 12, 1) < start < today
    check_dates(start, None, today)
    check_dates(start, dt.date(2012, 6, 30), today)
    with pytest.raises(ValueError, match="--until 2011-01-03 is before the backfill start"):
        check_dates(start, dt.date(2011, 1, 3), today)
    with pytest.raises(ValueError, match="before the broker's date 2012-06-01"):
        check_dates(start, dt.date(2012, 5, 1), today)
    with pytest.raises(ValueError, match="after the broker's date"):
        check_dates(dt.date(2025, 10, 6), None, today)
