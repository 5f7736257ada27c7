"""tradeship: write a strategy once as a Backtrader class; backtest, export, deploy it.

The building blocks a strategy imports, all in one place (nothing else is public API):

    import backtrader as bt
    from tradeship import ProphetForecast, read_forecasts, top_n_momentum, rebalance_due, \\
        order_target_weights, equal_weights

- `ProphetForecast(data, window=252, horizon=5, refit_every=5, ...)`: a Backtrader indicator
  whose value is fitted only when read (`fc[0]`), through the run's cache and workers;
  `read_forecasts(indicators)` reads several in one parallel batch.
- `top_n_momentum(strategy, n, lookback)`: the feeds with the best trailing return among the
  universe's members for the session being decided for (point-in-time).
- `rebalance_due(strategy, every)`: the bar before the first session of each
  `every`-weekday bucket; `order_target_weights(strategy, weights)`: sells, then buys, sized
  as live runs size; `equal_weights(names)`.
- `next_session(strategy)`, `is_member(data)`, `bar_date(data)`: what the blocks read.
"""

from strategies.indicators import ProphetForecast, read_forecasts
from strategies.rebalance import (
    bar_date,
    equal_weights,
    next_session,
    order_target_weights,
    rebalance_due,
)
from strategies.universe import is_member, top_n_momentum

__all__ = [
    "ProphetForecast",
    "bar_date",
    "equal_weights",
    "is_member",
    "next_session",
    "order_target_weights",
    "read_forecasts",
    "rebalance_due",
    "top_n_momentum",
]
