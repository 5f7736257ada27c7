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

Resume: results are rewritten atomically (temporary file + ``os.replace``) after every
point, so a killed sweep keeps every finished point; running it again runs only the points
missing from the results. A point that raises is recorded with its error and the sweep
goes on (``retry_errors=True`` runs such points again). Ctrl-C stops cleanly: running
points are abandoned, finished ones are kept, and the outcome says so.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import random as random_module
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.runner import BacktestConfig, build_strategy, run_backtest, warmup_start
from marketdata import DataError, MarketData, load, parse_source
from marketdata.calendar import calendar_day
from strategies.registry import parse_params, strategy_class

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"
META_FILE = "sweep.json"
HEATMAP_FILE = "heatmap.png"
REPORT_FILE = "report.html"

WAIT_FOR_WORKERS = 60.0  # seconds an existing cluster may take to show its first worker
QUIET_WORKERS_WAIT = 10.0  # seconds local workers get to quiet their logs before closing

# Columns that describe a run rather than a result: they differ from run to run.
RUN_INFO_COLUMNS = ("seconds", "fits", "forecast_hits", "run_id", "worker")
BOOKKEEPING_COLUMNS = ("point", "error", *RUN_INFO_COLUMNS)

__all__ = [
    "RESULTS_FILE",
    "RUN_INFO_COLUMNS",
    "RunOutcome",
    "SweepResult",
    "SweepSpec",
    "SweepTask",
    "clip_market_data",
    "flatten_metrics",
    "grid_points",
    "load_market_data",
    "metric_names",
    "open_runner",
    "parse_grid",
    "point_key",
    "run_point",
    "run_sweep",
    "run_tasks",
]


# --------------------------------------------------------------------------- the grid


def _scalar(value: Any) -> Any:
    """A plain Python value (numpy and pandas scalars from a Parquet file included)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str | bytes) else value


def parse_grid(
    strategy: str, grid: Iterable[str] | Mapping[str, Sequence[Any]]
) -> dict[str, list[Any]]:
    """``["KEY=v1,v2", ...]`` (or ``{KEY: [v1, v2]}``) as typed, sorted, distinct values.

    Each value is typed like ``--param KEY=VALUE`` (the strategy's Params field type);
    unknown keys and values of the wrong type are errors.
    """
    cls = strategy_class(strategy)
    raw: dict[str, list[Any]] = {}
    if isinstance(grid, Mapping):
        for key, values in grid.items():
            if isinstance(values, str) or not isinstance(values, Iterable):
                values = [values]
            raw[str(key).strip()] = list(values)
    else:
        for item in grid:
            key, sep, text = str(item).partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"--grid takes KEY=V1,V2,..., got {item!r}")
            if key in raw:
                raise ValueError(f"--grid {key} is given twice: list all its values in one")
            raw[key] = [part.strip() for part in text.split(",") if part.strip()]
    if not raw:
        raise ValueError("a sweep needs at least one --grid KEY=V1,V2,...")
    typed: dict[str, list[Any]] = {}
    for key in sorted(raw):
        if not raw[key]:
            raise ValueError(f"--grid {key}= has no values")
        values = {parse_params(cls, {key: value})[key] for value in raw[key]}
        typed[key] = sorted(values)
    return typed


def point_key(params: Mapping[str, Any]) -> str:
    """The identity of a point in the results: its parameters as canonical JSON."""
    return json.dumps(
        {k: _scalar(v) for k, v in params.items()}, sort_keys=True, separators=(",", ":")
    )


def grid_points(
    grid: Mapping[str, Sequence[Any]], random: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """Every point of `grid` (or `random` of them, drawn with `seed`), sorted by parameters.

    The draw depends only on the grid's (sorted) values, `random` and `seed`, so the same
    command samples the same points, which is what lets a random sweep resume.
    """
    keys = sorted(grid)
    values = [sorted(grid[key]) for key in keys]
    total = math.prod(len(v) for v in values)
    if random is not None and int(random) < 1:
        raise ValueError(f"--random takes a positive number of points, got {random}")
    if random is None or int(random) >= total:
        indices: Iterable[int] = range(total)
    else:
        indices = random_module.Random(int(seed)).sample(range(total), int(random))
    points = []
    for index in indices:
        point = {}
        for key, choices in zip(reversed(keys), reversed(values), strict=True):
            index, digit = divmod(index, len(choices))
            point[key] = choices[digit]
        points.append(dict(sorted(point.items())))
    return sorted(points, key=lambda p: tuple(p[k] for k in keys))


@functools.cache
def metric_names() -> tuple[str, ...]:
    """The numeric metrics a sweep can rank by: compute_metrics' and their benchmark_ twins."""
    from backtests.metrics import compute_metrics

    probe = pd.Series([1.0, 1.1, 1.05], index=pd.date_range("2020-01-01", periods=3))
    names = [k for k, v in compute_metrics(probe, trades=0).items() if not isinstance(v, str)]
    return tuple(names + [f"benchmark_{name}" for name in names])


def lower_is_better(metric: str) -> bool:
    """Volatility is minimised; every other metric (drawdowns are <= 0) is maximised."""
    return metric.endswith("volatility")


# --------------------------------------------------------------------------- one point


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
        value = _scalar(value)
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


@functools.lru_cache(maxsize=8)
def load_market_data(
    source: str, symbols: tuple[str, ...] | None, start: str | None, end: str | None
) -> MarketData:
    """`marketdata.load`, once per process for the same arguments (every point shares it)."""
    return load(source, list(symbols) if symbols else None, start, end)


def clip_market_data(data: MarketData, start: Any, end: Any) -> MarketData:
    """`data` cut to [start, end] exactly as `marketdata.load` would have cut it."""
    lo = calendar_day(start) if start is not None else None
    hi = calendar_day(end) if end is not None else None
    bars: dict[str, pd.DataFrame] = {}
    problems = dict(data.problems)
    for symbol, frame in data.bars.items():
        keep = pd.Series(True, index=frame.index)
        if lo is not None:
            keep &= frame.index >= lo
        if hi is not None:
            keep &= frame.index <= hi
        window = frame.loc[keep.to_numpy()]
        if window.empty:
            problems[symbol] = f"{symbol}: no bars in the range"
            continue
        bars[symbol] = window
    if not bars:
        raise DataError(f"nothing loaded from {data.source} between {lo} and {hi}")
    return MarketData(
        bars=bars, problems=dict(sorted(problems.items())), source=data.source,
        synthetic=data.synthetic,
    )  # fmt: skip


def _day(value: Any) -> str | None:
    return None if value is None else calendar_day(value).date().isoformat()


def _point_data(task: SweepTask) -> MarketData:
    """The bars `run_backtest(task.config)` would load, cut from the batch's cached load."""
    config = task.config
    warmup = build_strategy(config.strategy, config.params).warmup_bars()
    start = warmup_start(pd.Timestamp(config.start) if config.start else None, warmup)
    symbols = tuple(config.symbols) if config.symbols else None
    load_start, load_end = task.load_start, task.load_end
    if start is None:
        load_start = None
    elif load_start is None or calendar_day(load_start) > start:
        load_start = _day(start)  # the batch's range is too short for this point
    if config.end is None:
        load_end = None
    elif load_end is None or calendar_day(load_end) < calendar_day(config.end):
        load_end = _day(config.end)
    data = load_market_data(config.source, symbols, load_start, load_end)
    return clip_market_data(data, start, config.end)


_local = threading.local()  # one forecaster per worker thread (stats are not shared)
_setup_done = False


def _setup_process() -> None:
    """Once per process: quiet cmdstanpy, import Prophet without its plotly complaint."""
    global _setup_done
    if _setup_done:
        return
    from strategies.forecast import quiet_prophet_logs

    quiet_prophet_logs()
    plot_log = logging.getLogger("prophet.plot")
    level = plot_log.level
    plot_log.setLevel(logging.CRITICAL)
    try:
        import prophet  # noqa: F401
    except ImportError:  # a strategy without Prophet still sweeps
        pass
    finally:
        plot_log.setLevel(level)
    _setup_done = True


def _forecaster(cache_dir: str | None):
    """This thread's FastForecaster for `cache_dir`, in process (workers=1), kept for reuse."""
    from backtests.forecast_cache import ForecastCache, default_cache_dir
    from backtests.forecasting import FastForecaster

    root = str(default_cache_dir()) if cache_dir is None else cache_dir
    forecasters = getattr(_local, "forecasters", None)
    if forecasters is None:
        forecasters = _local.forecasters = {}
    if root not in forecasters:
        cache = ForecastCache(root) if root else None
        forecasters[root] = FastForecaster(cache=cache, workers=1)
    return forecasters[root]


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_point(task: SweepTask) -> dict[str, Any]:
    """Backtest one point and return its results row; an exception becomes its ``error``."""
    _setup_process()
    started = time.perf_counter()
    row: dict[str, Any] = {"point": task.key, **task.columns}
    forecaster = _forecaster(task.cache_dir)
    before = dict(forecaster.stats)
    try:
        result = run_backtest(task.config, forecaster=forecaster, market_data=_point_data(task))
    except Exception as exc:  # recorded, and the sweep goes on
        row["error"] = _error_text(exc)
    else:
        row.update(flatten_metrics(result.metrics, reserved=[*row, *BOOKKEEPING_COLUMNS]))
        row["error"] = None
    row["seconds"] = time.perf_counter() - started
    row["fits"] = int(forecaster.stats["fits"] - before["fits"])
    row["forecast_hits"] = int(forecaster.stats["hits"] - before["hits"])
    row["run_id"] = uuid.uuid4().hex
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def _failed_row(task: SweepTask, exc: BaseException) -> dict[str, Any]:
    """The row of a point whose worker failed (died, lost, ...) rather than its backtest."""
    return {
        "point": task.key,
        **task.columns,
        "error": _error_text(exc),
        "seconds": None,
        "fits": 0,
        "forecast_hits": 0,
        "run_id": uuid.uuid4().hex,
        "worker": None,
    }


# --------------------------------------------------------------------------- runners


class SerialRunner:
    """Points one after the other in this process (``workers=1``)."""

    description = "1 worker (this process)"

    def __enter__(self) -> SerialRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run(self, tasks: Sequence[SweepTask]) -> Iterator[tuple[SweepTask, dict[str, Any]]]:
        for task in tasks:
            yield task, run_point(task)


def _probe() -> str:
    """Run on every worker of a cluster before the first point: can it run sweeps?"""
    return f"{socket.gethostname()}:{os.getpid()}"


def _ignore_sigint() -> None:
    """In a local worker process: Ctrl-C is the client's to handle, not a traceback here."""
    import signal

    with suppress(ValueError):  # not the main thread: nothing to do
        signal.signal(signal.SIGINT, signal.SIG_IGN)


# Loggers whose records, while a cluster shuts down, are only the noise of closing sockets
# (a worker's heartbeat to a scheduler that has just gone, "stream closed", ...), printed
# with a traceback. Every point's own failure is already recorded in the results.
DASK_LOGGERS = ("distributed", "tornado", "asyncio")


def _dask_loggers() -> list[logging.Logger]:
    names = [
        name
        for name in list(logging.root.manager.loggerDict)
        if any(name == root or name.startswith(f"{root}.") for root in DASK_LOGGERS)
    ]
    return [logging.getLogger(name) for name in sorted(set(names) | set(DASK_LOGGERS))]


def _quiet_dask_logs() -> None:
    """In a local worker process about to be closed: nothing below CRITICAL reaches stderr."""
    for logger in _dask_loggers():
        logger.setLevel(logging.CRITICAL)


@contextmanager
def _dask_logs_quieted() -> Iterator[None]:
    """In this process, for the duration of a shutdown: dask's loggers at CRITICAL only."""
    loggers = _dask_loggers()
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _run_briefly(fn: Callable[[], object], seconds: float) -> None:
    """Call `fn` in a daemon thread, waiting at most `seconds` (a hung worker never blocks)."""

    def call() -> None:
        with suppress(Exception):
            fn()

    thread = threading.Thread(target=call, name="tradeship-sweep-quiet", daemon=True)
    thread.start()
    thread.join(seconds)


class DaskRunner:
    """Points on a Dask cluster: a LocalCluster of `workers` processes, or `address`.

    The cluster starts at the first non-empty batch and is closed on exit (an existing
    cluster is only disconnected from). Ctrl-C cancels every pending point.
    """

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        self.workers = int(workers)
        self.address = address
        self.cluster: Any = None
        self.client: Any = None
        self._futures: list[Any] = []
        where = address or f"{self.workers} local worker processes"
        self.description = f"dask ({where})"

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, batch: int) -> None:
        if self.client is not None:
            return
        from distributed import Client, LocalCluster

        if self.address:
            self.client = Client(self.address, set_as_default=False)
            try:
                self.client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
            except TimeoutError:
                raise ValueError(
                    f"the Dask cluster at {self.address} has no workers "
                    f"(waited {WAIT_FOR_WORKERS:.0f} s)"
                ) from None
            try:
                self.client.run(_probe)  # unpickling it imports tradeship on every worker
            except Exception as exc:
                raise ValueError(
                    f"workers of {self.address} cannot run tradeship sweeps ({_error_text(exc)}):"
                    " install tradeship in their environment"
                ) from None
            return
        self.cluster = LocalCluster(
            n_workers=max(1, min(self.workers, batch)),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster, set_as_default=False)
        with suppress(Exception):
            self.client.run(_ignore_sigint)

    def run(self, tasks: Sequence[SweepTask]) -> Iterator[tuple[SweepTask, dict[str, Any]]]:
        if not tasks:
            return
        from distributed import as_completed

        self._start(len(tasks))
        futures = [self.client.submit(run_point, task, pure=False) for task in tasks]
        self._futures = futures
        owner = {future.key: task for future, task in zip(futures, tasks, strict=True)}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                task = owner[future.key]
                try:
                    row = future.result()
                except Exception as exc:  # the worker died or was lost, not the backtest
                    row = _failed_row(task, exc)
                yield task, row
        finally:
            self._cancel()

    def _cancel(self) -> None:
        pending = [f for f in self._futures if not f.done()]
        self._futures = []
        if pending and self.client is not None:
            with suppress(Exception):
                self.client.cancel(pending)

    def close(self) -> None:
        """Cancel pending points, then close the client and our cluster without log noise.

        Our local workers are told to stay quiet first (bounded wait): a worker whose
        heartbeat meets the closing scheduler would otherwise print a traceback, which is
        what a user pressing Ctrl-C on a loaded machine saw.
        """
        self._cancel()
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        with _dask_logs_quieted():
            if client is not None and cluster is not None:
                _run_briefly(lambda: client.run(_quiet_dask_logs), QUIET_WORKERS_WAIT)
            with suppress(Exception):
                if client is not None:
                    client.close()
            with suppress(Exception):
                if cluster is not None:
                    cluster.close()


def open_runner(workers: int | None = None, cluster: str | None = None):
    """Where the points run: an existing cluster, local processes, or this process."""
    from backtests.forecasting import resolve_workers

    if cluster:
        return DaskRunner(address=cluster)
    count = resolve_workers(workers)
    return SerialRunner() if count == 1 else DaskRunner(workers=count)


# --------------------------------------------------------------------------- results


class ResultStore:
    """The rows of a results file, keyed by point, rewritten atomically on every change."""

    def __init__(self, path: Path, sort_columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.sort_columns = list(sort_columns)
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            frame = pd.read_parquet(self.path)
            for record in frame.to_dict("records"):
                row = {k: _scalar(v) for k, v in record.items()}
                if row.get("error") is not None and not isinstance(row["error"], str):
                    row["error"] = None  # NaN read back from an all-null column
                self.rows[str(row["point"])] = row

    def finished(self, key: str, retry_errors: bool = False) -> bool:
        row = self.rows.get(key)
        if row is None:
            return False
        return not (retry_errors and isinstance(row.get("error"), str))

    def add(self, row: dict[str, Any]) -> None:
        self.rows[str(row["point"])] = row
        self.write()

    def frame(self, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """The rows (only those of `keys` when given), sorted, columns in a fixed order."""
        rows = list(self.rows.values()) if keys is None else [
            self.rows[k] for k in keys if k in self.rows
        ]  # fmt: skip
        return results_frame(rows, self.sort_columns)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.frame().to_parquet(tmp, index=False)
            os.replace(tmp, self.path)
        except BaseException:
            with suppress(OSError):
                tmp.unlink()
            raise


def results_frame(rows: Sequence[Mapping[str, Any]], sort_columns: Sequence[str]) -> pd.DataFrame:
    """Rows sorted by `sort_columns`; columns: point, those, metrics (sorted), bookkeeping."""
    sort_columns = list(sort_columns)
    ordered = sorted(rows, key=lambda r: tuple(_scalar(r.get(c)) for c in sort_columns))
    present: set[str] = set()
    for row in ordered:
        present.update(row)
    lead = ["point", *sort_columns]
    tail = ["error", *RUN_INFO_COLUMNS]
    middle = sorted(present - set(lead) - set(tail))
    columns = lead + middle + tail
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in ordered], columns=columns)
    for column in ("error", "run_id", "worker", "point"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


@dataclass
class RunOutcome:
    """What one `run_tasks` call did."""

    frame: pd.DataFrame  # the rows of the tasks asked for (finished ones), sorted
    ran: int  # points run by this call
    skipped: int  # points already in the results, not run again
    failed: int  # points of `frame` with an error
    total: int  # points asked for
    interrupted: bool
    seconds: float
    path: Path

    @property
    def missing(self) -> int:
        return self.total - len(self.frame)


def run_tasks(
    tasks: Sequence[SweepTask],
    path: str | Path,
    *,
    sort_columns: Sequence[str],
    runner: Any,
    progress: bool = False,
    retry_errors: bool = False,
    label: str = "sweep",
) -> RunOutcome:
    """Run the tasks not yet in the results file at `path`, recording each as it finishes."""
    started = time.perf_counter()
    store = ResultStore(Path(path), sort_columns)
    todo = [t for t in tasks if not store.finished(t.key, retry_errors)]
    ran = failed_now = 0
    interrupted = False
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=label, unit="point", file=sys.stderr, leave=False)
    try:
        for _, row in runner.run(todo):
            store.add(row)
            ran += 1
            failed_now += isinstance(row.get("error"), str)
            if bar is not None:
                bar.update(1)
                if failed_now:
                    bar.set_postfix_str(f"{failed_now} failed", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    frame = store.frame([t.key for t in tasks])
    failed = int(frame["error"].notna().sum()) if len(frame) else 0
    return RunOutcome(
        frame=frame,
        ran=ran,
        skipped=len(tasks) - len(todo),
        failed=failed,
        total=len(tasks),
        interrupted=interrupted,
        seconds=time.perf_counter() - started,
        path=store.path,
    )


# --------------------------------------------------------------------------- a sweep


@dataclass
class SweepSpec:
    """A sweep: a strategy, the grid to explore, fixed parameters and the data."""

    strategy: str
    grid: Mapping[str, Sequence[Any]] | Sequence[str]
    params: Mapping[str, Any] = field(default_factory=dict)  # fixed, not swept
    source: str = "demo"
    symbols: list[str] | None = None
    start: str | None = None
    end: str | None = None
    metric: str = "sharpe"
    random: int | None = None
    seed: int = 0
    cash: float = 100_000.0
    commission: float = 0.0
    slippage: float = 0.0
    fill: str = "open"

    def typed_grid(self) -> dict[str, list[Any]]:
        return parse_grid(self.strategy, self.grid)

    def fixed_params(self) -> dict[str, Any]:
        typed = parse_params(strategy_class(self.strategy), dict(self.params))
        swept = sorted(set(typed) & set(self.typed_grid()))
        if swept:
            raise ValueError(f"{', '.join(swept)}: both swept (--grid) and fixed (--param)")
        return typed

    def points(self) -> list[dict[str, Any]]:
        return grid_points(self.typed_grid(), self.random, self.seed)

    def check(self) -> None:
        if self.metric not in metric_names():
            raise ValueError(
                f"--metric {self.metric!r} is not a metric; choose one of "
                + ", ".join(metric_names())
            )
        self.fixed_params()

    def config(self, params: Mapping[str, Any], start: Any = None, end: Any = None):
        """The BacktestConfig of one point (over [start, end] when given, else the spec's)."""
        return BacktestConfig(
            strategy=self.strategy,
            params={**self.fixed_params(), **params},
            source=normalise_source(self.source),
            symbols=list(self.symbols) if self.symbols else None,
            start=_day(start) if start is not None else self.start,
            end=_day(end) if end is not None else self.end,
            cash=self.cash,
            commission=self.commission,
            slippage=self.slippage,
            fill=self.fill,
        )

    def identity(self) -> dict[str, Any]:
        """What must not change between a sweep and its resumption in the same folder."""
        config = dataclasses.asdict(self.config({}))
        return {
            "strategy": self.strategy,
            "fixed_params": {k: _scalar(v) for k, v in config.pop("params").items()},
            "grid_keys": sorted(self.typed_grid()),
            **{k: v for k, v in config.items() if k != "strategy"},
        }


def normalise_source(source: str) -> str:
    """A local parquet:/csv: path made absolute, so workers in another folder find it."""
    spec = parse_source(source)
    if spec.kind in ("parquet", "csv") and spec.location:
        path = Path(spec.location).expanduser()
        if path.exists():
            return f"{spec.kind}:{path.resolve()}"
    return source


def earliest_load(spec: SweepSpec, points: Iterable[Mapping[str, Any]], start: Any) -> str | None:
    """The earliest date any point's warm-up reaches back to before `start`."""
    if start is None:
        return None
    first = pd.Timestamp(start)
    for params in points:
        try:
            strategy = build_strategy(spec.strategy, {**spec.fixed_params(), **params})
        except Exception:  # an invalid point fails in its worker, with its error recorded
            continue
        reach = warmup_start(pd.Timestamp(start), strategy.warmup_bars())
        first = min(first, reach)
    return _day(first)


def check_meta(path: Path, identity: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Refuse to resume into a folder holding results of a different sweep; record ours."""
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8")).get("identity", {})
        except (OSError, ValueError):
            old = None
        if old is not None and old != json.loads(json.dumps(identity, default=str)):
            changed = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise ValueError(
                f"{path.parent} holds results of a different sweep ({', '.join(changed)} "
                "changed): use another --out, or delete the folder to start over"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"identity": identity, **record}, indent=2, sort_keys=True, default=str)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class SweepResult:
    spec: SweepSpec
    params: list[str]  # the swept parameters
    outcome: RunOutcome
    importance: dict[str, float]
    best: pd.DataFrame
    results_path: Path
    heatmap_path: Path
    report_path: Path

    @property
    def frame(self) -> pd.DataFrame:
        return self.outcome.frame

    @property
    def interrupted(self) -> bool:
        return self.outcome.interrupted


def sweep_tasks(
    spec: SweepSpec,
    points: Sequence[Mapping[str, Any]],
    *,
    start: Any = None,
    end: Any = None,
    extra: Mapping[str, Any] | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> list[SweepTask]:
    """One task per point over [start, end] (default the spec's), all sharing one data load."""
    extra = dict(extra or {})
    first = start if start is not None else spec.start
    last = end if end is not None else spec.end
    load_start = earliest_load(spec, points, first)
    folder = "" if not cache else (None if cache_dir is None else str(cache_dir))
    tasks = []
    for params in points:
        key = point_key(params) if not extra else point_key({**extra, "params": params})
        tasks.append(
            SweepTask(
                key=key,
                config=spec.config(params, start, end),
                columns={**extra, **params},
                load_start=load_start,
                load_end=_day(last),
                cache_dir=folder,
            )
        )
    return tasks


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    cluster: str | None = None,
    progress: bool = False,
    retry_errors: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    runner: Any = None,
) -> SweepResult:
    """Run (or resume) `spec` into `out_dir`: results.parquet, heatmap.png, report.html."""
    from backtests.sweep_report import best_points, param_importance, write_sweep_report

    spec.check()
    out = Path(out_dir)
    grid = spec.typed_grid()
    points = spec.points()
    check_meta(
        out / META_FILE,
        spec.identity(),
        {"kind": "sweep", "grid": grid, "random": spec.random, "seed": spec.seed,
         "metric": spec.metric},
    )  # fmt: skip
    tasks = sweep_tasks(spec, points, cache=cache, cache_dir=cache_dir)
    names = sorted(grid)
    own = runner is None
    runner = open_runner(workers, cluster) if own else runner
    try:
        outcome = run_tasks(
            tasks,
            out / RESULTS_FILE,
            sort_columns=names,
            runner=runner,
            progress=progress,
            retry_errors=retry_errors,
        )
    finally:
        if own:
            runner.__exit__(None, None, None)
    report = write_sweep_report(
        out,
        outcome.frame,
        names,
        spec.metric,
        title=f"Sweep of {spec.strategy} on {spec.source}",
        summary=sweep_summary(spec, outcome),
    )
    return SweepResult(
        spec=spec,
        params=names,
        outcome=outcome,
        importance=param_importance(outcome.frame, names, spec.metric),
        best=best_points(outcome.frame, names, spec.metric),
        results_path=outcome.path,
        heatmap_path=out / HEATMAP_FILE,
        report_path=report,
    )


def sweep_summary(spec: SweepSpec, outcome: RunOutcome) -> dict[str, Any]:
    """The facts a report lists about a sweep (nothing run-dependent: reports are stable)."""
    grid = spec.typed_grid()
    summary: dict[str, Any] = {
        "strategy": spec.strategy,
        "source": spec.source,
        "symbols": ",".join(spec.symbols) if spec.symbols else "all",
        "period": f"{spec.start or 'start'} .. {spec.end or 'end'}",
        "grid": "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in grid.items()),
        "fixed parameters": json.dumps(spec.fixed_params(), sort_keys=True) or "{}",
        "points": f"{len(outcome.frame)} of {outcome.total}"
        + (f" (random sample, seed {spec.seed})" if spec.random else ""),
        "failed points": outcome.failed,
        "metric": spec.metric + (" (lower is better)" if lower_is_better(spec.metric) else ""),
    }
    if outcome.missing:
        summary["not run yet"] = outcome.missing
    return summary


def resume_hint(out_dir: str | Path) -> str:
    return (
        f"finished points are kept in {Path(out_dir) / RESULTS_FILE}; run the same command "
        "again to resume (only the missing points run)"
    )
