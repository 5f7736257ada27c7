"""The README's example: a Backtrader strategy on tradeship's building blocks (~20 lines)."""

import backtrader as bt

from tradeship import (
    ProphetForecast,
    equal_weights,
    order_target_weights,
    read_forecasts,
    rebalance_due,
    top_n_momentum,
)


class TrendProphet(bt.Strategy):
    """Every week: of the 5 best 6-month performers, hold those Prophet sees rising."""

    params = (("top_n", 5), ("lookback", 126), ("threshold", 0.0))

    def __init__(self):
        self.fc = {d: ProphetForecast(d, window=252, horizon=5) for d in self.datas}

    def next(self):
        if not rebalance_due(self, every=5):
            return
        names = top_n_momentum(self, self.p.top_n, self.p.lookback)
        forecast = read_forecasts(self.fc[d] for d in names)  # fitted in one batch
        rising = [d._name for d in names if forecast[d._name] / d.close[0] - 1 > self.p.threshold]
        order_target_weights(self, equal_weights(rising))
