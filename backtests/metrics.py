"""Performance metrics for a backtest equity curve.

Everything returned is a plain ``float``/``int``/``str`` and always finite, so the
dict can go straight into ``json.dump`` (which would otherwise emit the invalid
tokens ``NaN``/``Infinity``). Nothing is rounded here: presentation belongs to
:mod:`backtests.report`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DAYS_PER_YEAR = 365.25
"""Calendar days per year used for CAGR (averages in leap years)."""

_STD_EPS = 1e-12
"""Return std below this is treated as zero: a constant-growth curve has std
~1e-17 from float noise, which would otherwise give a meaningless huge Sharpe."""


def _finite(x: float) -> float:
    """Coerce to a Python float, mapping NaN/inf to 0.0 so JSON stays valid."""
    x = float(x)
    return x if math.isfinite(x) else 0.0


def _clean(equity: pd.Series) -> pd.Series:
    """Sorted float series on a DatetimeIndex without NaNs; rejects empty input."""
    if not isinstance(equity, pd.Series):
        raise TypeError(f"equity must be a pandas Series, got {type(equity).__name__}")
    s = equity.astype("float64").dropna()
    if s.empty:
        raise ValueError("equity series is empty (or all NaN)")
    if not isinstance(s.index, pd.DatetimeIndex):
        s.index = pd.DatetimeIndex(pd.to_datetime(s.index))
    return s.sort_index()


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Fractional distance below the running peak (0.0 at new highs, negative below).

    Kept separate from :func:`compute_metrics` because the report plots the
    whole curve, not just its minimum.
    """
    s = _clean(equity)
    peak = s.cummax()
    dd = s / peak - 1.0
    # A non-positive peak (e.g. equity starting at 0) has no meaningful drawdown.
    dd[peak <= 0] = 0.0
    dd.name = "drawdown"
    return dd


def compute_metrics(
    equity: pd.Series,
    *,
    trades: int,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> dict[str, float | int | str]:
    """Summary statistics of one equity curve (strategy or benchmark alike).

    ``equity`` is portfolio value per session on a DatetimeIndex. ``risk_free``
    is an annual rate, de-annualised per period for Sharpe/Sortino.

    Conventions (chosen so results are hand-checkable and JSON-safe):

    - ``total_return``: last / first - 1.
    - ``cagr``: compounded over calendar years ``(end - start).days / 365.25``;
      0.0 for a zero-length span, -1.0 if the curve ends at or below zero.
    - ``volatility``: sample std (ddof=1) of period returns * sqrt(periods_per_year).
    - ``sharpe``: mean excess return / sample std * sqrt(periods_per_year);
      0.0 when std is ~0 or there are fewer than 2 returns.
    - ``sortino``: mean excess return / downside deviation * sqrt(periods_per_year),
      downside deviation = sqrt(mean(min(excess, 0)**2)) over *all* periods;
      0.0 when there is no downside.
    - ``max_drawdown``: most negative value of :func:`drawdown_series` (<= 0.0).
    - ``days``: calendar days from ``start`` to ``end``; ``sessions``: number of points.
    """
    s = _clean(equity)
    ppy = int(periods_per_year)
    if ppy <= 0:
        raise ValueError("periods_per_year must be positive")

    first, last = float(s.iloc[0]), float(s.iloc[-1])
    start, end = s.index[0], s.index[-1]
    days = int((end - start).days)

    total_return = last / first - 1.0 if first > 0 else 0.0

    years = days / DAYS_PER_YEAR
    if years <= 0 or first <= 0:
        cagr = 0.0
    elif last <= 0:
        cagr = -1.0
    else:
        cagr = (last / first) ** (1.0 / years) - 1.0

    returns = s.pct_change().iloc[1:].replace([np.inf, -np.inf], np.nan).dropna()
    n = len(returns)
    excess = returns - risk_free / ppy
    ann = math.sqrt(ppy)

    if n >= 2:
        std = float(returns.std(ddof=1))
        volatility = std * ann
        sharpe = float(excess.mean()) / std * ann if std > _STD_EPS else 0.0
    else:
        volatility = 0.0
        sharpe = 0.0

    if n >= 1:
        downside = float(np.sqrt(np.mean(np.minimum(excess.to_numpy(), 0.0) ** 2)))
        sortino = float(excess.mean()) / downside * ann if downside > _STD_EPS else 0.0
    else:
        sortino = 0.0

    max_drawdown = float(drawdown_series(s).min())

    return {
        "total_return": _finite(total_return),
        "cagr": _finite(cagr),
        "sharpe": _finite(sharpe),
        "sortino": _finite(sortino),
        "volatility": _finite(volatility),
        "max_drawdown": _finite(min(max_drawdown, 0.0)),
        "trades": int(trades),
        "initial_value": _finite(first),
        "final_value": _finite(last),
        "start": start.date().isoformat(),
        "end": end.date().isoformat(),
        "days": days,
        "sessions": int(len(s)),
    }
