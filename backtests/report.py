"""Self-contained HTML backtest report plus PNG plots.

The report is a single file (inline CSS, PNGs as base64 data URIs, no JS, no
external assets) so it can be mailed or archived as-is. Output is
deterministic: identical inputs give byte-identical PNGs and HTML, which keeps
report diffs and caching meaningful. Plots use ``matplotlib.figure.Figure`` with
the Agg canvas directly, so no global pyplot state or GUI backend is touched.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from backtests.metrics import drawdown_series

MAX_MARKER_ORDERS = 300
"""Above this many orders, per-order markers become unreadable: plot monthly bars."""

LAST_ORDERS = 50
"""Number of most recent orders listed in the HTML table."""

ORDER_COLUMNS = ["date", "symbol", "side", "quantity", "price", "commission"]

_STRATEGY_COLOR = "#1f77b4"
_BENCHMARK_COLOR = "#7f7f7f"
_BUY_COLOR = "#2ca02c"
_SELL_COLOR = "#d62728"

# Pinned so plots do not change with a user's matplotlibrc.
_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "path.simplify": True,
}
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


def _png_bytes(fig: Figure) -> bytes:
    """Render a figure to PNG without timestamp/version metadata (byte-stable)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _new_axes(title: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=_FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _money_axis(ax: Any) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:,.0f}"))


def _plot_equity(equity: pd.Series, benchmark: pd.Series | None) -> bytes:
    fig, ax = _new_axes("Equity: strategy vs benchmark")
    if not equity.empty:
        ax.plot(equity.index, equity.to_numpy(), color=_STRATEGY_COLOR, lw=1.4, label="Strategy")
    if benchmark is not None and not benchmark.empty:
        ax.plot(
            benchmark.index,
            benchmark.to_numpy(),
            color=_BENCHMARK_COLOR,
            lw=1.2,
            label="Benchmark (equal-weight buy & hold)",
        )
    ax.set_ylabel("Portfolio value")
    _money_axis(ax)
    if ax.lines:
        ax.legend(loc="upper left")
    return _png_bytes(fig)


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
    return _png_bytes(fig)


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
        return _png_bytes(fig)

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
    return _png_bytes(fig)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1040px;color:#222;padding:0 12px}
h1{font-size:22px;margin-bottom:8px}h2{font-size:17px;margin-top:28px;
border-bottom:1px solid #ddd;padding-bottom:4px}
.notes{background:#fff8e1;border:1px solid #f0c36d;border-left:5px solid #e0a800;
padding:10px 14px;margin:12px 0}
.notes ul{margin:0;padding-left:20px}.notes li{margin:3px 0;font-weight:600}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #e5e5e5}
th{background:#f5f5f5;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.buy{color:#2ca02c;font-weight:600}.sell{color:#d62728;font-weight:600}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.muted{color:#777}
"""


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


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr><th>{html.escape(label)}</th><td class="num">{html.escape(a)}</td>'
        f'<td class="num">{html.escape(b)}</td></tr>\n'
        for label, a, b in _metric_cells(metrics)
    )
    return (
        '<table class="metrics">\n<tr><th>Metric</th><th>Strategy</th>'
        f"<th>Benchmark</th></tr>\n{rows}</table>"
    )


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
            f"<td>{_fmt_date(rec.date)}</td>"
            f"<td>{html.escape(_text(rec.symbol))}</td>"
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


def write_report(
    out_dir: Path,
    *,
    title: str,
    equity: pd.Series,
    benchmark: pd.Series | None,
    orders: pd.DataFrame | None,
    metrics: Mapping[str, Any],
    notes: list[str],
) -> Path:
    """Write equity.png, drawdown.png, trades.png and a self-contained report.html.

    ``metrics`` is :func:`backtests.metrics.compute_metrics` output with the
    benchmark's under ``metrics["benchmark"]``. ``notes`` (caveats such as
    synthetic data or survivorship bias) are shown prominently at the top and
    HTML-escaped. Returns the path of report.html.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    eq = _naive(equity)
    bm = _naive(benchmark) if benchmark is not None else None
    od = _prepare_orders(orders)

    with matplotlib.rc_context(_RC):
        pngs = {
            "equity.png": _plot_equity(eq, bm),
            "drawdown.png": _plot_drawdown(eq, bm),
            "trades.png": _plot_trades(eq, od),
        }
    for name, data in pngs.items():
        (out_dir / name).write_bytes(data)

    notes_html = ""
    if notes:
        items = "".join(f"<li>{html.escape(str(n))}</li>\n" for n in notes)
        notes_html = f'<div class="notes"><ul>\n{items}</ul></div>\n'

    t = html.escape(title)
    doc = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{t}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{t}</h1>\n"
        f"{notes_html}"
        f"<h2>Metrics</h2>\n{_metrics_html(metrics)}\n"
        f"<h2>Equity</h2>\n{_img(pngs['equity.png'], 'Equity curve: strategy vs benchmark')}\n"
        f"<h2>Drawdown</h2>\n{_img(pngs['drawdown.png'], 'Drawdown: strategy vs benchmark')}\n"
        f"<h2>Orders</h2>\n{_img(pngs['trades.png'], 'Orders')}\n"
        f"{_orders_html(od)}\n"
        "</body>\n</html>\n"
    )
    path = out_dir / "report.html"
    path.write_text(doc, encoding="utf-8", newline="\n")
    return path
