"""A sweep from start to finish: run (or resume) the points, then the report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.sweep.runners import open_runner
from backtests.sweep.spec import SweepSpec, sweep_tasks
from backtests.sweep.store import META_FILE, RESULTS_FILE, RunOutcome, check_meta, run_tasks
from backtests.sweep.worker import error_text
from backtests.sweep_common import lower_is_better
from backtests.sweep_report import (
    best_point_skill,
    best_points,
    param_importance,
    write_sweep_report,
)

HEATMAP_FILE = "heatmap.png"
REPORT_FILE = "report.html"


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
    summary = sweep_summary(spec, outcome)
    skill = None
    if not outcome.interrupted and tasks:
        try:  # the best point's forecasts, replayed from the forecast cache
            best = best_points(outcome.frame, names, spec.metric, n=1)
            skill = best_point_skill(spec, best, names, cache_dir=tasks[0].cache_dir)
        except Exception as exc:  # the report is still written, saying why
            summary["forecast skill"] = f"not measured: {error_text(exc)}"
    report = write_sweep_report(
        out,
        outcome.frame,
        names,
        spec.metric,
        title=f"Sweep of {spec.strategy} on {spec.source}",
        summary=summary,
        skill=skill,
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
