"""One sweep point in a worker: its task, its backtest, its results row."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backtests.runner import BacktestConfig, run_backtest
from backtests.sweep.data import point_data
from backtests.sweep_common import point_forecaster, scalar
from strategies.forecast import quiet_prophet_logs

# Columns that describe a run rather than a result: they differ from run to run.
RUN_INFO_COLUMNS = ("seconds", "fits", "forecast_hits", "run_id", "worker")
BOOKKEEPING_COLUMNS = ("point", "error", *RUN_INFO_COLUMNS)


@dataclass(frozen=True)
class SweepTask:
    """What a worker needs for one point: no data, only where to load it from.

    columns: the point's parameters (and e.g. its walk-forward fold) as result columns.
    load_start/load_end: the range every point of the batch loads (each cuts its own).
    cache_dir: the forecast cache folder; None = the worker's default (its own
    TRADESHIP_CACHE_DIR), "" = no cache.
    """

    key: str
    config: BacktestConfig
    columns: dict[str, Any]
    load_start: str | None = None
    load_end: str | None = None
    cache_dir: str | None = None


def flatten_metrics(metrics: Mapping[str, Any], reserved: Iterable[str] = ()) -> dict[str, Any]:
    """Every scalar of a metrics.json dict; nested dicts as ``outer_inner``.

    ``params`` is left out (the swept parameters are columns of their own). A name that
    clashes with a `reserved` column (a parameter, ``seconds``...) gets a ``metric_`` prefix.
    """
    taken = set(reserved)
    flat: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        value = scalar(value)
        if value is None or isinstance(value, bool | int | float | str):
            flat[f"metric_{name}" if name in taken else name] = value

    for name, value in metrics.items():
        if name == "params":
            continue
        if isinstance(value, Mapping):
            for inner, inner_value in value.items():
                put(f"{name}_{inner}", inner_value)
        else:
            put(name, value)
    return flat


def error_text(exc: BaseException) -> str:
    """An exception as one line for a results row: its type and the first line of it."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_point(task: SweepTask) -> dict[str, Any]:
    """Backtest one point and return its results row; an exception becomes its ``error``."""
    quiet_prophet_logs()  # cmdstanpy logs every fit at INFO; idempotent
    started = time.perf_counter()
    row: dict[str, Any] = {"point": task.key, **task.columns}
    forecaster = point_forecaster(task.cache_dir)
    before = dict(forecaster.stats)
    try:
        data = point_data(task.config, task.load_start, task.load_end)
        result = run_backtest(task.config, forecaster=forecaster, market_data=data)
    except Exception as exc:  # recorded, and the sweep goes on
        row["error"] = error_text(exc)
    else:
        row.update(flatten_metrics(result.metrics, reserved=[*row, *BOOKKEEPING_COLUMNS]))
        row["error"] = None
    row["seconds"] = time.perf_counter() - started
    row["fits"] = int(forecaster.stats["fits"] - before["fits"])
    row["forecast_hits"] = int(forecaster.stats["hits"] - before["hits"])
    row["run_id"] = uuid.uuid4().hex
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def failed_row(task: SweepTask, exc: BaseException) -> dict[str, Any]:
    """The row of a point whose worker failed (died, lost, ...) rather than its backtest."""
    return {
        "point": task.key,
        **task.columns,
        "error": error_text(exc),
        "seconds": None,
        "fits": 0,
        "forecast_hits": 0,
        "run_id": uuid.uuid4().hex,
        "worker": None,
    }
