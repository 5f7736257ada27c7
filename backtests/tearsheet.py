"""Return statistics of an equity curve, as a quant's tearsheet shows them.

The statistics come from empyrical-reloaded (the library pyfolio is built on), not from
formulas of our own: monthly and yearly compounded returns (`aggregate_returns`), rolling
6-month Sharpe and volatility (`roll_sharpe_ratio`, `roll_annual_volatility`), Calmar
(`calmar_ratio`), alpha and beta against the benchmark (`alpha_beta`). Only what empyrical
lacks is computed here: the table of worst drawdowns (dates and recovery, which pyfolio
keeps in its plotting code), built on `backtests.metrics.drawdown_series`.

Conventions worth knowing when comparing with other tools:

- empyrical's Calmar divides its *annual return* (compounded over ``len(returns) / 252``
  years) by the max drawdown; `metrics.json`'s ``cagr`` counts calendar years instead, so
  ``calmar * |max_drawdown|`` differs slightly from ``cagr``.
- A drawdown starts at the last peak (the session equity was last at its high) and
  recovers on the first session back at or above that peak; quantstats'
  `drawdown_details` starts one session later (the first session below the peak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import empyrical
import numpy as np
import pandas as pd

from backtests.metrics import drawdown_series

ROLLING_WINDOW = 126
"""Six months of sessions: the window of the rolling Sharpe and volatility."""
WORST_DRAWDOWNS = 5
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def daily_returns(equity: pd.Series) -> pd.Series:
    """Simple returns per session of a value curve (the first session has none)."""
    s = equity.astype("float64").dropna().sort_index()
    return s.pct_change().iloc[1:].replace([np.inf, -np.inf], np.nan).dropna()


def monthly_table(returns: pd.Series) -> pd.DataFrame:
    """Compounded returns: a row per year, a column per month, and the year's total."""
    cols = [*MONTHS, "Year"]
    if returns.empty:
        return pd.DataFrame(columns=cols)
    monthly = empyrical.aggregate_returns(returns, "monthly")
    yearly = empyrical.aggregate_returns(returns, "yearly")
    table = monthly.unstack().reindex(columns=range(1, 13))
    table.columns = MONTHS
    table["Year"] = yearly
    table.index = [int(y) for y in table.index]
    table.index.name = "year"
    return table[cols]


def rolling_stats(returns: pd.Series, window: int = ROLLING_WINDOW) -> pd.DataFrame:
    """Rolling annualised Sharpe and volatility over `window` sessions (NaN before it fills)."""
    if len(returns) < window:
        return pd.DataFrame(
            {"sharpe": pd.Series(dtype="float64"), "volatility": pd.Series(dtype="float64")}
        )
    sharpe = pd.Series(empyrical.roll_sharpe_ratio(returns, window=window))
    vol = pd.Series(empyrical.roll_annual_volatility(returns, window=window))
    return pd.DataFrame({"sharpe": sharpe, "volatility": vol}).reindex(returns.index)


def worst_drawdowns(equity: pd.Series, n: int = WORST_DRAWDOWNS) -> pd.DataFrame:
    """The `n` deepest drawdowns: start (last peak), trough, recovery (None if not yet),
    depth (<= 0), sessions from peak to recovery (or to the end), and days to recover.
    """
    cols = ["start", "trough", "recovery", "depth", "sessions", "recovery_sessions"]
    if equity.dropna().empty:
        return pd.DataFrame(columns=cols)
    dd = drawdown_series(equity)
    values = dd.to_numpy()
    idx = dd.index
    rows = []
    i, last_peak = 0, 0
    while i < len(values):
        if values[i] >= 0:
            last_peak = i
            i += 1
            continue
        j = i
        while j < len(values) and values[j] < 0:
            j += 1
        episode = values[i:j]
        trough = i + int(np.argmin(episode))
        recovered = j < len(values)
        end = j if recovered else len(values) - 1
        rows.append(
            (
                idx[last_peak],
                idx[trough],
                idx[j] if recovered else None,
                float(values[trough]),
                int(end - last_peak),
                int(j - trough) if recovered else None,
            )
        )
        i = j
    table = pd.DataFrame(rows, columns=cols)
    table = table.sort_values(["depth", "start"], kind="mergesort").head(n)
    return table.reset_index(drop=True)


@dataclass(frozen=True)
class ReturnStats:
    """The tearsheet's return statistics for one curve (and its benchmark)."""

    returns: pd.Series
    monthly: pd.DataFrame
    rolling: pd.DataFrame
    drawdowns: pd.DataFrame
    figures: dict[str, float]


def return_stats(equity: pd.Series, benchmark: pd.Series | None = None) -> ReturnStats:
    """Every return statistic the report shows, from empyrical where empyrical has it."""
    r = daily_returns(equity)
    figures: dict[str, float] = {
        "calmar": _finite(empyrical.calmar_ratio(r)) if len(r) else math.nan,
        "annual_return": _finite(empyrical.annual_return(r)) if len(r) else math.nan,
        "skew": float(r.skew()) if len(r) > 2 else math.nan,
        "kurtosis": float(r.kurt()) if len(r) > 3 else math.nan,
        "best_day": float(r.max()) if len(r) else math.nan,
        "worst_day": float(r.min()) if len(r) else math.nan,
    }
    if benchmark is not None and len(r):
        b = daily_returns(benchmark)
        both = pd.concat([r, b], axis=1, join="inner").dropna()
        if len(both) > 2:
            alpha, beta = empyrical.alpha_beta(both.iloc[:, 0], both.iloc[:, 1])
            figures["alpha"] = _finite(alpha)
            figures["beta"] = _finite(beta)
    return ReturnStats(
        returns=r,
        monthly=monthly_table(r),
        rolling=rolling_stats(r),
        drawdowns=worst_drawdowns(equity),
        figures=figures,
    )


def _finite(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else math.nan
