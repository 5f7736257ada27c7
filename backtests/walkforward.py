"""Walk-forward validation: optimise in sample, score out of sample, fold after fold.

A sweep's best point is chosen on the very data it is scored on, so its metric is biased
upwards. Walk-forward validation measures by how much. The sessions between `start` and
`end` (NYSE calendar) are cut into rolling folds:

    fold k: in-sample  = sessions [k*step, k*step + train)
            out-of-sample = the `test` sessions right after

For each fold the whole grid is backtested on the in-sample window, the best point by the
metric is picked, and that one point is backtested on the out-of-sample window it never
saw (its warm-up reads earlier bars, as any backtest's does; decisions still only read the
past). ``degradation`` = in-sample metric - out-of-sample metric.

Outputs in DIR: ``results.parquet`` (every in-sample point, with its ``fold``),
``outofsample.parquet``, ``walkforward.csv`` (one row per fold), ``heatmap.png`` and
``report.html`` (in-sample heatmap averaged over folds, best points, the walk-forward
table). Both batches run on the same runner as a sweep and resume the same way.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.sweep import (
    META_FILE,
    RESULTS_FILE,
    RunOutcome,
    SweepSpec,
    check_meta,
    earliest_load,
    open_runner,
    run_tasks,
    sweep_summary,
    sweep_tasks,
)
from backtests.sweep_common import iso_day, scalar, summary_line
from backtests.sweep_report import best_points, write_sweep_report
from marketdata.calendar import nyse_sessions

OOS_FILE = "outofsample.parquet"
WALKFORWARD_FILE = "walkforward.csv"

__all__ = [
    "OOS_FILE",
    "WALKFORWARD_FILE",
    "Fold",
    "WalkForwardResult",
    "WalkForwardSpec",
    "fold_table",
    "fold_windows",
    "chosen_point",
    "run_walkforward",
    "summary_line",  # lives in backtests.sweep_common: the report prints it too
]


@dataclass(frozen=True)
class Fold:
    index: int
    is_start: str
    is_end: str
    oos_start: str
    oos_end: str


def fold_windows(
    start: Any, end: Any, train: int, test: int, step: int | None = None
) -> list[Fold]:
    """Rolling (in-sample, out-of-sample) windows of NYSE sessions in [start, end]."""
    train, test = int(train), int(test)
    step = int(step) if step else test
    if train < 2 or test < 2 or step < 1:
        raise ValueError(f"--train and --test need >= 2 sessions, --step >= 1 (got {train}, "
                         f"{test}, {step})")  # fmt: skip
    sessions = nyse_sessions(start, end)
    folds = []
    first = 0
    while first + train + test <= len(sessions):
        is_days = sessions[first : first + train]
        oos_days = sessions[first + train : first + train + test]
        folds.append(
            Fold(len(folds), iso_day(is_days[0]), iso_day(is_days[-1]), iso_day(oos_days[0]),
                 iso_day(oos_days[-1]))
        )  # fmt: skip
        first += step
    if not folds:
        raise ValueError(
            f"{start}..{end} has {len(sessions)} sessions: a walk-forward needs at least "
            f"--train + --test = {train + test}; widen --start/--end or shorten the windows"
        )
    return folds


@dataclass
class WalkForwardSpec:
    sweep: SweepSpec
    train: int = 252  # in-sample sessions per fold
    test: int = 63  # out-of-sample sessions per fold
    step: int | None = None  # sessions between fold starts (default: test)

    def folds(self) -> list[Fold]:
        if not self.sweep.start or not self.sweep.end:
            raise ValueError("a walk-forward needs --start and --end")
        return fold_windows(self.sweep.start, self.sweep.end, self.train, self.test, self.step)


@dataclass
class WalkForwardResult:
    spec: WalkForwardSpec
    params: list[str]
    folds: pd.DataFrame  # one row per fold (walkforward.csv)
    insample: RunOutcome
    outofsample: RunOutcome | None
    csv_path: Path
    report_path: Path

    @property
    def interrupted(self) -> bool:
        return self.insample.interrupted or bool(self.outofsample and self.outofsample.interrupted)


def _relocate(tasks, load_start: str | None, load_end: str | None):
    """Every task loads the same range (one cached load per worker for the whole run)."""
    return [dataclasses.replace(t, load_start=load_start, load_end=load_end) for t in tasks]


def fold_table(
    folds: list[Fold],
    params: list[str],
    metric: str,
    insample: pd.DataFrame,
    outofsample: pd.DataFrame | None,
) -> pd.DataFrame:
    """One row per fold: windows, the chosen point, in/out-of-sample metric, degradation."""
    rows = []
    for fold in folds:
        row: dict[str, Any] = dataclasses.asdict(fold)
        row["fold"] = row.pop("index")
        chosen = best_points(insample[insample["fold"] == fold.index], params, metric, n=1)
        error = None
        is_value = oos_value = math.nan
        if chosen.empty:
            error = "no in-sample point ran"
            row.update({p: None for p in params})
        else:
            # column by column: a row of mixed columns would turn top_n=2 into 2.0
            best = {p: scalar(chosen[p].iloc[0]) for p in params}
            row.update(best)
            is_value = float(chosen.iloc[0][metric])
            match = None
            if outofsample is not None and len(outofsample):
                hits = outofsample[outofsample["fold"] == fold.index]
                match = hits.iloc[0] if len(hits) else None
            if match is None:
                error = "out-of-sample not run yet"
            elif isinstance(match.get("error"), str):
                error = f"out-of-sample: {match['error']}"
            else:
                oos_value = float(match[metric])
        row[f"is_{metric}"] = is_value
        row[f"oos_{metric}"] = oos_value
        row["degradation"] = is_value - oos_value
        row["error"] = error
        rows.append(row)
    order = ["fold", "is_start", "is_end", "oos_start", "oos_end", *params,
             f"is_{metric}", f"oos_{metric}", "degradation", "error"]  # fmt: skip
    table = pd.DataFrame(rows, columns=order)
    for p in params:  # an integer parameter stays integer (a fold without a point: <NA>)
        if p in insample and pd.api.types.is_integer_dtype(insample[p]):
            table[p] = table[p].astype("Int64")
    return table


def chosen_point(table: pd.DataFrame, fold: int, params: list[str]) -> dict[str, Any]:
    """The point `fold_table` chose in `fold`, as plain values of their own type.

    Read column by column: a row of a frame mixing int and float columns reads top_n=2 as
    2.0, which would reach the out-of-sample backtest and outofsample.parquet as a float.
    """
    return {p: scalar(table[p].iloc[fold]) for p in params}


def run_walkforward(
    spec: WalkForwardSpec,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    cluster: str | None = None,
    progress: bool = False,
    retry_errors: bool = False,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    runner: Any = None,
) -> WalkForwardResult:
    """Run (or resume) a walk-forward validation into `out_dir`."""
    sweep = spec.sweep
    sweep.check()
    out = Path(out_dir)
    folds = spec.folds()
    grid = sweep.typed_grid()
    names = sorted(grid)
    points = sweep.points()
    identity = {
        "kind": "walkforward",
        "train": spec.train,
        "test": spec.test,
        "step": spec.step or spec.test,
        **sweep.identity(),
    }
    check_meta(
        out / META_FILE,
        identity,
        {"grid": grid, "random": sweep.random, "seed": sweep.seed, "metric": sweep.metric,
         "folds": [dataclasses.asdict(f) for f in folds]},
    )  # fmt: skip
    load_start = earliest_load(sweep, points, folds[0].is_start)
    load_end = folds[-1].oos_end
    insample_tasks = []
    for fold in folds:
        insample_tasks += sweep_tasks(
            sweep, points, start=fold.is_start, end=fold.is_end, extra={"fold": fold.index},
            cache=cache, cache_dir=cache_dir,
        )  # fmt: skip
    insample_tasks = _relocate(insample_tasks, load_start, load_end)
    sort_columns = ["fold", *names]
    own = runner is None
    runner = open_runner(workers, cluster) if own else runner
    oos: RunOutcome | None = None
    try:
        insample = run_tasks(
            insample_tasks, out / RESULTS_FILE, sort_columns=sort_columns, runner=runner,
            progress=progress, retry_errors=retry_errors, label="in-sample",
        )  # fmt: skip
        if not insample.interrupted:
            table = fold_table(folds, names, sweep.metric, insample.frame, None)
            oos_tasks = []
            for fold in folds:
                if table["error"].iloc[fold.index] == "no in-sample point ran":
                    continue
                chosen = chosen_point(table, fold.index, names)
                oos_tasks += sweep_tasks(
                    sweep, [chosen], start=fold.oos_start, end=fold.oos_end,
                    extra={"fold": fold.index}, cache=cache, cache_dir=cache_dir,
                )  # fmt: skip
            oos = run_tasks(
                _relocate(oos_tasks, load_start, load_end), out / OOS_FILE,
                sort_columns=sort_columns, runner=runner, progress=progress,
                retry_errors=retry_errors, label="out-of-sample",
            )  # fmt: skip
    finally:
        if own:
            runner.__exit__(None, None, None)
    table = fold_table(folds, names, sweep.metric, insample.frame, oos.frame if oos else None)
    csv_path = out / WALKFORWARD_FILE
    table.to_csv(csv_path, index=False)
    summary = sweep_summary(sweep, insample)
    summary["folds"] = (
        f"{len(folds)}: {spec.train} sessions in sample, {spec.test} out of sample, "
        f"every {spec.step or spec.test} sessions"
    )
    report = write_sweep_report(
        out,
        insample.frame,
        names,
        sweep.metric,
        title=f"Walk-forward of {sweep.strategy} on {sweep.source} (in-sample sweeps)",
        summary=summary,
        walkforward=table,
    )
    return WalkForwardResult(
        spec=spec,
        params=names,
        folds=table,
        insample=insample,
        outofsample=oos,
        csv_path=csv_path,
        report_path=report,
    )
