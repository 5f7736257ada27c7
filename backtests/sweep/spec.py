"""What a sweep is (`SweepSpec`) and the tasks it becomes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.runner import BacktestConfig, backtest_warmup, warmup_start
from backtests.sweep.grid import grid_points, parse_grid, point_key
from backtests.sweep.worker import SweepTask
from backtests.sweep_common import iso_day, metric_names, scalar
from marketdata import parse_source
from strategies.registry import parse_params, strategy_class


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
            start=iso_day(start) if start is not None else self.start,
            end=iso_day(end) if end is not None else self.end,
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
            "fixed_params": {k: scalar(v) for k, v in config.pop("params").items()},
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
            warmup = backtest_warmup(spec.config(params))
        except Exception:  # an invalid point fails in its worker, with its error recorded
            continue
        reach = warmup_start(pd.Timestamp(start), warmup)
        first = min(first, reach)
    return iso_day(first)


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
                load_end=iso_day(last),
                cache_dir=folder,
            )
        )
    return tasks
