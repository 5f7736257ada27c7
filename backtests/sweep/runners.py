"""Where the points run: this process, local Dask worker processes, or an existing cluster."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from backtests.forecasting import resolve_workers
from backtests.sweep.worker import SweepTask, error_text, failed_row, run_point

WAIT_FOR_WORKERS = 60.0  # seconds an existing cluster may take to show its first worker


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


def _prepare_local_worker() -> None:
    """In each of our local worker processes, once, before any point.

    Ctrl-C is the client's to handle (the signal reaches the whole process group), and
    nothing below CRITICAL from dask reaches stderr: a point's failure is recorded in its
    row, and what else a local worker logs is the noise of its own shutdown (a heartbeat
    meeting the closed scheduler, with a traceback), which a user pressing Ctrl-C on a
    loaded machine used to see. Quieting at the start, not at the end, leaves no race.
    """
    with suppress(ValueError):  # not the main thread: nothing to do
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for logger in _dask_loggers():
        logger.setLevel(logging.CRITICAL)


@contextmanager
def _sigint_ignored_while_workers_start() -> Iterator[None]:
    """Local worker processes start with Ctrl-C ignored, inherited from here.

    An ignored signal is the one disposition a spawned process keeps (a blocked mask is
    reset by multiprocessing's spawn), so a Ctrl-C can never kill a worker half-started
    ("Nanny failed to start" and a traceback per worker). The price: a Ctrl-C pressed in
    the few seconds the workers take to start is ignored; the next one stops the sweep.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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


class DaskRunner:
    """Points on a Dask cluster: a LocalCluster of `workers` processes, or `address`.

    The cluster starts at the first non-empty batch and is closed on exit (an existing
    cluster is only disconnected from). Ctrl-C cancels every pending point.
    """

    def __init__(
        self,
        workers: int = 2,
        address: str | None = None,
        wait_for_workers: float = WAIT_FOR_WORKERS,
    ) -> None:
        self.workers = int(workers)
        self.address = address
        self.wait_for_workers = float(wait_for_workers)
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
                self.client.wait_for_workers(1, timeout=self.wait_for_workers)
            except TimeoutError:
                raise ValueError(
                    f"the Dask cluster at {self.address} has no workers "
                    f"(waited {self.wait_for_workers:.0f} s)"
                ) from None
            try:
                self.client.run(_probe)  # unpickling it imports tradeship on every worker
            except Exception as exc:
                raise ValueError(
                    f"workers of {self.address} cannot run tradeship sweeps ({error_text(exc)}):"
                    " install tradeship in their environment"
                ) from None
            return
        with _sigint_ignored_while_workers_start(), warnings.catch_warnings():
            # our scheduler serves no dashboard; that its HTTP port moved is not news
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            self.cluster = LocalCluster(
                n_workers=max(1, min(self.workers, batch)),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        self.client = Client(self.cluster, set_as_default=False)
        with suppress(Exception):
            self.client.run(_prepare_local_worker)

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
                    row = failed_row(task, exc)
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

        The scheduler and nannies live in this process: their shutdown messages are noise
        too, so dask logs here are quieted while closing (local workers are from the start).
        """
        self._cancel()
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        with _dask_logs_quieted():
            with suppress(Exception):
                if client is not None:
                    client.close()
            with suppress(Exception):
                if cluster is not None:
                    cluster.close()


def open_runner(workers: int | None = None, cluster: str | None = None):
    """Where the points run: an existing cluster, local processes, or this process."""
    if cluster:
        return DaskRunner(address=cluster)
    count = resolve_workers(workers)
    return SerialRunner() if count == 1 else DaskRunner(workers=count)
