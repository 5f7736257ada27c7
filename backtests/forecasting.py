"""Forecasts at backtest speed: never fit twice, fit in parallel, fit only what is asked.

`FastForecaster` is a drop-in `Forecaster` for backtests. For each `forecast_many` call
(one per rebalance, one request per candidate) it

1. looks every request up in a `ForecastCache` (content-addressed, on disk);
2. fits the misses with `prophet_forecast` (fitter "fast": as batches), spread over a
   persistent pool of `workers` processes (``workers=1``: in this process, no pool);
3. stores the new forecasts and returns all of them in request order.

A forecast is the same number whichever way it was produced: every fit goes through
`strategies.forecast.prophet_forecast` with exactly the request's window, target and
settings, and Prophet's MAP fit is deterministic, so cached, parallel and serial runs make
bit-identical decisions (tests/test_forecast_cache.py checks it). Nothing is warm-started
from an earlier fit: that moves yhat by up to 0.45 %.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from backtests.forecast_cache import ForecastCache, default_cache_dir
from strategies.forecast import (
    ForecastRequest,
    forecast_requests,
    quiet_prophet_logs,
    with_fitter,
)

__all__ = ["FastForecaster", "ForecastCache", "default_cache_dir", "resolve_workers"]


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> Any: ...


def resolve_workers(workers: int | None) -> int:
    """None or 0: every core (`os.cpu_count()`); otherwise the number asked for."""
    if workers is None or int(workers) == 0:
        return max(1, os.cpu_count() or 1)
    if int(workers) < 0:
        raise ValueError(f"workers must be >= 0 (0 = all cores), got {workers}")
    return int(workers)


def _init_worker() -> None:
    """Pool initializer: quiet cmdstanpy and pay Prophet's ~1 s import before the first fit.

    prophet.plot logs an ERROR at import when plotly is missing; every worker would repeat
    it, so it is silenced for the import (forecasts never plot).
    """
    quiet_prophet_logs()
    plot_log = logging.getLogger("prophet.plot")
    level = plot_log.level
    plot_log.setLevel(logging.CRITICAL)
    try:
        import prophet  # noqa: F401
    except ImportError:
        pass  # fitter "fast" needs no prophet; a "prophet" fit reports the import itself
    finally:
        plot_log.setLevel(level)


def _timed_fits(requests: list[ForecastRequest]) -> tuple[list[float], float]:
    """Fits in a worker or in process: (yhats, seconds). Fitter "fast" fits them as one batch."""
    started = time.perf_counter()
    values = forecast_requests(requests)
    return values, time.perf_counter() - started


def _jobs(requests: list[ForecastRequest], workers: int) -> list[list[int]]:
    """Positions of `requests` per job: one Prophet fit per job; fast fits in up to `workers`
    contiguous batches (a fast fit's value does not depend on its batch)."""
    jobs = [[i] for i, r in enumerate(requests) if r.settings.fitter != "fast"]
    fast = [i for i, r in enumerate(requests) if r.settings.fitter == "fast"]
    size = -(-len(fast) // max(1, workers)) if fast else 0
    jobs += [fast[start : start + size] for start in range(0, len(fast), size or 1)]
    return jobs


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one (no fork of a threaded parent), else spawn.

    The fork server preloads this module (pandas, numpy), so workers start in a moment.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _shutdown(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


class FastForecaster:
    """Cached, parallel Prophet forecasts with the exact values of `prophet_forecast`.

    cache: where forecasts are looked up and stored; None disables caching.
    workers: processes fitting misses (None or 0 = `os.cpu_count()`, 1 = in this process).
    progress: anything with ``update(n)`` (a tqdm bar); advanced by one per fit.
    fitter: None keeps each request's own fitter; "prophet" or "fast" overrides it for
    every request (so the cache key and the fit agree).

    ``stats`` counts requests, cache hits, fits and the seconds spent fitting (summed over
    workers). The worker pool is created at the first miss and reused by later calls; end
    it with `close()` or by using the forecaster as a context manager (it is also ended at
    interpreter exit or when the forecaster is garbage-collected).
    """

    def __init__(
        self,
        cache: ForecastCache | None = None,
        workers: int | None = None,
        progress: ProgressBar | None = None,
        fitter: str | None = None,
    ) -> None:
        with_fitter([], fitter)  # checks the name now, not at the first forecast
        self.fitter = fitter
        self.cache = cache
        self.workers = resolve_workers(workers)
        self.progress = progress
        self.stats: dict[str, float] = {}
        self.reset_stats()
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:
        return (
            f"FastForecaster(cache={self.cache!r}, workers={self.workers}, fitter={self.fitter!r})"
        )

    def reset_stats(self) -> None:
        self.stats = {"requests": 0, "hits": 0, "fits": 0, "fit_seconds": 0.0}

    # lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FastForecaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut the worker pool down (a later call starts a new one)."""
        if self._finalizer is not None:
            self._finalizer()  # runs _shutdown once
        self._finalizer = None
        self._pool = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=_pool_context(), initializer=_init_worker
            )
            self._finalizer = weakref.finalize(self, _shutdown, self._pool)
        return self._pool

    # forecasting --------------------------------------------------------------------------

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[float]:
        """yhat for each request, in order: cache hits first, then the misses fitted."""
        requests = with_fitter(requests, self.fitter)
        results: list[float | None] = [None] * len(requests)
        misses: dict[str, list[int]] = {}  # key -> positions asking for it
        self.stats["requests"] += len(requests)
        for position, request in enumerate(requests):
            if self.cache is None:
                misses[str(position)] = [position]
                continue
            key = self.cache.key(request)
            if key in misses:  # the same forecast twice in one call: fit it once
                misses[key].append(position)
                self.stats["hits"] += 1
                continue
            value = self.cache.get_key(key)
            if value is None:
                misses[key] = [position]
            else:
                results[position] = value
                self.stats["hits"] += 1
        if misses:
            fitted = self._fit([requests[positions[0]] for positions in misses.values()])
            for (key, positions), value in zip(misses.items(), fitted, strict=True):
                if self.cache is not None:
                    self.cache.put_key(key, value, requests[positions[0]])
                for position in positions:
                    results[position] = value
        return [float(value) for value in results]  # type: ignore[arg-type]

    def _fit(self, requests: list[ForecastRequest]) -> list[float]:
        values: list[float] = [0.0] * len(requests)
        jobs = _jobs(requests, self.workers)
        if self.workers == 1:
            for job in jobs:
                fitted, seconds = _timed_fits([requests[i] for i in job])
                self._count_fits(job, fitted, seconds, values)
            return values
        pool = self._get_pool()
        futures: dict[Future, list[int]] = {
            pool.submit(_timed_fits, [requests[i] for i in job]): job for job in jobs
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    fitted, seconds = future.result()  # re-raises a worker's error
                    self._count_fits(futures[future], fitted, seconds, values)
        except BaseException:
            for future in pending:
                future.cancel()
            if getattr(pool, "_broken", False):
                self.close()  # a dead worker breaks the pool: start afresh next time
            raise
        return values

    def _count_fits(
        self, job: list[int], fitted: list[float], seconds: float, values: list[float]
    ) -> None:
        for position, value in zip(job, fitted, strict=True):
            values[position] = value
            self._count_fit(seconds / len(job))

    def _count_fit(self, seconds: float) -> None:
        self.stats["fits"] += 1
        self.stats["fit_seconds"] += seconds
        if self.progress is not None:
            self.progress.update(1)
