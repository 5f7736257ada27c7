"""Does the Prophet forecast know anything? Its signal lined up against what happened next.

A `RecordingForecaster` wraps the backtest's forecaster and keeps every forecast a decision
read: (symbol, window end, target date, yhat). From those records and the backtest's
history frame, `skill_frame` builds one row per forecast:

- the decision bar is the last completed bar the decision read: ``target - BDay(horizon)``
  (strategies ask for ``last_bar + BDay(horizon)``);
- ``signal = yhat / close[decision bar] - 1``, exactly what the strategy compared with its
  threshold;
- ``realised = close[target] / close[decision bar] - 1`` over the same horizon (the last
  session on or before the target when the target is a holiday; missing when the history
  ends before the target);
- ``momentum``: the trailing return over the strategy's lookback at the decision bar, the
  naive baseline on the *same* candidates (what the momentum ranking alone knew).

`skill_summary` scores a signal column: the information coefficient is the Spearman rank
correlation between signal and realised return across the candidates of one decision date;
per year and overall, the mean IC over dates with its t-stat ``mean / std * sqrt(n)`` (dates
are treated as independent: with the default horizon = rebalance spacing = 5 weekdays their
windows do not overlap). The hit rate is the share of rows where the signal's sign matches
the realised return's (for momentum, whose signal is nearly always positive among the top
names, that is the share of candidates that went up: the "buy every top-N name" baseline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from strategies.forecast import Forecaster, ForecastRequest

FORECASTS_FILE = "forecasts.csv"
FORECAST_COLUMNS = [
    "date",
    "symbol",
    "decision_bar",
    "target",
    "close",
    "forecast",
    "signal",
    "realised_return",
    "momentum",
]
MIN_NAMES_FOR_IC = 3
"""A rank correlation across fewer names than this is noise: such dates are left out."""
BINS = 5


@dataclass(frozen=True)
class ForecastRecord:
    """One forecast a decision read."""

    symbol: str
    window_end: pd.Timestamp
    target: pd.Timestamp
    yhat: float


class RecordingForecaster:
    """A `Forecaster` that passes requests to `inner` and records every answer, in order."""

    def __init__(self, inner: Forecaster) -> None:
        self.inner = inner
        self.records: list[ForecastRecord] = []

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        values = self.inner.forecast_many(requests)
        for request, value in zip(requests, values, strict=True):
            self.records.append(
                ForecastRecord(
                    symbol=str(request.symbol),
                    window_end=pd.Timestamp(request.window.index[-1]),
                    target=pd.Timestamp(request.target),
                    yhat=float(value),
                )
            )
        return values

    def __enter__(self) -> RecordingForecaster:
        enter = getattr(self.inner, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc: object) -> None:
        leave = getattr(self.inner, "__exit__", None)
        if leave is not None:
            leave(*exc)


def skill_frame(
    records: Iterable[ForecastRecord],
    closes: pd.DataFrame,
    *,
    horizon: int,
    lookback: int,
) -> pd.DataFrame:
    """One row per distinct forecast (see the module docstring), sorted by date and symbol.

    ``closes`` is the backtest's ``history["close"]`` (dates x symbols). ``date`` is the
    session the decision was for (the session after the decision bar).
    """
    if horizon < 1 or lookback < 1:
        raise ValueError("horizon and lookback must be at least 1 bar")
    seen: dict[tuple[str, pd.Timestamp], ForecastRecord] = {}
    for r in records:
        seen.setdefault((r.symbol, r.target), r)  # a replayed decision is the same forecast
    if not seen:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    index = pd.DatetimeIndex(closes.index)
    rows = []
    for (symbol, target), r in sorted(seen.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if symbol not in closes.columns:
            continue
        bar = pd.Timestamp(target - pd.offsets.BDay(horizon))
        pos = index.searchsorted(bar, side="right") - 1
        if pos < 0 or index[pos] != bar:
            continue  # the decision bar is not a session of this history
        series = closes[symbol]
        price = float(series.iloc[pos])
        after = index.searchsorted(target, side="right") - 1
        realised = (
            float(series.iloc[after]) / price - 1.0
            if target <= index[-1] and after > pos
            else math.nan
        )
        momentum = price / float(series.iloc[pos - lookback]) - 1.0 if pos >= lookback else math.nan
        rows.append(
            (
                index[pos + 1] if pos + 1 < len(index) else bar + pd.offsets.BDay(1),
                symbol,
                bar,
                target,
                price,
                r.yhat,
                r.yhat / price - 1.0,
                realised,
                momentum,
            )
        )
    return pd.DataFrame(rows, columns=FORECAST_COLUMNS)


def write_forecasts_csv(frame: pd.DataFrame, out_dir: str | Path) -> Path:
    """forecasts.csv: one row per forecast (dates as YYYY-MM-DD, full float precision)."""
    path = Path(out_dir) / FORECASTS_FILE
    frame.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.10g")
    return path


def _t_stat(values: pd.Series) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    std = float(values.std(ddof=1))
    return float(values.mean()) / std * math.sqrt(n) if std > 0 else math.nan


def daily_ic(frame: pd.DataFrame, signal: str) -> pd.Series:
    """Spearman IC of `signal` vs realised return across the candidates of each date."""
    ok = frame.dropna(subset=[signal, "realised_return"])
    out = {}
    for day, group in ok.groupby("date", sort=True):
        if len(group) < MIN_NAMES_FOR_IC:
            continue
        a = group[signal].rank()
        b = group["realised_return"].rank()
        if a.nunique() < 2 or b.nunique() < 2:
            continue
        out[pd.Timestamp(day)] = float(np.corrcoef(a, b)[0, 1])
    return pd.Series(out, dtype="float64", name=f"ic_{signal}")


def skill_table(frame: pd.DataFrame, signal: str) -> pd.DataFrame:
    """Per year and overall: mean IC, its t-stat, dates scored, forecasts, hit rate."""
    ok = frame.dropna(subset=[signal, "realised_return"])
    ic = daily_ic(ok, signal)
    hit = np.sign(ok[signal]) == np.sign(ok["realised_return"])
    years = pd.DatetimeIndex(ok["date"]).year
    ic_years = pd.DatetimeIndex(ic.index).year
    rows = []
    for year in sorted(set(years)):
        yi = ic[ic_years == year]
        rows.append(
            (
                str(year),
                float(yi.mean()) if len(yi) else math.nan,
                _t_stat(yi),
                len(yi),
                int((years == year).sum()),
                float(hit[years == year].mean()),
            )
        )
    rows.append(
        (
            "all",
            float(ic.mean()) if len(ic) else math.nan,
            _t_stat(ic),
            len(ic),
            len(ok),
            float(hit.mean()) if len(ok) else math.nan,
        )
    )
    return pd.DataFrame(rows, columns=["period", "ic", "t_stat", "dates", "forecasts", "hit_rate"])


def binned_returns(frame: pd.DataFrame, signal: str, bins: int = BINS) -> pd.DataFrame:
    """Mean realised return per signal quantile bin (bin 1 = lowest signal), with counts."""
    ok = frame.dropna(subset=[signal, "realised_return"])
    if len(ok) < bins:
        return pd.DataFrame(columns=["bin", "signal_mean", "realised_mean", "count"])
    labels = pd.qcut(ok[signal].rank(method="first"), bins, labels=range(1, bins + 1))
    grouped = ok.groupby(labels, observed=True)
    return pd.DataFrame(
        {
            "bin": [int(b) for b in grouped.groups],
            "signal_mean": grouped[signal].mean().to_numpy(),
            "realised_mean": grouped["realised_return"].mean().to_numpy(),
            "count": grouped.size().to_numpy(),
        }
    )


def selection_table(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Mean realised return of every candidate vs those Prophet passed (signal >= threshold).

    The difference is what the forecast adds on top of picking every top-N momentum name.
    """
    ok = frame.dropna(subset=["signal", "realised_return"])
    passed = ok[ok["signal"] >= threshold]
    rejected = ok[ok["signal"] < threshold]
    rows = [
        ("every candidate (momentum top-N)", len(ok), ok["realised_return"].mean()),
        (f"Prophet signal >= {threshold:g}", len(passed), passed["realised_return"].mean()),
        (f"Prophet signal < {threshold:g}", len(rejected), rejected["realised_return"].mean()),
    ]
    return pd.DataFrame(
        [(a, n, float(m) if n else math.nan) for a, n, m in rows],
        columns=["forecasts", "count", "mean_realised_return"],
    )


@dataclass(frozen=True)
class Skill:
    """Everything the report shows about the forecast, for Prophet and the baseline."""

    frame: pd.DataFrame
    prophet: pd.DataFrame
    momentum: pd.DataFrame
    prophet_bins: pd.DataFrame
    momentum_bins: pd.DataFrame
    selection: pd.DataFrame
    horizon: int
    lookback: int
    threshold: float

    def overall(self) -> dict[str, float]:
        """The headline figures (JSON-able; NaN becomes None)."""

        def last(table: pd.DataFrame, column: str) -> float | None:
            value = float(table[column].iloc[-1]) if len(table) else math.nan
            return value if math.isfinite(value) else None

        return {
            "forecasts": int(self.prophet["forecasts"].iloc[-1]) if len(self.prophet) else 0,
            "ic": last(self.prophet, "ic"),
            "ic_t_stat": last(self.prophet, "t_stat"),
            "hit_rate": last(self.prophet, "hit_rate"),
            "momentum_ic": last(self.momentum, "ic"),
            "momentum_ic_t_stat": last(self.momentum, "t_stat"),
            "momentum_hit_rate": last(self.momentum, "hit_rate"),
        }


def forecast_skill(
    records: Iterable[ForecastRecord],
    closes: pd.DataFrame,
    params: dict,
) -> Skill | None:
    """The skill of a strategy's forecasts, or None for a strategy that made none.

    ``params`` are the strategy's full parameters (``metrics["params"]``): ``horizon``,
    ``momentum_lookback`` and ``threshold`` are read from them.
    """
    records = list(records)
    if not records:
        return None
    horizon = int(params.get("horizon", 5))
    lookback = int(params.get("momentum_lookback", 126))
    threshold = float(params.get("threshold", 0.0))
    frame = skill_frame(records, closes, horizon=horizon, lookback=lookback)
    return Skill(
        frame=frame,
        prophet=skill_table(frame, "signal"),
        momentum=skill_table(frame, "momentum"),
        prophet_bins=binned_returns(frame, "signal"),
        momentum_bins=binned_returns(frame, "momentum"),
        selection=selection_table(frame, threshold),
        horizon=horizon,
        lookback=lookback,
        threshold=threshold,
    )
