"""What a sweep found: which parameters matter, a heatmap, the best points, walk-forward.

**Importance** of a swept parameter p for a metric m is the share of m's variance across
the points that p's groups explain (the correlation ratio eta^2 of a one-way ANOVA):

    importance(p) = sum_v n_v (mean_v - mean)^2 / sum_i (m_i - mean)^2

where v runs over p's values, n_v and mean_v are the number and mean metric of the points
with p = v. It is 0 when p's values all give the same mean and 1 when p alone explains
every difference; on a full grid the importances of independent effects add up to at most
1 (the rest is interactions). Points that failed are left out. The heatmap shows the two
most important parameters (ties broken by name); each cell is the mean metric over the
other parameters (and walk-forward folds) at that pair of values.

``report.html`` is self-contained (inline CSS, base64 PNGs) and deterministic: the same
results give the same bytes (run times and run ids are not shown; PNGs carry no metadata).
Figures use ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no GUI backend.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from backtests import charts
from backtests.forecast_skill import (
    RecordingForecaster,
    Skill,
    forecast_skill,
    write_forecasts_csv,
)
from backtests.report import forecast_skill_html
from backtests.report_kit import RC, chart_div, data_note, page, png_bytes
from backtests.runner import run_backtest
from backtests.sweep_common import lower_is_better, metric_names, summary_line
from backtests.sweep_common import point_forecaster as _forecaster
from backtests.sweep_common import scalar as _scalar

if TYPE_CHECKING:
    from backtests.sweep import SweepSpec

HEATMAP_FILE = "heatmap.png"
REPORT_FILE = "report.html"
BEST_ROWS = 10
SHOWN_ERRORS = 20
CONTEXT_METRICS = ("total_return", "sharpe", "max_drawdown", "trades")


def _ok(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows that ran and have a finite `metric`."""
    if frame.empty or metric not in frame.columns:
        return frame.iloc[0:0]
    values = pd.to_numeric(frame[metric], errors="coerce")
    keep = values.notna() & np.isfinite(values.astype("float64"))
    if "error" in frame.columns:
        keep &= frame["error"].isna()
    out = frame.loc[keep].copy()
    out[metric] = values[keep].astype("float64")
    return out


def param_importance(frame: pd.DataFrame, params: Sequence[str], metric: str) -> dict[str, float]:
    """eta^2 of `metric` for each parameter (0 for a parameter with one value), by name."""
    ok = _ok(frame, metric)
    out: dict[str, float] = {}
    if ok.empty:
        return {p: 0.0 for p in params}
    values = ok[metric]
    total = float(((values - values.mean()) ** 2).sum())
    for param in params:
        if total <= 0 or ok[param].nunique() < 2:
            out[param] = 0.0
            continue
        groups = ok.groupby(param, sort=True)[metric]
        between = float((groups.count() * (groups.mean() - values.mean()) ** 2).sum())
        out[param] = min(1.0, max(0.0, between / total))
    return out


def heatmap_params(importance: Mapping[str, float], frame: pd.DataFrame) -> list[str]:
    """The two most important parameters that vary (ties by name); fewer if fewer vary."""
    varying = [p for p in importance if p in frame.columns and frame[p].nunique() > 1]
    return sorted(varying, key=lambda p: (-round(importance[p], 12), p))[:2]


def best_points(
    frame: pd.DataFrame, params: Sequence[str], metric: str, n: int = BEST_ROWS
) -> pd.DataFrame:
    """The `n` best points by `metric` (ties in parameter order), with context metrics."""
    ok = _ok(frame, metric)
    columns = [c for c in ["fold", *params] if c in ok.columns]
    extra = [m for m in CONTEXT_METRICS if m != metric and m in ok.columns]
    bench = f"benchmark_{metric}" if not metric.startswith("benchmark_") else None
    if bench and bench in ok.columns:
        extra.append(bench)
    if ok.empty:
        return pd.DataFrame(columns=["rank", *columns, metric, *extra])
    ordered = ok.sort_values(
        [metric, *columns], ascending=[lower_is_better(metric)] + [True] * len(columns),
        kind="mergesort",
    )  # fmt: skip
    best = ordered.head(n)[[*columns, metric, *extra]].reset_index(drop=True)
    best.insert(0, "rank", range(1, len(best) + 1))
    return best


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _heatmap_axes(
    frame: pd.DataFrame, params: Sequence[str], metric: str
) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """The rows that ran, each parameter's importance, and the heatmap's (x, y) parameters."""
    ok = _ok(frame, metric)
    importance = param_importance(frame, params, metric)
    return ok, importance, heatmap_params(importance, ok) if not ok.empty else []


def _cell_table(ok: pd.DataFrame, x: str, y: str | None, column: str) -> pd.DataFrame:
    """Mean of `column` per heatmap cell (y rows, x columns; one unnamed row without y)."""
    if y is None:
        table = ok.groupby(x, sort=True)[column].mean().to_frame().T
        table.index = [""]
        return table
    return ok.pivot_table(index=y, columns=x, values=column, aggfunc="mean", sort=True)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a results frame (strategy first, then benchmark)."""
    return [m for m in metric_names() if m in frame.columns]


def heatmap_chart(frame: pd.DataFrame, params: Sequence[str], metric: str) -> Any | None:
    """The interactive heatmap: hovering a cell lists every metric of its point(s)."""
    ok, importance, axes = _heatmap_axes(frame, params, metric)
    if not axes:
        return None
    x, y = axes[0], (axes[1] if len(axes) > 1 else None)
    table = _cell_table(ok, x, y, metric)
    metrics = [m for m in metric_columns(ok) if pd.api.types.is_numeric_dtype(ok[m])]
    means = {m: _cell_table(ok.assign(**{m: pd.to_numeric(ok[m])}), x, y, m) for m in metrics}
    sizes = ok.groupby([y, x]).size() if y is not None else ok.groupby(x).size()
    hover = []
    for row in table.index:
        line = []
        for col in table.columns:
            n = int(sizes.get((row, col) if y is not None else col, 0))
            head = f"{x} = {_label(col)}" + (f", {y} = {_label(row)}" if y else "")
            items = [head, f"points: {n} (mean over the others)" if n > 1 else "one point"]
            for m in metrics:
                value = means[m].at[row, col]
                items.append(f"{m}: {_cell(float(value))}")
            line.append("<br>".join(html.escape(i) for i in items))
        hover.append(line)
    return charts.heatmap_chart(table, hover, metric, x, y, lower_is_better(metric))


def heatmap_png(frame: pd.DataFrame, params: Sequence[str], metric: str) -> bytes:
    """The metric's mean over the other parameters, on the two most important ones."""
    ok, importance, axes = _heatmap_axes(frame, params, metric)
    with matplotlib.rc_context({**RC, "axes.grid": False}):
        fig = Figure(figsize=(7.5, 5.5), layout="constrained")
        ax = fig.add_subplot()
        if not axes:
            message = "no successful points to plot" if ok.empty else "no swept parameter varies"
            ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return png_bytes(fig)
        x = axes[0]
        y = axes[1] if len(axes) > 1 else None
        table = _cell_table(ok, x, y, metric)
        data = np.ma.masked_invalid(table.to_numpy(dtype="float64"))
        cmap = matplotlib.colormaps["viridis_r" if lower_is_better(metric) else "viridis"]
        cmap = cmap.with_extremes(bad="#dddddd")
        image = ax.imshow(data, cmap=cmap, aspect="auto", origin="lower")
        ax.set_xticks(range(table.shape[1]), [_label(v) for v in table.columns])
        ax.set_yticks(range(table.shape[0]), [_label(v) for v in table.index])
        ax.set_xlabel(f"{x} (importance {importance[x]:.2f})")
        if y is not None:
            ax.set_ylabel(f"{y} (importance {importance[y]:.2f})")
        others = [p for p in params if p not in axes]
        over = ", ".join(others + (["folds"] if "fold" in ok.columns else []))
        ax.set_title(f"{metric}: mean over {over}" if over else metric)
        fig.colorbar(image, ax=ax, label=metric)
        if data.size <= 400 and data.count():
            lo, hi = float(data.min()), float(data.max())
            middle = (lo + hi) / 2
            for (row, col), value in np.ndenumerate(table.to_numpy(dtype="float64")):
                if math.isfinite(value):
                    dark = (value < middle) != lower_is_better(metric)
                    ax.text(
                        col, row, f"{value:.3g}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black",
                    )  # fmt: skip
        return png_bytes(fig)


# --------------------------------------------------------------------------- HTML


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return f"{int(value):d}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


def _shown(column: Any, value: Any) -> str:
    """A cell as text; a missing error is blank rather than n/a."""
    if column == "error" and (value is None or (isinstance(value, float) and math.isnan(value))):
        return ""
    return _cell(value)


def html_table(frame: pd.DataFrame, left: Sequence[str] = ()) -> str:
    """A plain HTML table of `frame` (escaped; numbers to 4 significant digits)."""
    head = "".join(
        f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in frame.columns
    )
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="{"l" if c in left else ""}">{html.escape(_shown(c, v))}</td>'
            for c, v in zip(frame.columns, row, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(body) + "\n</table>\n"


def text_table(frame: pd.DataFrame) -> str:
    """The same table for a terminal."""
    if frame.empty:
        return "(none)"
    shown = frame.copy()
    for column in shown.columns:
        shown[column] = [_shown(column, v) for v in frame[column]]
    return shown.to_string(index=False)


def _notes(frame: pd.DataFrame) -> list[str]:
    notes = [
        "A sweep's best point is chosen on the same data it is scored on: expect it to do "
        "worse out of sample (tradeship walkforward measures by how much)."
    ]
    if "synthetic" in frame.columns and frame["synthetic"].fillna(False).astype(bool).any():
        notes.insert(0, data_note(synthetic=True))
    elif len(frame):
        notes.insert(0, data_note(synthetic=False))
    return notes


def walkforward_html(folds: pd.DataFrame, metric: str) -> str:
    """The walk-forward section: in- vs out-of-sample per fold (chart), each fold, averages."""
    left = [c for c in folds.columns if c in ("params", "error")]
    return (
        "<h2>Walk-forward validation</h2>\n"
        "<p>Each fold optimises the grid on its in-sample window (best "
        f"{html.escape(metric)}), then backtests that point on the following out-of-sample "
        "window it never saw. <b>degradation</b> = in-sample minus out-of-sample "
        f"{html.escape(metric)}: how much of the sweep's best result was fitted to noise.</p>\n"
        + chart_div(charts.walkforward_chart(folds, metric), "chart-walkforward", 360)
        + html_table(folds, left=left)
        + f"<p>{html.escape(summary_line(folds, metric))}</p>\n"
    )


def best_point_skill(
    spec: SweepSpec, best: pd.DataFrame, params: Sequence[str], cache_dir: str | None = None
) -> Skill | None:
    """Re-run the best point with its forecasts recorded (they come from the forecast cache,
    so nothing is refitted) and measure their skill; None when nothing ran or no forecast.
    """
    if best.empty:
        return None
    point = {p: _scalar(best.iloc[0][p]) for p in params if p in best.columns}
    recorder = RecordingForecaster(_forecaster(cache_dir))
    result = run_backtest(spec.config(point), forecaster=recorder)
    return forecast_skill(recorder.records, result.history["close"], result.metrics["params"])


def write_sweep_report(
    out_dir: str | Path,
    frame: pd.DataFrame,
    params: Sequence[str],
    metric: str,
    *,
    title: str,
    summary: Mapping[str, Any] | None = None,
    walkforward: pd.DataFrame | None = None,
    skill: Skill | None = None,
) -> Path:
    """Write heatmap.png and report.html for a sweep's results; returns report.html.

    ``skill`` (from :func:`best_point_skill`) adds the best point's forecast-skill section
    and its forecasts.csv.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = heatmap_png(frame, params, metric)
    (out / HEATMAP_FILE).write_bytes(png)
    importance = param_importance(frame, params, metric)
    ranking = sorted(importance, key=lambda p: (-round(importance[p], 12), p))
    importance_frame = pd.DataFrame(
        {"parameter": ranking, "importance (eta^2)": [importance[p] for p in ranking]}
    )
    best = best_points(frame, params, metric)
    parts = []
    if summary:
        rows = pd.DataFrame({"": list(summary), "value": [str(v) for v in summary.values()]})
        parts.append("<h2>Sweep</h2>\n" + html_table(rows, left=["", "value"]))
    parts.append(
        "<h2>Which parameters matter</h2>\n"
        f"<p>Share of the variance of {html.escape(metric)} across the points explained by "
        "each parameter's group means (eta&sup2;; 0 = no effect, 1 = explains everything)."
        "</p>\n" + html_table(importance_frame, left=["parameter"])
    )
    chart = heatmap_chart(frame, params, metric)
    data = base64.b64encode(png).decode("ascii")
    parts.append(
        "<h2>Heatmap</h2>\n"
        + (
            '<p class="small">Hover a cell for every metric of its point(s).</p>\n'
            + chart_div(chart, "chart-heatmap", 480)
            if chart is not None
            else ""
        )
        + f"<details{'' if chart is not None else ' open'}><summary>Static heatmap (PNG)"
        f'</summary>\n<img alt="{html.escape(metric)} heatmap" '
        f'src="data:image/png;base64,{data}">\n</details>\n'
    )
    parts.append(
        f"<h2>Best points by {html.escape(metric)}"
        + (" (lowest first)" if lower_is_better(metric) else "")
        + "</h2>\n"
        + html_table(best)
    )
    if skill is not None:
        write_forecasts_csv(skill.frame, out)  # the best point's forecasts
        parts.append(
            '<p class="small">The forecast-skill section below is the best point\'s.</p>\n'
            + forecast_skill_html(skill, prefix="best")
        )
    if walkforward is not None:
        parts.append(walkforward_html(walkforward, metric))
    if len(frame) and "error" in frame.columns:
        failed = frame.loc[frame["error"].notna(), [c for c in ["fold", *params] if c in frame]]
        if len(failed):
            failed = failed.assign(error=frame.loc[failed.index, "error"]).head(SHOWN_ERRORS)
            count = int(frame["error"].notna().sum())
            parts.append(
                f'<h2 class="bad">Failed points ({count})</h2>\n'
                + html_table(failed.reset_index(drop=True), left=["error"])
            )
    path = out / REPORT_FILE
    path.write_text(
        page(title, "".join(parts), notes=_notes(frame)), encoding="utf-8", newline="\n"
    )
    return path
