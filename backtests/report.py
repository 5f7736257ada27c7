"""The backtest report: a self-contained, tearsheet-grade report.html plus PNG plots.

report.html opens offline as one file: inline CSS, plotly.js inlined once, interactive
charts (zoom, hover) for equity with every fill, drawdowns, monthly and yearly returns,
rolling Sharpe and volatility, the distribution of daily returns, exposure, contribution by
symbol and, for a strategy that forecasts, the forecast's skill against a momentum-only
baseline. The statistics come from `backtests.tearsheet` (empyrical), `backtests.trades`
(fills) and `backtests.forecast_skill`. equity.png, drawdown.png and trades.png stay for
notebooks and email. Output is deterministic: identical inputs give byte-identical files.
Plots use ``matplotlib.figure.Figure`` with the Agg canvas directly, so no global pyplot
state or GUI backend is touched.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from backtests import charts
from backtests.forecast_skill import Skill, write_forecasts_csv
from backtests.metrics import drawdown_series
from backtests.report_kit import RC, chart_div, page, png_bytes
from backtests.tearsheet import ROLLING_WINDOW, ReturnStats, return_stats
from backtests.trades import TradeReport, trade_report

MAX_MARKER_ORDERS = 300
"""Above this many orders, per-order markers become unreadable: plot monthly bars."""

LAST_ORDERS = 50
"""Number of most recent orders listed in the HTML table."""

ORDER_COLUMNS = ["date", "symbol", "side", "quantity", "price", "commission"]

_STRATEGY_COLOR = "#1f77b4"
_BENCHMARK_COLOR = "#7f7f7f"
_BUY_COLOR = "#2ca02c"
_SELL_COLOR = "#d62728"

_FIGSIZE = (10.0, 4.0)


# --------------------------------------------------------------------------- formatting


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _pct(v: Any) -> str:
    return f"{v * 100:.2f}%" if _is_num(v) else "n/a"


def _ratio(v: Any) -> str:
    return f"{v:.2f}" if _is_num(v) else "n/a"


def _money(v: Any) -> str:
    return f"{v:,.2f}" if _is_num(v) else "n/a"


def _int(v: Any) -> str:
    return f"{int(v):,d}" if _is_num(v) else "n/a"


def _text(v: Any) -> str:
    return "n/a" if v is None else str(v)


# (key, label, formatter): the single source of truth for both HTML and terminal tables.
METRIC_ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("total_return", "Total return", _pct),
    ("cagr", "CAGR", _pct),
    ("volatility", "Volatility (ann.)", _pct),
    ("sharpe", "Sharpe", _ratio),
    ("sortino", "Sortino", _ratio),
    ("max_drawdown", "Max drawdown", _pct),
    ("trades", "Trades", _int),
    ("final_value", "Final value", _money),
    ("start", "Start", _text),
    ("end", "End", _text),
    ("days", "Days", _int),
]


def _metric_cells(metrics: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(label, strategy, benchmark) strings; missing values render as 'n/a'."""
    bench = metrics.get("benchmark") or {}
    return [(label, fmt(metrics.get(k)), fmt(bench.get(k))) for k, label, fmt in METRIC_ROWS]


def print_metrics_table(metrics: Mapping[str, Any]) -> str:
    """Fixed-width strategy-vs-benchmark table for the terminal (returned, not printed)."""
    rows = [("Metric", "Strategy", "Benchmark"), *_metric_cells(metrics)]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c:>{w2}}" for a, b, c in rows]
    lines.insert(1, "-" * (w0 + w1 + w2 + 4))
    return "\n".join(lines)


# --------------------------------------------------------------------------- plotting


def _naive(s: pd.Series) -> pd.Series:
    """Float series on a sorted tz-naive DatetimeIndex, as matplotlib date axes expect."""
    s = s.astype("float64").dropna()
    idx = pd.DatetimeIndex(pd.to_datetime(s.index))
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    s.index = idx
    s = s[~s.index.duplicated(keep="last")]
    return s.sort_index()


def _new_axes(title: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=_FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _money_axis(ax: Any) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:,.0f}"))


def _plot_equity(equity: pd.Series, benchmark: pd.Series | None, label: str) -> bytes:
    fig, ax = _new_axes("Equity: strategy vs benchmark")
    if not equity.empty:
        ax.plot(equity.index, equity.to_numpy(), color=_STRATEGY_COLOR, lw=1.4, label="Strategy")
    if benchmark is not None and not benchmark.empty:
        ax.plot(
            benchmark.index,
            benchmark.to_numpy(),
            color=_BENCHMARK_COLOR,
            lw=1.2,
            label=label,
        )
    ax.set_ylabel("Portfolio value")
    _money_axis(ax)
    if ax.lines:
        ax.legend(loc="upper left")
    return png_bytes(fig)


def _plot_drawdown(equity: pd.Series, benchmark: pd.Series | None) -> bytes:
    fig, ax = _new_axes("Drawdown from running peak")
    series = [(benchmark, _BENCHMARK_COLOR, "Benchmark"), (equity, _STRATEGY_COLOR, "Strategy")]
    for s, color, label in series:
        if s is None or s.empty:
            continue
        dd = drawdown_series(s)
        ax.fill_between(dd.index, dd.to_numpy(), 0.0, color=color, alpha=0.3, lw=0)
        ax.plot(dd.index, dd.to_numpy(), color=color, lw=1.0, label=label)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylabel("Drawdown")
    if ax.lines:
        ax.legend(loc="lower left")
    return png_bytes(fig)


def _plot_trades(equity: pd.Series, orders: pd.DataFrame) -> bytes:
    """Equity with buy/sell markers, or monthly order counts when markers would be clutter."""
    n = len(orders)
    if n > MAX_MARKER_ORDERS:
        fig, ax = _new_axes(f"Orders per month ({n:,d} orders)")
        month = orders["date"].dt.to_period("M")
        counts = (
            pd.crosstab(month, orders["side"])
            .reindex(columns=["buy", "sell"], fill_value=0)
            .sort_index()
        )
        full = pd.period_range(counts.index.min(), counts.index.max(), freq="M")
        counts = counts.reindex(full, fill_value=0)
        x = counts.index.to_timestamp()
        width = 25.0  # days; bars start on the 1st so each sits inside its month
        ax.bar(
            x,
            counts["buy"].to_numpy(),
            width=width,
            align="edge",
            color=_BUY_COLOR,
            label="Buys",
        )
        ax.bar(
            x,
            counts["sell"].to_numpy(),
            width=width,
            align="edge",
            bottom=counts["buy"].to_numpy(),
            color=_SELL_COLOR,
            label="Sells",
        )
        ax.set_ylabel("Orders")
        ax.legend(loc="upper left")
        return png_bytes(fig)

    title = (
        f"Orders on the equity curve ({n:,d} orders)" if n else "Equity curve (no orders placed)"
    )
    fig, ax = _new_axes(title)
    if not equity.empty:
        ax.plot(equity.index, equity.to_numpy(), color=_STRATEGY_COLOR, lw=1.2, label="Strategy")
        _money_axis(ax)
    if n and not equity.empty:
        # Value at (or just before) each order date; orders before the curve get the first value.
        curve = equity[~equity.index.duplicated()].sort_index()
        for side, marker, color, label in (
            ("buy", "^", _BUY_COLOR, "Buy"),
            ("sell", "v", _SELL_COLOR, "Sell"),
        ):
            dates = orders.loc[orders["side"] == side, "date"]
            if dates.empty:
                continue
            ax.scatter(
                dates,
                curve.asof(pd.DatetimeIndex(dates)).fillna(curve.iloc[0]).to_numpy(),
                marker=marker,
                color=color,
                s=36,
                zorder=3,
                label=label,
                edgecolors="black",
                linewidths=0.4,
            )
    ax.set_ylabel("Portfolio value")
    if ax.lines or ax.collections:
        ax.legend(loc="upper left")
    return png_bytes(fig)


# --------------------------------------------------------------------------- HTML

BENCHMARK_LABEL = "Benchmark (equal-weight buy & hold)"
WORST_SYMBOLS = 10
"""Rows of the contribution table at each end (best and worst)."""

# Rows only the HTML tearsheet shows (the terminal table keeps METRIC_ROWS).
TEARSHEET_ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("calmar", "Calmar (empyrical)", _ratio),
    ("alpha", "Alpha vs benchmark (ann.)", _pct),
    ("beta", "Beta vs benchmark", _ratio),
    ("exposure", "Exposure (mean)", _pct),
    ("turnover", "Turnover (annual, one-way)", _ratio),
    ("total_costs", "Costs (commission + slippage)", _money),
    ("win_rate", "Win rate (round trips)", _pct),
    ("sqn", "SQN", _ratio),
    ("skew", "Skew (daily)", _ratio),
    ("kurtosis", "Excess kurtosis (daily)", _ratio),
    ("best_day", "Best day", _pct),
    ("worst_day", "Worst day", _pct),
]


def _fmt_qty(v: Any) -> str:
    if not _is_num(v):
        return html.escape(_text(v))
    v = float(v)
    return f"{v:,.0f}" if v.is_integer() else f"{v:,.4f}".rstrip("0").rstrip(".")


def _fmt_date(v: Any) -> str:
    if isinstance(v, pd.Timestamp):
        if pd.isna(v):
            return "n/a"
        has_time = v.hour or v.minute or v.second or v.microsecond
        return v.strftime("%Y-%m-%d %H:%M:%S") if has_time else v.strftime("%Y-%m-%d")
    return html.escape(_text(v))


def _metrics_html(metrics: Mapping[str, Any], rows: Sequence[tuple[str, str, Any]]) -> str:
    bench = metrics.get("benchmark") or {}
    cells = "".join(
        f'<tr><th class="l">{html.escape(label)}</th>'
        f'<td class="num">{html.escape(fmt(metrics.get(k)))}</td>'
        f'<td class="num">{html.escape(fmt(bench.get(k)))}</td></tr>\n'
        for k, label, fmt in rows
    )
    return (
        '<table class="metrics">\n<tr><th class="l">Metric</th><th>Strategy</th>'
        f"<th>Benchmark</th></tr>\n{cells}</table>"
    )


def _table(frame: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]], cls: str) -> str:
    """An escaped HTML table; columns without a format are text (left-aligned)."""
    head = "".join(
        f'<th class="{"" if c in formats else "l"}">{html.escape(str(c))}</th>'
        for c in frame.columns
    )
    body = []
    for rec in frame.itertuples(index=False):
        tds = []
        for col, value in zip(frame.columns, rec, strict=True):
            if col in formats:
                tds.append(f'<td class="num">{html.escape(formats[col](value))}</td>')
            else:
                tds.append(f'<td class="l">{_fmt_date(value)}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>\n")
    return f'<table class="{cls}">\n<tr>{head}</tr>\n{"".join(body)}</table>\n'


def _orders_html(orders: pd.DataFrame) -> str:
    if orders.empty:
        return '<p class="muted">No orders were placed.</p>'
    last = orders.tail(LAST_ORDERS)
    head = "".join(f"<th>{c}</th>" for c in ORDER_COLUMNS)
    body = []
    for rec in last.itertuples(index=False):
        side = str(rec.side)
        cls = side if side in ("buy", "sell") else ""
        body.append(
            "<tr>"
            f'<td class="l">{_fmt_date(rec.date)}</td>'
            f'<td class="l">{html.escape(_text(rec.symbol))}</td>'
            f'<td class="{cls}">{html.escape(side)}</td>'
            f'<td class="num">{_fmt_qty(rec.quantity)}</td>'
            f'<td class="num">{html.escape(_money(rec.price))}</td>'
            f'<td class="num">{html.escape(_money(rec.commission))}</td>'
            "</tr>\n"
        )
    caption = (
        f"Last {len(last)} of {len(orders):,d} orders."
        if len(orders) > len(last)
        else f"All {len(orders):,d} orders."
    )
    return (
        f'<p class="muted">{caption}</p>\n<table class="orders">\n<tr>{head}</tr>\n'
        f"{''.join(body)}</table>"
    )


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _prepare_orders(orders: pd.DataFrame | None) -> pd.DataFrame:
    """Normalise orders: required columns present, tz-naive datetimes, stably date-sorted."""
    if orders is None or orders.empty:
        cols = {c: pd.Series(dtype="object") for c in ORDER_COLUMNS}
        cols["date"] = pd.Series(dtype="datetime64[ns]")
        cols["quantity"] = pd.Series(dtype="float64")
        cols["price"] = pd.Series(dtype="float64")
        cols["commission"] = pd.Series(dtype="float64")
        return pd.DataFrame(cols)
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise ValueError(f"orders is missing columns: {missing}")
    o = orders[ORDER_COLUMNS].copy()
    dates = pd.to_datetime(o["date"])
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    o["date"] = dates
    o = o[o["date"].notna()]
    o["side"] = o["side"].astype(str).str.lower()
    return o.sort_values("date", kind="stable").reset_index(drop=True)


def tearsheet_figures(
    stats: ReturnStats, bench: ReturnStats | None, trading: TradeReport
) -> dict[str, dict[str, Any]]:
    """The extra metrics (TEARSHEET_ROWS) for the strategy and the benchmark, JSON-able."""

    def clean(d: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in d.items()
        }

    strategy = {
        **stats.figures,
        **trading.stats,
        "exposure": float(trading.exposure.mean()) if len(trading.exposure) else math.nan,
        "turnover": trading.turnover,
        "total_costs": trading.costs["total"],
        "commission": trading.costs["commission"],
        "slippage": trading.costs["slippage"],
    }
    out = {"strategy": clean(strategy)}
    if bench is not None:
        out["benchmark"] = clean(bench.figures)
    return out


def _returns_html(stats: ReturnStats, bench: ReturnStats | None, label: str) -> str:
    monthly = stats.monthly
    yearly = pd.DataFrame({"year": [str(y) for y in monthly.index], "strategy": monthly["Year"]})
    if bench is not None and len(bench.monthly):
        b = bench.monthly["Year"].reindex(monthly.index)
        yearly["benchmark"] = b.to_numpy()
        yearly["excess"] = yearly["strategy"] - yearly["benchmark"]
    fmt = {c: _pct for c in yearly.columns if c != "year"}
    parts = [
        chart_div(
            charts.monthly_heatmap(monthly),
            "chart-monthly",
            height=max(260, 28 * len(monthly) + 120),
        ),
        '<div class="grid2"><div>' + _table(yearly.reset_index(drop=True), fmt, "yearly"),
        "</div><div>",
        chart_div(
            charts.yearly_chart(
                monthly["Year"], bench.monthly["Year"] if bench is not None else None, label
            ),
            "chart-yearly",
            height=320,
        ),
        "</div></div>\n",
    ]
    return "".join(parts)


def _drawdowns_html(stats: ReturnStats) -> str:
    worst = stats.drawdowns.copy()
    if worst.empty:
        return '<p class="muted">No drawdown.</p>\n'
    worst.insert(0, "rank", range(1, len(worst) + 1))
    worst["recovery"] = [
        r if r is not None and pd.notna(r) else "not recovered" for r in worst["recovery"]
    ]
    fmt = {"rank": _int, "depth": _pct, "sessions": _int, "recovery_sessions": _int}
    return (
        f"<h3>Worst {len(worst)} drawdowns</h3>\n"
        '<p class="muted">start = last peak, recovery = first session back at that peak; '
        "sessions = peak to recovery (or to the end); recovery_sessions = trough to recovery.</p>\n"
        + _table(worst, fmt, "drawdowns")
    )


def _trades_html(trading: TradeReport) -> str:
    s = trading.stats
    rows = [
        ("Closed round trips", _int(s["closed_trades"])),
        ("Open at the end", _int(s["open_trades"])),
        ("Win rate", _pct(s["win_rate"])),
        ("Average win", _money(s["avg_win"])),
        ("Average loss", _money(s["avg_loss"])),
        ("Average trade return", _pct(s["avg_trade_return"])),
        ("Profit factor", _ratio(s["profit_factor"])),
        ("Average holding (sessions)", _ratio(s["avg_holding_sessions"])),
        ("SQN", _ratio(s["sqn"])),
        ("Turnover (annual, one-way)", _ratio(trading.turnover)),
        ("Commissions", _money(trading.costs["commission"])),
        ("Slippage", _money(trading.costs["slippage"])),
    ]
    stats_table = (
        '<table class="trade-stats">\n'
        + "".join(
            f'<tr><th class="l">{html.escape(a)}</th><td class="num">{html.escape(b)}</td></tr>\n'
            for a, b in rows
        )
        + "</table>\n"
    )
    contrib = trading.contribution
    parts = [
        '<p class="muted">A round trip is one symbol from flat to flat (Backtrader\'s trade); '
        "P&amp;L net of commissions; SQN = sqrt(n) &times; mean / std of closed trips' P&amp;L."
        "</p>\n",
        stats_table,
    ]
    if len(contrib):
        shown = pd.concat(
            [contrib.head(WORST_SYMBOLS), contrib.iloc[WORST_SYMBOLS:].tail(WORST_SYMBOLS)]
        )
        parts += [
            "<h3>Contribution by symbol</h3>\n",
            chart_div(
                charts.contribution_chart(contrib),
                "chart-contribution",
                height=max(320, 18 * min(len(contrib), 30) + 100),
            ),
            f'<p class="muted">{len(contrib)} symbols traded; the {WORST_SYMBOLS} best and '
            f"worst listed (share = of the sum of absolute P&amp;L).</p>\n",
            _table(shown, {"pnl": _money, "share": _pct}, "contribution"),
        ]
    return "".join(parts)


def forecast_skill_html(skill: Skill | None, prefix: str = "chart") -> str:
    """The forecast-skill section (also used by the sweep report for its best point)."""
    if skill is None:
        return ""
    p, m = skill.prophet, skill.momentum
    if p.empty or not int(p["forecasts"].iloc[-1]):
        return (
            '<h2>Forecast skill</h2>\n<p class="muted">No forecast had a realised return '
            "to compare with (the history ends before the forecasts' targets).</p>\n"
        )
    table = p[["period", "ic", "t_stat", "hit_rate"]].merge(
        m[["period", "ic", "t_stat", "hit_rate", "dates", "forecasts"]],
        on="period",
        suffixes=(" prophet", " momentum"),
    )
    fmt = {c: _ic for c in table.columns if c.startswith("ic ")}
    fmt.update({c: _ratio for c in table.columns if c.startswith("t_stat")})
    fmt.update({c: _pct for c in table.columns if c.startswith("hit_rate")})
    fmt.update({"dates": _int, "forecasts": _int})
    overall = skill.overall()
    sel = skill.selection
    head = (
        f"<p>Each forecast a decision read, lined up against the return that followed over "
        f"the same {skill.horizon} sessions: signal = forecast / close at the decision bar "
        f"&minus; 1. <b>IC</b> = Spearman rank correlation of signal and realised return "
        f"across one date's candidates, averaged per year and overall (t = mean / std "
        f"&times; &radic;dates). <b>Hit rate</b> = share of forecasts whose sign was right. "
        f"Baseline: <b>momentum alone</b> on the same candidates (trailing "
        f"{skill.lookback}-session return); its hit rate is the share of candidates that "
        f"rose, i.e. buying every top-N name.</p>\n"
        f"<p><b>Overall:</b> Prophet IC {_ic(overall['ic'])} (t {_ratio(overall['ic_t_stat'])})"
        f", hit rate {_pct(overall['hit_rate'])}; momentum IC {_ic(overall['momentum_ic'])} "
        f"(t {_ratio(overall['momentum_ic_t_stat'])}), hit rate "
        f"{_pct(overall['momentum_hit_rate'])}; {overall['forecasts']:,d} forecasts "
        f"(rows in forecasts.csv).</p>\n"
    )
    return (
        "<h2>Forecast skill</h2>\n"
        + head
        + _table(table, fmt, "skill")
        + '<div class="grid2"><div>'
        + chart_div(charts.ic_chart({"Prophet": p, "Momentum only": m}), f"{prefix}-ic", height=340)
        + "</div><div>"
        + chart_div(
            charts.skill_bins_chart(
                {"Prophet": skill.prophet_bins, "Momentum only": skill.momentum_bins}, skill.horizon
            ),
            f"{prefix}-skill-bins",
            height=340,
        )
        + "</div></div>\n<h3>What the threshold adds to momentum</h3>\n"
        + _table(sel, {"count": _int, "mean_realised_return": _pct}, "selection")
    )


def _ic(v: Any) -> str:
    return f"{v:.3f}" if _is_num(v) else "n/a"


def write_report(
    out_dir: Path,
    *,
    title: str,
    equity: pd.Series,
    benchmark: pd.Series | None,
    orders: pd.DataFrame | None,
    metrics: Mapping[str, Any],
    notes: list[str],
    history: pd.DataFrame | None = None,
    fill: str = "open",
    benchmark_label: str = BENCHMARK_LABEL,
    skill: Skill | None = None,
) -> Path:
    """Write report.html, equity.png, drawdown.png, trades.png and tearsheet.json.

    ``metrics`` is :func:`backtests.metrics.compute_metrics` output with the benchmark's
    under ``metrics["benchmark"]``. ``notes`` (caveats such as synthetic data or
    survivorship bias) are shown prominently at the top and HTML-escaped. ``history`` (the
    backtest's history frame) prices exposure, open positions and slippage; ``skill`` (see
    :func:`backtests.forecast_skill.forecast_skill`) adds the forecast-skill section and
    forecasts.csv. Returns the path of report.html.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    eq = _naive(equity)
    bm = _naive(benchmark) if benchmark is not None else None
    od = _prepare_orders(orders)

    with matplotlib.rc_context(RC):
        pngs = {
            "equity.png": _plot_equity(eq, bm, benchmark_label),
            "drawdown.png": _plot_drawdown(eq, bm),
            "trades.png": _plot_trades(eq, od),
        }
    for name, data in pngs.items():
        (out_dir / name).write_bytes(data)

    stats = return_stats(eq, bm)
    bench = return_stats(bm) if bm is not None and len(bm) > 1 else None
    trading = trade_report(od, eq, history, fill)
    extra = tearsheet_figures(stats, bench, trading)
    shown = {
        **metrics,
        **extra["strategy"],
        "benchmark": {**(metrics.get("benchmark") or {}), **extra.get("benchmark", {})},
    }
    if skill is not None:
        extra["forecast_skill"] = skill.overall()
        write_forecasts_csv(skill.frame, out_dir)
    (out_dir / "tearsheet.json").write_text(
        json.dumps(extra, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )

    drawdowns = {"Strategy": drawdown_series(eq)} if len(eq) else {}
    if bm is not None and len(bm):
        drawdowns["Benchmark"] = drawdown_series(bm)
    rolling = {"Strategy": stats.rolling}
    returns = {"Strategy": stats.returns}
    if bench is not None:
        rolling["Benchmark"] = bench.rolling
        returns["Benchmark"] = bench.returns
    end = eq.index[-1] if len(eq) else None
    body = [
        f"<h2>Metrics</h2>\n{_metrics_html(shown, METRIC_ROWS + TEARSHEET_ROWS)}\n"
        f'<p class="muted">Benchmark: {html.escape(benchmark_label)}. Calmar = empyrical\'s '
        "annual return / |max drawdown|; alpha, beta from daily returns (empyrical).</p>\n",
        "<h2>Equity</h2>\n",
        chart_div(charts.equity_chart(eq, bm, od, benchmark_label), "chart-equity", 460),
        "<h2>Drawdowns</h2>\n",
        chart_div(charts.drawdown_chart(drawdowns, stats.drawdowns, end), "chart-drawdown"),
        _drawdowns_html(stats),
        "<h2>Monthly and yearly returns</h2>\n",
        _returns_html(stats, bench, benchmark_label),
        "<h2>Rolling Sharpe and volatility</h2>\n",
        chart_div(charts.rolling_chart(rolling, ROLLING_WINDOW), "chart-rolling", 480),
        "<h2>Distribution of daily returns</h2>\n",
        chart_div(charts.distribution_chart(returns), "chart-distribution", 340),
    ]
    if history is not None:
        body += [
            "<h2>Exposure</h2>\n",
            chart_div(charts.exposure_chart(trading.exposure), "chart-exposure", 300),
        ]
    body += [
        "<h2>Trades</h2>\n",
        _trades_html(trading),
        forecast_skill_html(skill),
        "<h2>Orders</h2>\n",
        _orders_html(od),
        "\n<details><summary>Static images (the PNGs written beside this report)</summary>\n",
        _img(pngs["equity.png"], "Equity curve: strategy vs benchmark") + "\n",
        _img(pngs["drawdown.png"], "Drawdown: strategy vs benchmark") + "\n",
        _img(pngs["trades.png"], "Orders") + "\n</details>\n",
    ]
    path = out_dir / "report.html"
    path.write_text(page(title, "".join(body), notes=notes), encoding="utf-8", newline="\n")
    return path
