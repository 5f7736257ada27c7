"""Parameter sweeps: one backtest per point of a grid, in parallel, resumable.

A sweep runs `run_backtest` for every point of a parameter grid (or `random` points of it,
drawn with a seed) and keeps one row per point in ``DIR/results.parquet``: the point's
parameters, every scalar metric of its metrics.json (``benchmark`` flattened to
``benchmark_*``), ``seconds``, ``error`` (null when it ran) and bookkeeping (``point``,
``fits``, ``forecast_hits``, ``run_id``, ``worker``). Rows are sorted by parameters.

Where the points run (`open_runner`):

- ``workers=1``: one after the other in this process.
- ``workers=N``: a `dask.distributed.LocalCluster` of N single-threaded worker processes.
- ``cluster="tcp://host:8786"``: an existing Dask cluster, through a `distributed.Client`.

Only a `SweepTask` (a `BacktestConfig` and the data range to load) travels to a worker,
never market data: each worker process loads the named source itself, once per
(source, symbols, start, end) (`load_market_data`, an lru_cache), and cuts each point's
range out of it. Cutting is exact: `marketdata.load` validates and adjusts a symbol's whole
series and only then clips it to [start, end], so a clip of a wider load is the load of the
narrower range. Forecasts come from a `FastForecaster` with ``workers=1`` (no pool inside a
pool) on the shared content-addressed disk cache, so points that differ only in
non-Prophet parameters (threshold, top_n within the candidates already fitted, ...)
never refit, whichever worker runs them.

Layout, one concern per module: `grid` (``--grid`` parsing, points, keys), `data` (one
load per worker, each point's range cut from it), `worker` (one point: task, backtest,
row), `runners` (this process, local Dask workers, an existing cluster), `store` (the
results file, resume), `spec` (`SweepSpec` and its tasks), `run` (`run_sweep`). What the
walk-forward and the report share with them lives in `backtests.sweep_common`.

Resume: results are rewritten atomically (temporary file + ``os.replace``) after every
point, so a killed sweep keeps every finished point; running it again runs only the points
missing from the results. A point that raises is recorded with its error and the sweep
goes on (``retry_errors=True`` runs such points again). Ctrl-C stops cleanly: running
points are abandoned, finished ones are kept, and the outcome says so.
"""

from backtests.sweep.data import clip_market_data, load_market_data, point_data
from backtests.sweep.grid import grid_points, parse_grid, point_key
from backtests.sweep.run import (
    HEATMAP_FILE,
    REPORT_FILE,
    SweepResult,
    resume_hint,
    run_sweep,
    sweep_summary,
)
from backtests.sweep.runners import WAIT_FOR_WORKERS, DaskRunner, SerialRunner, open_runner
from backtests.sweep.spec import SweepSpec, earliest_load, normalise_source, sweep_tasks
from backtests.sweep.store import (
    META_FILE,
    RESULTS_FILE,
    ResultStore,
    RunOutcome,
    check_meta,
    results_frame,
    run_tasks,
)
from backtests.sweep.worker import (
    BOOKKEEPING_COLUMNS,
    RUN_INFO_COLUMNS,
    SweepTask,
    error_text,
    failed_row,
    flatten_metrics,
    run_point,
)
from backtests.sweep_common import lower_is_better, metric_names

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "HEATMAP_FILE",
    "META_FILE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "RUN_INFO_COLUMNS",
    "WAIT_FOR_WORKERS",
    "DaskRunner",
    "ResultStore",
    "RunOutcome",
    "SerialRunner",
    "SweepResult",
    "SweepSpec",
    "SweepTask",
    "check_meta",
    "clip_market_data",
    "earliest_load",
    "error_text",
    "failed_row",
    "flatten_metrics",
    "grid_points",
    "load_market_data",
    "lower_is_better",
    "metric_names",
    "normalise_source",
    "open_runner",
    "parse_grid",
    "point_data",
    "point_key",
    "results_frame",
    "resume_hint",
    "run_point",
    "run_sweep",
    "run_tasks",
    "sweep_summary",
    "sweep_tasks",
]
