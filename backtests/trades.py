"""What the fills say: positions, exposure, turnover, costs, round trips, per-symbol P&L.

Everything is rebuilt from ``orders.csv`` (every fill) and the history frame's prices, so
it holds for any strategy and whichever shape the decision contract has.

- A **round trip** is what Backtrader calls a trade: one symbol's position from flat back
  to flat (adding to or trimming it stays the same trip). Its P&L is sells minus buys minus
  commissions; a trip still open at the end is marked at the last close and counted apart.
- **SQN** is Backtrader's (Van Tharp's) system quality number over closed trips:
  ``sqrt(n) * mean(pnl) / std(pnl)`` with the population std, as `bt.analyzers.SQN`
  computes it (tests compare the two on the same run).
- **Exposure** per session = value of the positions at the close / portfolio value.
- **Turnover** (annual, one-way) = traded value / 2 / mean portfolio value / years.
- **Costs** = commissions plus slippage: what each fill paid beyond the session's open (or
  close, for ``fill="close"``), the price an order would have had without slippage.
- **Contribution** of a symbol = its realised P&L plus the value of what is still held,
  net of its commissions; the contributions add up to the change in portfolio value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtests.metrics import DAYS_PER_YEAR

TRIP_COLUMNS = ["symbol", "entry", "exit", "pnl", "return", "sessions", "open"]


def _signed(orders: pd.DataFrame) -> pd.Series:
    return orders["quantity"].astype("float64").where(orders["side"] == "buy", -orders["quantity"])


def positions(orders: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Shares held at each session's close (fills on a session count from that session)."""
    if orders.empty:
        return pd.DataFrame(index=index, dtype="float64")
    flows = (
        orders.assign(q=_signed(orders))
        .pivot_table(index="date", columns="symbol", values="q", aggfunc="sum")
        .sort_index()
    )
    held = flows.reindex(index.union(flows.index)).fillna(0.0).cumsum()
    return held.reindex(index).fillna(0.0)


def exposure(orders: pd.DataFrame, closes: pd.DataFrame, equity: pd.Series) -> pd.Series:
    """Gross value of the positions over portfolio value, per session of `equity`."""
    index = pd.DatetimeIndex(equity.index)
    held = positions(orders, index)
    if held.empty:
        return pd.Series(0.0, index=index, name="exposure")
    prices = closes.reindex(index=index, columns=held.columns).ffill()
    value = (held * prices).abs().sum(axis=1)
    return (value / equity.astype("float64")).rename("exposure")


def turnover(orders: pd.DataFrame, equity: pd.Series) -> float:
    """Annual one-way turnover: traded value / 2 / mean portfolio value / years."""
    if orders.empty or len(equity) < 2:
        return 0.0
    days = (pd.Timestamp(equity.index[-1]) - pd.Timestamp(equity.index[0])).days
    years = days / DAYS_PER_YEAR
    traded = float((orders["quantity"].astype("float64") * orders["price"]).abs().sum())
    mean_value = float(equity.mean())
    return traded / 2.0 / mean_value / years if years > 0 and mean_value > 0 else 0.0


def costs(orders: pd.DataFrame, history: pd.DataFrame | None, fill: str = "open") -> dict:
    """Commissions and slippage paid, in money (slippage needs the history's prices)."""
    commission = float(orders["commission"].sum()) if len(orders) else 0.0
    slippage = 0.0
    if len(orders) and history is not None:
        field = "close" if fill == "close" else "open"
        prices = history[field]
        ref = [
            prices.at[d, s] if d in prices.index and s in prices.columns else np.nan
            for d, s in zip(orders["date"], orders["symbol"], strict=True)
        ]
        paid = (orders["price"].astype("float64") - np.asarray(ref, dtype="float64")) * _signed(
            orders
        )
        slippage = float(np.nansum(paid.to_numpy()))
    return {"commission": commission, "slippage": slippage, "total": commission + slippage}


def round_trips(orders: pd.DataFrame, last_prices: pd.Series) -> pd.DataFrame:
    """One row per flat-to-flat trip per symbol; open trips marked at `last_prices`."""
    rows = []
    for symbol, fills in orders.groupby("symbol", sort=True):
        held, cash, cost, entry = 0.0, 0.0, 0.0, None
        for rec in fills.itertuples(index=False):
            q = float(rec.quantity) if rec.side == "buy" else -float(rec.quantity)
            if entry is None and abs(q) > 0:
                entry, cash, cost = rec.date, 0.0, 0.0
            cash -= q * float(rec.price) + float(rec.commission)
            if q > 0:
                cost += q * float(rec.price)
            held += q
            if entry is not None and abs(held) < 1e-9:
                rows.append((symbol, entry, rec.date, cash, cash / cost if cost else 0.0, False))
                held, entry = 0.0, None
        if entry is not None:
            price = float(last_prices.get(symbol, np.nan))
            pnl = cash + held * price
            rows.append((symbol, entry, None, pnl, pnl / cost if cost else 0.0, True))
    frame = pd.DataFrame(rows, columns=["symbol", "entry", "exit", "pnl", "return", "open"])
    frame["sessions"] = pd.Series(dtype="float64")
    return frame[TRIP_COLUMNS] if len(frame) else pd.DataFrame(columns=TRIP_COLUMNS)


def with_sessions(trips: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Fill `sessions` (holding time in sessions, entry to exit or to the last session)."""
    if trips.empty:
        return trips
    pos = index.searchsorted
    end = [x if x is not None else index[-1] for x in trips["exit"]]
    out = trips.copy()
    out["sessions"] = pos(pd.DatetimeIndex(end)) - pos(pd.DatetimeIndex(out["entry"]))
    return out


def sqn(pnl: pd.Series) -> float:
    """Backtrader's SQN: sqrt(n) * mean / population std of trade P&L (NaN under 2 trades)."""
    values = pnl.astype("float64").to_numpy()
    if len(values) < 2:
        return math.nan
    std = float(np.std(values))
    return math.sqrt(len(values)) * float(np.mean(values)) / std if std > 0 else math.nan


def trade_stats(trips: pd.DataFrame) -> dict[str, float]:
    """Win rate, average win and loss, profit factor, holding time and SQN of closed trips."""
    closed = trips[~trips["open"].astype(bool)] if len(trips) else trips
    pnl = closed["pnl"].astype("float64") if len(closed) else pd.Series(dtype="float64")
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_loss = float(-losses.sum())
    nan = math.nan
    return {
        "closed_trades": int(len(closed)),
        "open_trades": int(len(trips) - len(closed)),
        "win_rate": float((pnl > 0).mean()) if len(pnl) else nan,
        "avg_win": float(wins.mean()) if len(wins) else nan,
        "avg_loss": float(losses.mean()) if len(losses) else nan,
        "avg_trade_return": float(closed["return"].mean()) if len(closed) else nan,
        "profit_factor": float(wins.sum()) / gross_loss if gross_loss > 0 else nan,
        "avg_holding_sessions": float(closed["sessions"].mean()) if len(closed) else nan,
        "sqn": sqn(pnl),
    }


def contribution(orders: pd.DataFrame, last_prices: pd.Series) -> pd.DataFrame:
    """P&L per symbol (realised + held value - commissions), largest first; adds to the total."""
    if orders.empty:
        return pd.DataFrame(columns=["symbol", "pnl", "share"])
    q = _signed(orders)
    frame = pd.DataFrame(
        {
            "symbol": orders["symbol"],
            "cash": -q * orders["price"].astype("float64") - orders["commission"],
            "q": q,
        }
    )
    per = frame.groupby("symbol", sort=True).sum()
    held_value = per["q"] * last_prices.reindex(per.index).astype("float64")
    pnl = per["cash"] + held_value.where(per["q"].abs() > 1e-9, 0.0)
    total = float(pnl.abs().sum())
    out = pd.DataFrame(
        {"symbol": pnl.index, "pnl": pnl.to_numpy(), "share": (pnl / total).to_numpy()}
    )
    return out.sort_values(
        ["pnl", "symbol"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)


@dataclass(frozen=True)
class TradeReport:
    exposure: pd.Series
    trips: pd.DataFrame
    stats: dict[str, float]
    contribution: pd.DataFrame
    turnover: float
    costs: dict[str, float]


def trade_report(
    orders: pd.DataFrame, equity: pd.Series, history: pd.DataFrame | None, fill: str = "open"
) -> TradeReport:
    """Everything the report shows about trading; without history, only what fills say."""
    index = pd.DatetimeIndex(equity.index)
    if history is not None:
        closes = history["close"]
        last = closes.loc[: index[-1]].ffill().iloc[-1] if len(index) else pd.Series(dtype=float)
        expo = exposure(orders, closes, equity)
    else:
        last = orders.groupby("symbol")["price"].last() if len(orders) else pd.Series(dtype=float)
        expo = pd.Series(np.nan, index=index, name="exposure")
    trips = with_sessions(round_trips(orders, last), index)
    return TradeReport(
        exposure=expo,
        trips=trips,
        stats=trade_stats(trips),
        contribution=contribution(orders, last),
        turnover=turnover(orders, equity),
        costs=costs(orders, history, fill),
    )
