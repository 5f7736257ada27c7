"""What sweeps, walk-forward validation and their report share, below all three.

`backtests.sweep` (the package), `backtests.walkforward` and `backtests.sweep_report` each
need these; keeping them here, importing none of the three, is what keeps the three free
of an import circle: plain values of a results row, ISO days, the metrics a sweep ranks by
and which way each is better, each thread's forecaster, and the walk-forward summary line.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import pandas as pd

from backtests.forecast_cache import ForecastCache, default_cache_dir
from backtests.forecasting import FastForecaster
from backtests.metrics import compute_metrics
from marketdata.calendar import calendar_day

_local = threading.local()  # one forecaster per worker thread (stats are not shared)


def scalar(value: Any) -> Any:
    """A plain Python value (numpy and pandas scalars from a Parquet file included)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str | bytes) else value


def iso_day(value: Any) -> str | None:
    """`value` as the ``YYYY-MM-DD`` of its calendar day (None stays None)."""
    return None if value is None else calendar_day(value).date().isoformat()


@functools.cache
def metric_names() -> tuple[str, ...]:
    """The numeric metrics a sweep can rank by: compute_metrics' and their benchmark_ twins."""
    probe = pd.Series([1.0, 1.1, 1.05], index=pd.date_range("2020-01-01", periods=3))
    names = [k for k, v in compute_metrics(probe, trades=0).items() if not isinstance(v, str)]
    return tuple(names + [f"benchmark_{name}" for name in names])


def lower_is_better(metric: str) -> bool:
    """Volatility is minimised; every other metric (drawdowns are <= 0) is maximised."""
    return metric.endswith("volatility")


def point_forecaster(cache_dir: str | None) -> FastForecaster:
    """This thread's FastForecaster for `cache_dir`, in process (workers=1), kept for reuse.

    None = the default cache folder (TRADESHIP_CACHE_DIR), "" = no cache. Forecasts of a
    sweep's points come from here, so points run in one worker share one forecaster.
    """
    root = str(default_cache_dir()) if cache_dir is None else cache_dir
    forecasters = getattr(_local, "forecasters", None)
    if forecasters is None:
        forecasters = _local.forecasters = {}
    if root not in forecasters:
        cache = ForecastCache(root) if root else None
        forecasters[root] = FastForecaster(cache=cache, workers=1)
    return forecasters[root]


def summary_line(folds: pd.DataFrame, metric: str) -> str:
    """Walk-forward averages over the folds that have both an in- and out-of-sample metric."""
    both = folds.dropna(subset=[f"is_{metric}", f"oos_{metric}"])
    if both.empty:
        return "no fold has both an in-sample and an out-of-sample result"
    is_mean = both[f"is_{metric}"].mean()
    oos_mean = both[f"oos_{metric}"].mean()
    if lower_is_better(metric):
        worse = int((both[f"oos_{metric}"] > both[f"is_{metric}"]).sum())
    else:
        worse = int((both[f"oos_{metric}"] < both[f"is_{metric}"]).sum())
    return (
        f"mean in-sample {metric} {is_mean:.4g}, mean out-of-sample {metric} {oos_mean:.4g}, "
        f"mean degradation {both['degradation'].mean():.4g} over {len(both)} folds "
        f"(out-of-sample worse in {worse} of {len(both)})"
    )
