"""`tradeship live`: run a strategy in Backtrader against Alpaca, in one long-running process."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tradeship.settings import Settings

LIVE_HELP = """\
Run a strategy live in Backtrader: its own class (a bt.Strategy, the one the backtest
runs), unchanged, against APCA_API_BASE_URL: the local sandbox (tradeship sandbox) or
Alpaca's paper API. Feeds, broker and store come from live.btstore (alpaca-backtrader-api's
shape, on alpaca-py). The process keeps running, one session at a time, until Ctrl-C or
--until.

How it runs:
  1. Backfill. Daily bars from --backfill-from (default: enough for the strategy's
     indicators before the broker's date) through the latest completed session come from
     Alpaca's Market Data API (adjusted for splits and dividends). Every bar feeds the
     strategy's indicators, reported DELAYED; next() does not run on them, nothing trades.
  2. Live. The latest completed session is reported LIVE and next() runs on it, exactly
     as the backtest's bar t-1 runs for session t (bars through t-1, the account's book,
     sizing at the last close). Its market orders wait at Alpaca after the close and fill
     at the next open, the price the backtest fills at.
  3. Then next() runs once per completed session: the store reads Alpaca's clock every
     --poll seconds and fetches a session's bars once its close + --settle-minutes has
     passed. No tick, quote or partial bar ever reaches next().

Safety: paper by default (Alpaca's live URL needs TRADESHIP_PAPER=0 and
TRADESHIP_ALLOW_LIVE=1). Client order ids are deterministic (strategy, account, session,
symbol, side): a restarted process, or a retry after a lost answer, finds its orders at
Alpaca instead of ordering twice. TRADESHIP_KILL_SWITCH=1 (or TRADESHIP_KILL_FILE) refuses
all new orders; TRADESHIP_MAX_POSITION_WEIGHT, _MAX_GROSS_EXPOSURE, _MAX_ORDER_NOTIONAL,
_MAX_RUN_NOTIONAL (per session) and _MAX_ORDERS (per session) refuse orders that breach
them; TRADESHIP_CASH_BUFFER and TRADESHIP_FRACTIONAL size like the exported run().
A dropped connection is retried (CONNBROKEN, then DELAYED/LIVE again); sessions missed
meanwhile arrive once each, as backfill.
Every order is journaled (TRADESHIP_JOURNAL) before it is sent and with Alpaca's answer
after, as exported runs are: `tradeship journal` shows both.

Credentials: APCA_API_KEY_ID, APCA_API_SECRET_KEY (environment only). Market data comes
from APCA_API_DATA_URL, else Alpaca's data host for Alpaca's URLs, else
APCA_API_BASE_URL itself (the sandbox serves GET /v2/stocks/bars).
"""

EXAMPLE = """\
example (offline, the sandbox on a simulated 2024-06-03; move its clock with
POST /sandbox/advance and watch one decision per session):
  tradeship sandbox --date 2024-06-03 &
  export APCA_API_BASE_URL=http://127.0.0.1:8765 APCA_API_KEY_ID=... APCA_API_SECRET_KEY=...
  tradeship live --strategy prophet_momentum --symbols SYN000,SYN001,SYN002,SYN003 \\
      --param top_n=2 --param prophet_window=60 --param momentum_lookback=20 \\
      --backfill-from 2024-01-02 --poll 2
"""


def strategy_id_for(name: str, params: dict, symbols: list[str]) -> str:
    """`name-<10 hex>`: an exported module's STRATEGY_ID for the same strategy, parameters
    and universe (the exporter's formula), so the two share client order ids and cannot
    both trade one session of one account."""
    from exporters.compiler import ExportSpec

    return ExportSpec(name, "", dict(params), tuple(sorted(set(symbols)))).strategy_id


def default_backfill_from(warmup_bars: int, today: dt.date) -> dt.date:
    """Early enough for `warmup_bars` sessions before `today`, the broker's date (never the
    machine's: a sandbox on a simulated 2011 would otherwise backfill from this year)."""
    return today - dt.timedelta(days=int(warmup_bars * 1.5) + 30)


def broker_today(store) -> dt.date:
    """The date of the broker's clock (Alpaca's /v2/clock; the sandbox's simulated clock)."""
    return store.rest.clock()["timestamp"].date()


def check_dates(backfill_from: dt.date, until: dt.date | None, today: dt.date) -> None:
    """--until before the backfill start, or before the broker's date, cannot trade: refuse."""
    if backfill_from > today:
        raise ValueError(
            f"--backfill-from {backfill_from} is after the broker's date {today}: "
            "choose an earlier date"
        )
    if until is None:
        return
    if until < backfill_from:
        raise ValueError(
            f"--until {until} is before the backfill start {backfill_from}: nothing would run"
        )
    if until < today:
        raise ValueError(
            f"--until {until} is before the broker's date {today}: the run would only replay "
            "history and never trade; leave --until out or choose a later date"
        )


@dataclass
class LiveLog:
    """What a live run saw: every bar that reached the strategy (date, live?) and the fills."""

    bars: list[tuple[pd.Timestamp, bool]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)


class Watch:
    """Hooks a live run calls (printing, tests); each does nothing by default."""

    def bar(self, strategy, bar: pd.Timestamp, live: bool) -> None: ...
    def placed(self, strategy, order) -> None: ...
    def order(self, strategy, order) -> None: ...
    def data(self, strategy, data, status: int) -> None: ...
    def store(self, strategy, message: str) -> None: ...


def live_strategy_class(cls: type, log: LiveLog, watch: Watch | None = None) -> type:
    """`cls` (a user's bt.Strategy, unchanged) for a live run: its next() runs on LIVE
    bars only, as an exported module's replay runs it once per decision. Backfilled
    (DELAYED) bars still reach its indicators and are logged, never traded."""
    import backtrader as bt

    watch = watch or Watch()

    class Live(cls):  # type: ignore[valid-type, misc]
        def _bar(self) -> tuple[pd.Timestamp, bool]:
            delivered = [d for d in self.datas if len(d)]
            stamp = max(d.datetime[0] for d in delivered)
            current = [d for d in delivered if d.datetime[0] == stamp]
            live = all(d._laststatus == d.LIVE for d in current)
            return pd.Timestamp(bt.num2date(stamp).date()), live

        def prenext(self) -> None:  # indicators still warming up: logged, never traded
            bar, live = self._bar()
            log.bars.append((bar, live))
            super().prenext()
            watch.bar(self, bar, live)

        def next(self) -> None:
            bar, live = self._bar()
            log.bars.append((bar, live))
            if live:
                super().next()
            watch.bar(self, bar, live)

        def buy(self, *args, **kwargs):
            order = super().buy(*args, **kwargs)
            watch.placed(self, order)
            return order

        def sell(self, *args, **kwargs):
            order = super().sell(*args, **kwargs)
            watch.placed(self, order)
            return order

        def notify_order(self, order) -> None:
            super().notify_order(order)
            if order.status == order.Completed:
                log.fills.append(
                    {
                        "date": bt.num2date(order.executed.dt).date().isoformat(),
                        "symbol": order.data._name,
                        "side": "buy" if order.isbuy() else "sell",
                        "quantity": abs(float(order.executed.size)),
                        "price": float(order.executed.price),
                    }
                )
            watch.order(self, order)

        def notify_data(self, data, status, *args, **kwargs) -> None:
            super().notify_data(data, status, *args, **kwargs)
            watch.data(self, data, status)

        def notify_store(self, msg, *args, **kwargs) -> None:
            super().notify_store(msg, *args, **kwargs)
            watch.store(self, msg)

    Live.__name__ = Live.__qualname__ = cls.__name__
    Live.__module__ = cls.__module__
    return Live


def build_live_cerebro(
    spec,
    symbols: list[str],
    *,
    store,
    strategy_id: str,
    backfill_from: dt.date,
    until: dt.date | None = None,
    journal=None,
    forecaster=None,
    log: LiveLog | None = None,
    watch: Watch | None = None,
    qcheck: float = 0.5,
    order_poll: float = 5.0,
    **feed_params,
):
    """Cerebro with the store's broker, one daily feed per symbol and `spec`'s strategy
    class (a `strategies.registry.StrategySpec`) with its parameters, sized like the
    backtest (the store's cash buffer and fractional setting); ``feed_params`` go to
    every `AlpacaData`. Orders are market orders: sent after a session's close, they
    wait at Alpaca and fill at the next open, the backtest's fill."""
    import backtrader as bt

    from strategies.context import RunContext, attach

    # quicknotify: an order's status reaches notify_order when Alpaca answers, not a day
    # later with the next bar (Backtrader's default, right for backtests only)
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1, quicknotify=True)
    context = RunContext(
        fill="open",
        cash_buffer=store.settings.cash_buffer,
        fractional=store.settings.fractional,
    )
    if forecaster is not None:
        context.forecaster = forecaster
    attach(cerebro, context)
    cerebro.setbroker(
        store.getbroker(strategy_id=strategy_id, order_poll=order_poll, journal=journal)
    )
    start = dt.datetime.combine(backfill_from, dt.time(0))
    end = dt.datetime.combine(until, dt.time(0)) if until else None
    for symbol in symbols:
        feed = store.getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Days,
            fromdate=start,
            todate=end,
            qcheck=qcheck,
            **feed_params,
        )
        cerebro.adddata(feed, name=symbol)
    live_log = log if log is not None else LiveLog()
    cerebro.addstrategy(live_strategy_class(spec.cls, live_log, watch), **dict(spec.params))
    return cerebro


class Printer(Watch):
    """Says what happens, one line per event; backfill refusals are only counted."""

    def __init__(self) -> None:
        self.backfill_refusals = 0

    def bar(self, strategy, bar, live) -> None:
        if live:
            print(f"bar {bar.date()} LIVE: next() ran", flush=True)

    def order(self, strategy, order) -> None:
        reason = order.info.get("reason") or ""
        if order.status == order.Rejected and "not live" in reason:
            self.backfill_refusals += 1
            return
        side = "buy" if order.isbuy() else "sell"
        line = f"order {side} {abs(order.created.size):g} {order.data._name}: "
        line += order.getstatusname()
        if order.status == order.Completed:
            line += f" at {order.executed.price:.4f}"
        if reason and order.status in (order.Rejected, order.Canceled, order.Expired):
            line += f" ({reason})"
        print(line, flush=True)

    def data(self, strategy, data, status) -> None:
        if data is strategy.datas[0] or status not in (data.DELAYED, data.LIVE):
            print(f"data {data._name}: {data._getstatusname(status)}", flush=True)

    def store(self, strategy, message) -> None:
        print(f"store: {message}", flush=True)


def cmd_live(args: argparse.Namespace, settings: Settings) -> int:
    from live.alpaca_broker import BrokerError
    from live.btstore import AlpacaStore
    from live.journal import open_journal
    from live.settings import LiveSettings
    from strategies.registry import build_strategy
    from tradeship.options import open_forecaster, parse_symbols, strategy_params

    symbols = parse_symbols(args.symbols)
    if not symbols:
        raise ValueError("--symbols is required: the universe the strategy trades")
    until = dt.date.fromisoformat(args.until) if args.until else None
    spec = build_strategy(args.strategy, strategy_params(args))
    name = spec.name if ":" not in args.strategy else args.strategy
    strategy_id = strategy_id_for(name, spec.params, symbols)
    try:
        live_settings = LiveSettings()
        store = AlpacaStore(
            paper=live_settings.paper,
            settings=live_settings,
            poll_interval=args.poll,
            settle=dt.timedelta(minutes=args.settle_minutes),
            data_feed=args.feed,
        )
        today = broker_today(store)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    backfill_from = (
        dt.date.fromisoformat(args.backfill_from)
        if args.backfill_from
        else default_backfill_from(spec.warmup_bars(symbols), today)
    )
    check_dates(backfill_from, until, today)
    print(
        f"{strategy_id}: {len(symbols)} symbol(s), backfill from {backfill_from}, broker date "
        f"{today}, broker {store.settings.base_url} "
        f"({'paper' if store.settings.paper else 'LIVE'})",
        flush=True,
    )
    log, printer = LiveLog(), Printer()
    with open_forecaster(args, settings) as forecaster:
        cerebro = build_live_cerebro(
            spec,
            symbols,
            store=store,
            strategy_id=strategy_id,
            backfill_from=backfill_from,
            until=until,
            journal=open_journal(live_settings.journal or None),
            forecaster=forecaster,
            log=log,
            watch=printer,
            order_poll=max(1.0, min(args.poll, 5.0)),
        )
        try:
            cerebro.run()
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("stopped (Ctrl-C); rerunning later is safe: sent orders are found by id")
    live_bars = sum(1 for _, live in log.bars if live)
    print(
        f"{len(log.bars)} bar(s) reached the strategy ({live_bars} live), "
        f"{len(store.broker.sent)} order(s) sent, {len(log.fills)} fill(s) seen"
    )
    return 0


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    from tradeship.options import add_forecast_options, add_strategy_options

    live = sub.add_parser(
        "live",
        help="run a strategy live in Backtrader against Alpaca (paper) or the local sandbox",
        description=LIVE_HELP,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_strategy_options(live)
    live.add_argument(
        "--symbols", required=True, help="the universe, comma-separated (e.g. AAPL,MSFT,NVDA)"
    )
    live.add_argument(
        "--backfill-from",
        metavar="YYYY-MM-DD",
        help="first session to backfill (default: enough sessions for the strategy's warm-up)",
    )
    live.add_argument(
        "--until",
        metavar="YYYY-MM-DD",
        help="stop once this session's bar has been delivered (default: run until Ctrl-C)",
    )
    live.add_argument(
        "--poll",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how often Alpaca's clock is read while waiting for a bar (default 30)",
    )
    live.add_argument(
        "--settle-minutes",
        type=float,
        default=15.0,
        help="minutes after a session's close before its daily bar counts as final (default 15)",
    )
    live.add_argument(
        "--feed",
        choices=("iex", "sip"),
        help="Alpaca market data feed (default: the account's; free accounts: iex)",
    )
    add_forecast_options(live)
    live.set_defaults(func=cmd_live)
