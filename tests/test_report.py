"""Tests for backtests.report: files, formatting, escaping, self-containment, determinism."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.metrics import compute_metrics
from backtests.report import LAST_ORDERS, print_metrics_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("equity.png", "drawdown.png", "trades.png")
NOTES = ["Synthetic demo data — not real prices", "<script>alert('x')</script> & co"]


def _inputs(n_orders: int = 6) -> dict:
    idx = pd.bdate_range("2023-01-02", periods=80)
    t = np.arange(len(idx))
    equity = pd.Series(10_000.0 * (1 + 0.002 * t + 0.03 * np.sin(t / 5)), index=idx)
    benchmark = pd.Series(10_000.0 * (1 + 0.001 * t), index=idx)
    order_dates = idx[np.linspace(0, len(idx) - 1, n_orders).astype(int)] if n_orders else []
    orders = pd.DataFrame(
        {
            "date": order_dates,
            "symbol": [f"S{i:03d}" for i in range(n_orders)],
            "side": ["buy" if i % 2 == 0 else "sell" for i in range(n_orders)],
            "quantity": [10] * n_orders,
            "price": [101.25] * n_orders,
            "commission": [1.0] * n_orders,
        }
    )
    metrics = compute_metrics(equity, trades=n_orders)
    metrics["benchmark"] = compute_metrics(benchmark, trades=0)
    return {
        "title": "Momentum <demo> & test",
        "equity": equity,
        "benchmark": benchmark,
        "orders": orders,
        "metrics": metrics,
        "notes": NOTES,
    }


def _outputs(d: Path) -> dict[str, bytes]:
    return {name: (d / name).read_bytes() for name in (*PLOTS, "report.html", "tearsheet.json")}


def test_writes_all_files(tmp_path: Path) -> None:
    path = write_report(tmp_path / "out", **_inputs())
    assert path == tmp_path / "out" / "report.html"
    for name in PLOTS:
        data = (tmp_path / "out" / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5_000, name  # something was actually drawn


def test_html_content(tmp_path: Path) -> None:
    inp = _inputs()
    html = write_report(tmp_path, **inp).read_text(encoding="utf-8")
    m, b = inp["metrics"], inp["metrics"]["benchmark"]
    assert "<h1>Momentum &lt;demo&gt; &amp; test</h1>" in html
    # Percentages and ratios formatted, strategy and benchmark side by side.
    for key in ("total_return", "cagr", "max_drawdown", "volatility"):
        assert f"{m[key] * 100:.2f}%" in html, key
        assert f"{b[key] * 100:.2f}%" in html, key
    assert f"{m['sharpe']:.2f}" in html and f"{b['sharpe']:.2f}" in html
    assert f"{m['final_value']:,.2f}" in html
    assert m["start"] in html and m["end"] in html
    # Notes escaped, never raw.
    assert "Synthetic demo data — not real prices" in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html
    assert "<script>alert" not in html
    # Orders table.
    assert "S000" in html and 'class="buy"' in html and 'class="sell"' in html
    assert "101.25" in html


def test_self_contained(tmp_path: Path) -> None:
    html = write_report(tmp_path, **_inputs()).read_text(encoding="utf-8")
    # Nothing is fetched: no external script, stylesheet or image; plotly.js inlined once.
    assert "<link" not in html
    assert re.search(r"<script[^>]*\bsrc=", html) is None
    assert html.count("<script>") == html.count("Plotly.newPlot(") + 1
    assert html.count("plotly.js v") >= 1 and html.count("<script>/**") <= 1
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    srcs = re.findall(r'src="([^"]*)"', markup)
    assert len(srcs) == 3
    for src, name in zip(srcs, PLOTS, strict=True):
        assert src.startswith("data:image/png;base64,")
        # The embedded image is exactly the PNG written next to the report.
        assert base64.b64decode(src.split(",", 1)[1]) == (tmp_path / name).read_bytes()


def test_every_section_and_chart_is_present(tmp_path: Path) -> None:
    html = write_report(tmp_path, **_inputs()).read_text(encoding="utf-8")
    for heading in (
        "Metrics", "Equity", "Drawdowns", "Monthly and yearly returns",
        "Rolling Sharpe and volatility", "Distribution of daily returns", "Trades", "Orders",
    ):  # fmt: skip
        assert f"<h2>{heading}</h2>" in html, heading
    charts = re.findall(r'<div id="([^"]+)" class="chart"', html)
    assert charts == [
        "chart-equity", "chart-drawdown", "chart-monthly", "chart-yearly", "chart-rolling",
        "chart-distribution", "chart-contribution",
    ]  # fmt: skip
    assert all(f'Plotly.newPlot("{c}"' in html for c in charts)
    for label in ("Calmar (empyrical)", "SQN", "Turnover (annual, one-way)", "Win rate"):
        assert label in html, label
    assert "Worst 3 drawdowns" in html or "Worst " in html


def test_byte_identical_rewrite(tmp_path: Path) -> None:
    inp = _inputs()
    write_report(tmp_path / "a", **inp)
    first = _outputs(tmp_path / "a")
    write_report(tmp_path / "a", **inp)  # overwrite in place
    write_report(tmp_path / "b", **inp)
    assert _outputs(tmp_path / "a") == first
    assert _outputs(tmp_path / "b") == first


def test_byte_identical_across_processes(tmp_path: Path) -> None:
    """Fresh interpreters with different hash seeds must produce the same bytes."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_report import _inputs
        from backtests.report import write_report
        write_report(Path(sys.argv[1]), **_inputs())
        """
    )
    root = str(Path(__file__).resolve().parents[1])
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root}
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / seed)], check=True, env=env, cwd=root
        )
    assert _outputs(tmp_path / "1") == _outputs(tmp_path / "2")


def test_empty_orders(tmp_path: Path) -> None:
    inp = _inputs(n_orders=0)
    html = write_report(tmp_path, **inp).read_text(encoding="utf-8")
    assert "No orders were placed." in html
    assert (tmp_path / "trades.png").read_bytes().startswith(PNG_MAGIC)


def test_only_last_50_orders_listed(tmp_path: Path) -> None:
    inp = _inputs(n_orders=LAST_ORDERS + 10)
    html = write_report(tmp_path, **inp).read_text(encoding="utf-8")
    assert f"Last {LAST_ORDERS} of {LAST_ORDERS + 10} orders" in html
    table = html[html.index('<table class="orders">') :]
    table = table[: table.index("</table>")]
    assert "S009" not in table and "S010" in table and "S059" in table


def test_many_orders_switch_to_monthly_bars(tmp_path: Path, monkeypatch) -> None:
    import backtests.report as report

    inp = _inputs(n_orders=400)

    def trades_png(limit: int | None) -> bytes:
        if limit is not None:
            monkeypatch.setattr(report, "MAX_MARKER_ORDERS", limit)
        out = tmp_path / str(limit)
        write_report(out, **inp)
        return (out / "trades.png").read_bytes()

    monthly = trades_png(None)  # 400 orders, above the default limit
    assert monthly.startswith(PNG_MAGIC)
    assert trades_png(400) != monthly  # not above the limit: per-order markers instead
    assert trades_png(399) == monthly  # one above it: the same monthly bars


def test_tz_aware_inputs_and_string_dates(tmp_path: Path) -> None:
    inp = _inputs()
    inp["equity"] = inp["equity"].tz_localize("UTC")
    inp["benchmark"] = inp["benchmark"].tz_localize("UTC")
    inp["orders"] = inp["orders"].assign(date=inp["orders"]["date"].dt.strftime("%Y-%m-%d"))
    html = write_report(tmp_path, **inp).read_text(encoding="utf-8")
    assert "2023-01-02" in html


def test_missing_benchmark_metrics_render_na(tmp_path: Path) -> None:
    inp = _inputs()
    del inp["metrics"]["benchmark"]
    html = write_report(tmp_path, **inp).read_text(encoding="utf-8")
    assert "n/a" in html


def test_orders_missing_columns_rejected(tmp_path: Path) -> None:
    inp = _inputs()
    inp["orders"] = inp["orders"].drop(columns=["price"])
    with pytest.raises(ValueError, match="price"):
        write_report(tmp_path, **inp)


def test_print_metrics_table() -> None:
    m = _inputs()["metrics"]
    text = print_metrics_table(m)
    lines = text.splitlines()
    assert lines[0].split() == ["Metric", "Strategy", "Benchmark"]
    assert len({len(line) for line in lines}) == 1  # fixed width
    row = next(line for line in lines if line.startswith("Total return"))
    assert row.split()[-2:] == [
        f"{m['total_return'] * 100:.2f}%",
        f"{m['benchmark']['total_return'] * 100:.2f}%",
    ]
    sharpe = next(line for line in lines if line.startswith("Sharpe"))
    assert sharpe.split()[-1] == f"{m['benchmark']['sharpe']:.2f}"


def test_a_two_session_curve_without_benchmark_or_orders_still_reports(tmp_path: Path) -> None:
    equity = pd.Series([100.0, 101.0], index=pd.bdate_range("2024-01-02", periods=2))
    html = write_report(
        tmp_path, title="tiny", equity=equity, benchmark=None, orders=None,
        metrics=compute_metrics(equity, trades=0), notes=[],
    ).read_text(encoding="utf-8")  # fmt: skip
    assert "No orders were placed." in html and "No drawdown." in html
    assert "<h2>Monthly and yearly returns</h2>" in html and "1.00%" in html
