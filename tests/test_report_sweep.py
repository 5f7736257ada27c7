"""The sweep and walk-forward reports: interactive heatmap with every metric on hover, the
best point's forecast skill, in- vs out-of-sample per fold, same look as the backtest report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.forecast_skill import ForecastRecord, forecast_skill
from backtests.report_kit import CSS, SURVIVORSHIP_NOTE
from backtests.sweep_report import heatmap_chart, write_sweep_report

PARAMS = ["threshold", "top_n"]


def _results() -> pd.DataFrame:
    rows = []
    for i, (threshold, top_n) in enumerate(
        [(0.0, 5), (0.0, 10), (0.02, 5), (0.02, 10), (0.04, 5), (0.04, 10)]
    ):
        rows.append(
            {"threshold": threshold, "top_n": top_n, "sharpe": 0.5 + 0.1 * i - 0.3 * threshold,
             "total_return": 0.1 * i, "max_drawdown": -0.2 + 0.01 * i, "trades": 100 + i,
             "volatility": 0.15, "benchmark_sharpe": 0.7, "error": None, "synthetic": False,
             "seconds": 1.0}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _skill():
    rng = np.random.default_rng(1)
    idx = pd.bdate_range("2020-01-01", periods=200)
    closes = pd.DataFrame(
        100 * np.cumprod(1 + rng.normal(0, 0.02, (200, 5)), axis=0),
        index=idx,
        columns=list("ABCDE"),
    )
    records = [
        ForecastRecord(s, idx[p], idx[p] + pd.offsets.BDay(5), closes[s].iloc[p] * 1.01)
        for p in range(20, 190, 5)
        for s in closes.columns
    ]
    return forecast_skill(records, closes, {"horizon": 5, "momentum_lookback": 10})


def _figure_data(html: str, chart_id: str) -> dict:
    match = re.search(
        r'<div id="'
        + chart_id
        + r'" class="chart"[^>]*></div>\n<script>\(function\(\)\{var s=(.*?);'
        r"Plotly\.newPlot",
        html,
        flags=re.S,
    )
    assert match, chart_id
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_heatmap_hover_lists_every_metric_of_the_point() -> None:
    fig = heatmap_chart(_results(), PARAMS, "sharpe")
    trace = fig.data[0]
    assert list(trace.x) == ["0", "0.02", "0.04"] and list(trace.y) == ["5", "10"]
    cells = [text for row in trace.text for text in row]
    assert len(cells) == 6
    first = next(t for t in cells if "threshold = 0.02" in t and "top_n = 10" in t)
    for metric, value in [("sharpe", 0.5 + 0.3 - 0.006), ("total_return", 0.3), ("trades", 103)]:
        assert f"{metric}: {value:.4g}" in first, metric
    assert "benchmark_sharpe: 0.7" in first and "one point" in first


def test_sweep_report_is_interactive_offline_and_has_the_best_points_skill(
    tmp_path: Path,
) -> None:
    path = write_sweep_report(
        tmp_path, _results(), PARAMS, "sharpe", title="Sweep <test>", skill=_skill()
    )
    html = path.read_text(encoding="utf-8")
    assert CSS in html and SURVIVORSHIP_NOTE in html  # the same look and caveat
    assert re.search(r"<script[^>]*\bsrc=", html) is None and "<link" not in html
    assert html.count("<script>") == html.count("Plotly.newPlot(") + 1
    heat = _figure_data(html, "chart-heatmap")
    assert heat["data"][0]["type"] == "heatmap" and "sharpe:" in heat["data"][0]["text"][0][0]
    assert "<h2>Forecast skill</h2>" in html and "best point" in html
    assert 'id="best-ic"' in html and 'id="best-skill-bins"' in html
    assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    forecasts = pd.read_csv(tmp_path / "forecasts.csv")  # the best point's rows
    assert len(forecasts) == len(_skill().frame) and "realised_return" in forecasts
    again = write_sweep_report(
        tmp_path / "again", _results(), PARAMS, "sharpe", title="Sweep <test>", skill=_skill()
    )
    assert again.read_bytes() == path.read_bytes()


def test_walkforward_report_shows_in_vs_out_of_sample_per_fold(tmp_path: Path) -> None:
    folds = pd.DataFrame(
        {"fold": [0, 1, 2], "threshold": [0.0, 0.02, 0.0], "top_n": [5, 5, 10],
         "is_sharpe": [1.2, 0.9, 1.5], "oos_sharpe": [0.3, -0.1, 0.8],
         "degradation": [0.9, 1.0, 0.7], "error": [None, None, None]}
    )  # fmt: skip
    html = write_sweep_report(
        tmp_path, _results(), PARAMS, "sharpe", title="WF", walkforward=folds
    ).read_text(encoding="utf-8")
    data = _figure_data(html, "chart-walkforward")["data"]
    assert [t["name"] for t in data] == ["in-sample", "out-of-sample"]
    assert data[0]["y"] == [1.2, 0.9, 1.5] and data[1]["y"] == [0.3, -0.1, 0.8]
    assert data[0]["x"] == ["0", "1", "2"]
