"""A deliberately broken strategy: it memoises whole price series and peeks ahead.

At its first `next()` it copies every feed's preloaded close array into a module-level dict
(in a backtest Backtrader preloads the whole range), then ranks symbols by their *forward*
5-bar return read from that copy: a classic lookahead. In a backtest it picks tomorrow's
winners and looks brilliant. Cut the data at the decision date and the future is gone, so
the decisions change. Because the memo lives in the module, a replay in the same
interpreter would still see the full series: `tradeship check lookahead` runs each
truncated replay in a fresh interpreter, and catches it. Run it on
``examples.lookahead:PeekingMomentum`` to see.
"""

import backtrader as bt

FULL_SERIES: dict[str, list[float]] = {}  # the memo that carries the future


class PeekingMomentum(bt.Strategy):
    params = (("top_n", 3), ("rebalance_every", 5), ("peek", 5))

    def next(self):
        if len(self) % self.p.rebalance_every:
            return
        i = len(self) - 1
        scores = []
        for d in self.datas:
            series = FULL_SERIES.setdefault(d._name, list(d.close.array))
            ahead = series[min(i + self.p.peek, len(series) - 1)]
            scores.append((-(ahead / d.close[0] - 1.0), d._name, d))
        chosen = {d for _, _, d in sorted(scores, key=lambda s: s[:2])[: self.p.top_n]}
        for d in self.datas:
            self.order_target_percent(data=d, target=0.3 if d in chosen else 0.0)
