"""What a rebalancing Backtrader strategy needs: its calendar and a move to target weights.

Plain functions over a running `bt.Strategy`, not a base class to inherit:

    if rebalance_due(self, every=5):
        order_target_weights(self, equal_weights(names))

Rebalance dates are weekday buckets from a fixed epoch (`strategies.schedule`), so a replay
that starts anywhere agrees with a backtest that started in 2012.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import backtrader as bt
import pandas as pd

from strategies.base import normalise_weights
from strategies.context import run_context
from strategies.schedule import is_first_of_bucket
from strategies.sizing import target_quantity


def bar_date(data: bt.feed.DataBase, ago: int = 0) -> pd.Timestamp:
    """The session date of a feed's bar `ago` bars back (0: the current one)."""
    return pd.Timestamp(data.datetime.date(-ago if ago else 0))


def next_session(strategy: bt.Strategy) -> pd.Timestamp | None:
    """The session that orders placed now trade in (None when there is none to trade in).

    tradeship's feeds carry it as the ``next_session`` line; other feeds fall back to the
    next NYSE session after the current bar.
    """
    data = strategy.datas[0]
    line = getattr(data.lines, "next_session", None)
    if line is not None:
        value = line[0]
        if value != value:  # NaN: the last bar of a backtest
            return None
        return pd.Timestamp(bt.num2date(value).date())
    import exchange_calendars  # only for feeds that do not say

    calendar = exchange_calendars.get_calendar("XNYS")
    after = bar_date(data) + pd.Timedelta(days=1)
    return pd.Timestamp(calendar.date_to_session(after, direction="next")).tz_localize(None)


def rebalance_due(strategy: bt.Strategy, every: int) -> bool:
    """True at the bar before the first session of each `every`-weekday bucket."""
    session = next_session(strategy)
    if session is None:
        return False
    return is_first_of_bucket(session, bar_date(strategy.datas[0]), every)


def equal_weights(names: Iterable[str]) -> dict[str, float]:
    chosen = sorted(set(names))
    return {name: 1.0 / len(chosen) for name in chosen} if chosen else {}


def order_target_weights(strategy: bt.Strategy, weights: Mapping[str, float]) -> list[bt.Order]:
    """Move the book to `weights` (feed name -> fraction of value): sells first, then buys.

    Every held name missing from `weights` is sold. Sizes follow `strategies.sizing`
    (priced at the current close, whole shares rounded down, the run's cash buffer), the
    rule live runs use too. Orders fill at the next session's open, or its close when the
    run's fill mode is "close".
    """
    context = run_context(strategy)
    targets = normalise_weights(weights)
    context.declared = targets
    feeds = {data._name: data for data in strategy.datas}
    equity = float(strategy.broker.getvalue())
    held = {name for name, data in feeds.items() if strategy.getposition(data).size}
    sells, buys = [], []
    for name in sorted(set(targets) | held):
        data = feeds.get(name)
        if data is None:
            context.notes.append(f"{name}: no price feed for a target")
            continue
        wanted = target_quantity(
            targets.get(name, 0.0),
            equity,
            float(data.close[0]),
            cash_buffer=context.cash_buffer,
            fractional=context.fractional,
        )
        if wanted == 0 and targets.get(name, 0.0) > 0:
            context.notes.append(
                f"{name}: one share costs more than its target weight allows "
                "(fractional shares would buy it)"
            )
        delta = wanted - strategy.getposition(data).size
        if abs(delta) > 1e-9:
            (sells if delta < 0 else buys).append((data, delta))
    exectype = bt.Order.Close if context.fill == "close" else bt.Order.Market
    orders = [strategy.sell(data=d, size=-delta, exectype=exectype) for d, delta in sells]
    orders += [strategy.buy(data=d, size=delta, exectype=exectype) for d, delta in buys]
    return orders
