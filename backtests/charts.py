"""Interactive plotly charts for the reports (zoom, hover); `report_kit.chart_div` embeds them.

Data goes in as plain lists (dates as YYYY-MM-DD, floats rounded to what a reader can see)
so the embedded JSON is small and byte-stable. Only SVG traces are used: WebGL ones would
need a GPU the headless browser test (and some mail clients' viewers) may not have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

STRATEGY = "#1f77b4"
BENCHMARK = "#7f7f7f"
BUY = "#2ca02c"
SELL = "#d62728"
BASELINE = "#ff7f0e"
MARKERS_SHOWN = 400
"""Above this many fills the markers start hidden (one legend click shows them)."""
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 80, "b": 40},
    "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
    "hovermode": "x unified",
}


def _dates(index: Sequence) -> list[str]:
    return [pd.Timestamp(d).strftime("%Y-%m-%d") for d in index]


def _vals(values: Sequence[float] | np.ndarray | pd.Series, digits: int = 6) -> list:
    out = []
    for v in np.asarray(values, dtype="float64"):
        out.append(float(f"{v:.{digits}g}") if math.isfinite(v) else None)
    return out


def _tick(value: object) -> str:
    """A parameter value as an axis label: floats without trailing zeros (0.0 -> 0)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _figure(title: str, **layout: object) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0, "y": 0.98, "yanchor": "top"}, **{**_LAYOUT, **layout}
    )
    return fig


def equity_chart(
    equity: pd.Series,
    benchmark: pd.Series | None,
    orders: pd.DataFrame,
    benchmark_label: str,
) -> go.Figure:
    """Equity vs benchmark; every fill a marker whose hover names symbol, side, size, price."""
    hidden = len(orders) > MARKERS_SHOWN
    how = "click buys/sells in the legend to show" if hidden else "hover a marker for"
    fig = _figure(f"Equity: strategy vs benchmark ({how} each fill; drag to zoom)")
    fig.add_scatter(
        x=_dates(equity.index),
        y=_vals(equity),
        name="Strategy",
        mode="lines",
        line={"color": STRATEGY, "width": 1.6},
    )
    if benchmark is not None and not benchmark.empty:
        fig.add_scatter(
            x=_dates(benchmark.index),
            y=_vals(benchmark),
            name=benchmark_label,
            mode="lines",
            line={"color": BENCHMARK, "width": 1.2},
        )
    if len(orders) and not equity.empty:
        curve = equity[~equity.index.duplicated()].sort_index()
        at = curve.asof(pd.DatetimeIndex(orders["date"])).fillna(curve.iloc[0]).to_numpy()
        for side, symbol, color in (("buy", "triangle-up", BUY), ("sell", "triangle-down", SELL)):
            mask = (orders["side"] == side).to_numpy()
            if not mask.any():
                continue
            sub = orders[mask]
            text = [
                f"{side} {q:g} {s} @ {p:,.2f}"
                for q, s, p in zip(sub["quantity"], sub["symbol"], sub["price"], strict=True)
            ]
            fig.add_scatter(
                x=_dates(sub["date"]),
                y=_vals(at[mask]),
                mode="markers",
                name=f"{side}s",
                marker={"symbol": symbol, "color": color, "size": 7, "opacity": 0.7},
                text=text,
                hovertemplate="%{text}<extra></extra>",
                visible="legendonly" if hidden else True,
            )
    fig.update_yaxes(title_text="Portfolio value", tickformat=",.0f")
    fig.update_xaxes(rangeslider={"visible": True, "thickness": 0.06})
    return fig


def drawdown_chart(
    drawdowns: dict[str, pd.Series], worst: pd.DataFrame, end: pd.Timestamp | None
) -> go.Figure:
    """Drawdown curves; the worst drawdowns shaded from peak to recovery."""
    fig = _figure("Drawdown from running peak (shaded: the worst drawdowns)")
    colors = {"Strategy": STRATEGY}
    for name, dd in drawdowns.items():
        fig.add_scatter(
            x=_dates(dd.index),
            y=_vals(dd, 5),
            name=name,
            mode="lines",
            fill="tozeroy" if name == "Strategy" else None,  # the benchmark as a line on top
            line={"color": colors.get(name, BENCHMARK), "width": 1},
        )
    for rank, row in enumerate(worst.itertuples(index=False), start=1):
        stop = row.recovery if row.recovery is not None and pd.notna(row.recovery) else end
        fig.add_vrect(
            x0=_dates([row.start])[0],
            x1=_dates([stop])[0],
            fillcolor=SELL,
            opacity=0.08,
            line_width=0,
            annotation_text=f"#{rank}",
            annotation_position="top left",
        )
    fig.update_yaxes(title_text="Drawdown", tickformat=".0%")
    return fig


def monthly_heatmap(table: pd.DataFrame) -> go.Figure:
    """Monthly returns, a row per year (green up, red down), the value on hover."""
    fig = _figure("Monthly returns", hovermode="closest")
    months = [c for c in table.columns if c != "Year"]
    z = table[months].to_numpy(dtype="float64")
    text = [[f"{v:.1%}" if math.isfinite(v) else "" for v in row] for row in z]
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.01
    fig.add_heatmap(
        z=[_vals(row, 5) for row in z],
        x=months,
        y=[str(y) for y in table.index],
        text=text,
        texttemplate="%{text}",
        colorscale="RdYlGn",
        zmid=0,
        zmin=-bound,
        zmax=bound,
        hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>",
        colorbar={"tickformat": ".0%"},
    )
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def yearly_chart(strategy: pd.Series, benchmark: pd.Series | None, label: str) -> go.Figure:
    fig = _figure("Yearly returns", hovermode="x")
    fig.add_bar(
        x=[str(y) for y in strategy.index],
        y=_vals(strategy, 5),
        name="Strategy",
        marker_color=STRATEGY,
    )
    if benchmark is not None and len(benchmark):
        fig.add_bar(
            x=[str(y) for y in benchmark.index],
            y=_vals(benchmark, 5),
            name=label,
            marker_color=BENCHMARK,
        )
    fig.update_yaxes(tickformat=".0%")
    return fig


def rolling_chart(rolling: dict[str, pd.DataFrame], window: int) -> go.Figure:
    """Rolling Sharpe (top) and volatility (bottom) over `window` sessions."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            f"Rolling Sharpe ({window} sessions)",
            f"Rolling volatility ({window} sessions, annualised)",
        ),
    )
    fig.update_layout(**_LAYOUT)
    for name, frame in rolling.items():
        color = STRATEGY if name == "Strategy" else BENCHMARK
        frame = frame.dropna()
        fig.add_scatter(
            x=_dates(frame.index),
            y=_vals(frame["sharpe"], 4),
            name=name,
            line={"color": color, "width": 1.2},
            row=1,
            col=1,
        )
        fig.add_scatter(
            x=_dates(frame.index),
            y=_vals(frame["volatility"], 4),
            name=name,
            line={"color": color, "width": 1.2},
            showlegend=False,
            row=2,
            col=1,
        )
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    return fig


def distribution_chart(returns: dict[str, pd.Series]) -> go.Figure:
    """Histogram of daily returns, strategy over benchmark."""
    fig = _figure("Distribution of daily returns", hovermode="closest", barmode="overlay")
    for name, r in returns.items():
        color = STRATEGY if name == "Strategy" else BENCHMARK
        fig.add_histogram(
            x=_vals(r, 5), name=name, nbinsx=80, opacity=0.6, marker_color=color, histnorm="percent"
        )
    fig.update_xaxes(tickformat=".1%", title_text="daily return")
    fig.update_yaxes(title_text="% of sessions")
    return fig


def exposure_chart(exposure: pd.Series) -> go.Figure:
    fig = _figure("Exposure: value of positions / portfolio value")
    fig.add_scatter(
        x=_dates(exposure.index),
        y=_vals(exposure, 4),
        name="Exposure",
        mode="lines",
        line={"color": STRATEGY, "width": 1},
        fill="tozeroy",
    )
    fig.update_yaxes(tickformat=".0%")
    return fig


def contribution_chart(contribution: pd.DataFrame, shown: int = 15) -> go.Figure:
    """The `shown` best and worst symbols by P&L."""
    top = contribution.head(shown)
    rest = contribution.iloc[shown:].tail(shown)
    part = pd.concat([top, rest]).drop_duplicates("symbol").sort_values("pnl")
    fig = _figure("Contribution by symbol (P&L, best and worst)", hovermode="closest")
    fig.add_bar(
        x=_vals(part["pnl"], 7),
        y=list(part["symbol"]),
        orientation="h",
        marker_color=[BUY if v >= 0 else SELL for v in part["pnl"]],
        hovertemplate="%{y}: %{x:,.0f}<extra></extra>",
        name="P&L",
    )
    fig.update_xaxes(tickformat=",.0f")
    return fig


def skill_bins_chart(bins: dict[str, pd.DataFrame], horizon: int) -> go.Figure:
    """Mean realised return per signal quintile: a skilful signal rises left to right."""
    fig = _figure(f"Realised {horizon}-session return by signal quintile", hovermode="x")
    colors = {"Prophet": STRATEGY, "Momentum only": BASELINE}
    for name, frame in bins.items():
        fig.add_bar(
            x=[f"Q{b}" for b in frame["bin"]],
            y=_vals(frame["realised_mean"], 5),
            name=name,
            marker_color=colors.get(name, BENCHMARK),
            customdata=np.stack(
                [_vals(frame["signal_mean"], 5), list(frame["count"])], axis=-1
            ).tolist(),
            hovertemplate=(
                f"{name} %{{x}}: realised %{{y:.3%}}, mean signal "
                "%{customdata[0]:.3%}, n=%{customdata[1]}<extra></extra>"
            ),
        )
    fig.update_yaxes(tickformat=".2%", title_text="mean realised return")
    fig.update_xaxes(title_text="signal quintile (Q1 lowest)")
    return fig


def ic_chart(tables: dict[str, pd.DataFrame]) -> go.Figure:
    """Mean information coefficient per year for each signal."""
    fig = _figure("Information coefficient (Spearman) per year", hovermode="x")
    colors = {"Prophet": STRATEGY, "Momentum only": BASELINE}
    for name, table in tables.items():
        years = table[table["period"] != "all"]
        fig.add_bar(
            x=list(years["period"]),
            y=_vals(years["ic"], 4),
            name=name,
            marker_color=colors.get(name, BENCHMARK),
            customdata=_vals(years["t_stat"], 3),
            hovertemplate=f"{name} %{{x}}: IC %{{y:.3f}}, t %{{customdata:.2f}}<extra></extra>",
        )
    return fig


def heatmap_chart(
    table: pd.DataFrame,
    hover: list[list[str]],
    metric: str,
    x: str,
    y: str | None,
    reverse: bool,
) -> go.Figure:
    """A sweep heatmap whose cells show every metric of their point(s) on hover."""
    fig = _figure(f"{metric} over {x}" + (f" and {y}" if y else ""), hovermode="closest")
    z = table.to_numpy(dtype="float64")
    fig.add_heatmap(
        z=[_vals(row, 5) for row in z],
        x=[_tick(c) for c in table.columns],
        y=[_tick(i) for i in table.index],
        text=hover,
        hovertemplate="%{text}<extra></extra>",
        colorscale="Viridis",
        reversescale=reverse,
        colorbar={"title": {"text": metric}},
        texttemplate="%{z:.3g}",
    )
    fig.update_xaxes(title_text=x, type="category")
    fig.update_yaxes(title_text=y or "", type="category")
    return fig


def walkforward_chart(folds: pd.DataFrame, metric: str) -> go.Figure:
    """In-sample vs out-of-sample `metric` per fold."""
    fig = _figure(f"Walk-forward: in-sample vs out-of-sample {metric} per fold", hovermode="x")
    labels = [str(f) for f in folds["fold"]] if "fold" in folds else [str(i) for i in folds.index]
    for column, name, color in (
        (f"is_{metric}", "in-sample", BENCHMARK),
        (f"oos_{metric}", "out-of-sample", STRATEGY),
    ):
        if column in folds:
            fig.add_bar(
                x=labels,
                y=_vals(pd.to_numeric(folds[column], errors="coerce"), 5),
                name=name,
                marker_color=color,
            )
    fig.update_xaxes(title_text="fold", type="category")
    return fig
