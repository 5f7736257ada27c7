"""A multi-symbol RSI swing strategy in plain Backtrader, with a recursive indicator.

Each symbol: buy a fixed slice of the portfolio (`buy(size=...)`) when RSI (Wilder's
smoothing, a recursive average) is oversold and the close is above its EMA trend; `close()`
the position when RSI is overbought or the trend breaks. It reads its own position with
`self.getposition(d)`. Recursive indicators need more warm-up than their minimum period to
reach the backtest's values: `tradeship export` measures how much.
"""

import backtrader as bt


class RsiSwing(bt.Strategy):
    params = (
        ("rsi_period", 14),
        ("trend_period", 200),
        ("oversold", 40.0),
        ("overbought", 65.0),
        ("slice", 0.1),  # fraction of portfolio value per entry
    )

    def __init__(self):
        self.rsi = {d: bt.indicators.RSI(d.close, period=self.p.rsi_period) for d in self.datas}
        self.trend = {d: bt.indicators.EMA(d.close, period=self.p.trend_period) for d in self.datas}

    def next(self):
        for d in self.datas:
            position = self.getposition(d).size
            rsi, trend, close = self.rsi[d][0], self.trend[d][0], d.close[0]
            if not position:
                if rsi < self.p.oversold and close > trend:
                    size = int(self.broker.getvalue() * self.p.slice / close)
                    if size > 0:
                        self.buy(data=d, size=size)
            elif rsi > self.p.overbought or close < trend:
                self.close(data=d)
