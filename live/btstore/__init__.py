"""Backtrader on Alpaca, live: the store alpaca-backtrader-api used to be, on alpaca-py.

Switch an alpaca-backtrader-api program by changing its import::

    from live.btstore import AlpacaStore          # was: import alpaca_backtrader_api

    store = AlpacaStore(key_id=KEY, secret_key=SECRET, paper=True)
    cerebro = bt.Cerebro(quicknotify=True)  # order news when Alpaca answers, not next bar
    cerebro.setbroker(store.getbroker())
    data = store.getdata(dataname="AAPL", timeframe=bt.TimeFrame.Days,
                         fromdate=datetime(2024, 1, 2))
    cerebro.adddata(data)
    cerebro.run()

Three classes, Backtrader's three roles:

- `AlpacaStore` (store.py): credentials and settings (`live.settings.LiveSettings`), the
  retrying REST adapter (`rest.py`, built on `live.alpaca_broker.AlpacaBroker`), the
  broker's calendar (`sessions.py`), and the bar poller.
- `AlpacaData` (feed.py): one symbol's daily bars, backfilled then live.
- `AlpacaBroker` (broker.py): orders with deterministic client order ids and the live risk
  limits; status, fills, cash and positions back from the account.

**When ``next()`` runs.** Once per completed session, on every feed together. The store
reads Alpaca's clock every ``poll_interval`` seconds (in Cerebro's thread, from the first
feed's ``_load``; the feeds otherwise wait ``qcheck`` seconds and return "no bar yet"). A
session's daily bar is complete once its close (the broker's calendar, early closes
included) plus ``settle`` has passed; then the store asks the Market Data API for all
symbols' bars since the last session it published, in one request, keeps only sessions
through the completed one (never a bar of a session in progress), and publishes them to
every feed at once (a session whose bar is missing for a symbol that traded the session
before waits up to ``bar_grace`` seconds for it). Feeds deliver one session per round of
Cerebro's loop, never a session twice. Nothing happens between bars: no ticks, no
quote-driven ``next()``.

**Backfill, then live.** The first poll fetches ``fromdate`` through the latest completed
session. Every bar but the last is delivered with data status ``DELAYED``; the latest
completed session is ``LIVE`` (Backtrader calls ``notify_data`` with each change). The
broker refuses (``Rejected``) any order placed on a bar that is not live, and `tradeship
live` (`tradeship.commands.live.live_strategy_class`) runs the strategy's ``next()`` on
live bars only: backfilled bars warm its indicators, never trade. The live bar decides for
the next session: after the close its orders wait at Alpaca and fill at the next open,
like the backtest's. Every order is journaled (`live.journal`, the broker's ``journal``
param) before it is sent and with Alpaca's answer after, as an exported run() journals.

**Bars equal historical bars.** Live bars are not built from ticks or quotes: each is
the Market Data API's own daily bar, fetched after the session closed, adjusted
(``adjustment=all``) like a backtest's data. When Alpaca re-adjusts the past (a split or
dividend), the refetched last session differs and the feed rescales the bars it already
delivered, so a strategy's history keeps one basis.

**Dropped connections.** A failed poll (timeout, 5xx, connection refused) notifies
``CONNBROKEN`` and is retried every ``reconntimeout`` seconds; the next good poll fetches
everything after the last published session, so missed sessions arrive (``DELAYED``,
then the latest ``LIVE``) and none twice. Orders: a lost answer is looked up by its
client order id and re-sent only under the same id; a restarted process recomputes the
same ids for the same slot and finds them at Alpaca instead of ordering again.
"""

from live.btstore.broker import AlpacaBroker
from live.btstore.feed import AlpacaData
from live.btstore.store import AlpacaStore

__all__ = ["AlpacaBroker", "AlpacaData", "AlpacaStore"]
