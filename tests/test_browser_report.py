"""report.html in a real browser: Debian's Chromium, driven by Playwright, network blocked.

Playwright cannot download its own browser here, so the session fixture finds a Chromium
(``/usr/bin/chromium``) or, running as root with apt available, installs Debian's package;
otherwise every test skips with the reason. Every request that is not a local file is
aborted: the report must render completely offline (plotly.js is inlined).

Run as a script to screenshot any report with the same browser settings:
``python tests/test_browser_report.py out/pm/report.html docs/report-screenshot.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 1600}
TIMEOUT_MS = 120_000  # a loaded 2-core machine renders slowly; this bounds a hang, not speed


def find_chromium() -> tuple[str | None, str]:
    """The Chromium binary, installing Debian's package when we may; else (None, reason)."""
    for candidate in (CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate, ""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "no Chromium found and not root with apt-get to install Debian's chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return None, f"could not install chromium ({' '.join(cmd)}): {done.stderr[-300:]}"
    return (CHROMIUM, "") if Path(CHROMIUM).is_file() else (None, "chromium did not install")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path, reason = find_chromium()
    if path is None:
        pytest.skip(reason)
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=path, args=ARGS, headless=True)
        yield instance
        instance.close()


def open_offline(browser: object, report: Path) -> tuple[object, list[str], list[str]]:
    """A page showing `report` with every non-file request aborted; (page, errors, blocked)."""
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    blocked: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r: object) -> None:
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(report.resolve().as_uri(), timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('div.chart')]"
        ".every(d => d.classList.contains('js-plotly-plot') && d.querySelector('svg.main-svg'))",
        timeout=TIMEOUT_MS,
    )
    return page, errors, blocked


def _report(out: Path) -> Path:
    """A full report: equity, benchmark, fills, the history, and forecast skill."""
    from backtests.forecast_skill import ForecastRecord, forecast_skill
    from backtests.metrics import compute_metrics
    from backtests.report import write_report

    rng = np.random.default_rng(2)
    idx = pd.bdate_range("2021-01-04", periods=400, name="date")
    symbols = [f"S{i}" for i in range(6)]
    closes = pd.DataFrame(
        100 * np.cumprod(1 + rng.normal(0.0004, 0.015, (len(idx), 6)), axis=0),
        index=idx, columns=symbols,
    )  # fmt: skip
    history = pd.concat({"open": closes, "close": closes}, axis=1, names=["field", "symbol"])
    orders, held = [], {}
    for i in range(20, len(idx) - 1, 15):
        symbol = symbols[(i // 15) % 6]
        side = "sell" if held.get(symbol) else "buy"
        orders.append((idx[i], symbol, side, 10.0, closes[symbol].iloc[i], 0.5))
        held[symbol] = side == "buy"
    orders = pd.DataFrame(
        orders, columns=["date", "symbol", "side", "quantity", "price", "commission"]
    )
    equity = 100_000 * (1 + closes.pct_change().fillna(0).mean(axis=1) * 1.3).cumprod()
    bench = 100_000 * (1 + closes.pct_change().fillna(0).mean(axis=1)).cumprod()
    metrics = compute_metrics(equity, trades=len(orders))
    metrics["benchmark"] = compute_metrics(bench, trades=6)
    records = [
        ForecastRecord(s, idx[p], idx[p] + pd.offsets.BDay(5),
                       closes[s].iloc[p] * (1 + rng.normal(0, 0.02)))
        for p in range(130, len(idx) - 5, 5) for s in symbols
    ]  # fmt: skip
    skill = forecast_skill(records, closes, {"horizon": 5, "momentum_lookback": 126})
    return write_report(
        out, title="Browser check", equity=equity, benchmark=bench, orders=orders,
        metrics=metrics, notes=["Synthetic data for the browser test"], history=history,
        skill=skill,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _report(tmp_path_factory.mktemp("browser"))


EXPECTED_CHARTS = [
    "chart-equity", "chart-drawdown", "chart-monthly", "chart-yearly", "chart-rolling",
    "chart-distribution", "chart-exposure", "chart-contribution", "chart-ic",
    "chart-skill-bins",
]  # fmt: skip


def test_every_chart_renders_offline_without_console_errors(browser, report: Path) -> None:
    page, errors, blocked = open_offline(browser, report)
    try:
        charts = page.eval_on_selector_all(
            "div.chart",
            "els => els.map(e => [e.id, e.querySelectorAll('svg.main-svg').length,"
            " e.getBoundingClientRect().height, e.querySelectorAll('.trace, .hm').length])",
        )
        assert [c[0] for c in charts] == EXPECTED_CHARTS
        for chart_id, svgs, height, traces in charts:
            assert svgs >= 1 and height > 200, chart_id
            assert traces >= 1, f"{chart_id} drew no data"
        assert errors == []
        assert blocked == []  # nothing even tried to reach the network
    finally:
        page.close()


def test_hovering_the_equity_curve_shows_values(browser, report: Path) -> None:
    page, errors, _ = open_offline(browser, report)
    try:
        box = page.locator("#chart-equity .nsewdrag").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        # x-unified hover: one label box listing every curve's value at that date.
        page.wait_for_selector("#chart-equity .hoverlayer .legend", timeout=TIMEOUT_MS)
        text = page.text_content("#chart-equity .hoverlayer .legend") or ""
        assert "Strategy" in text and "Benchmark" in text
        assert errors == []
    finally:
        page.close()


def test_screenshot_has_the_size_and_is_not_blank(browser, report: Path, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    page, _, _ = open_offline(browser, report)
    try:
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=False)
    finally:
        page.close()
    with Image.open(shot) as image:
        assert image.size == (VIEWPORT["width"], VIEWPORT["height"])
        gray = image.convert("L")
        assert ImageStat.Stat(gray).stddev[0] > 20  # text, tables and lines, not a blank page
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 200  # charts in colour, not one fill


def screenshot(report: Path, out: Path) -> None:
    """Screenshot `report` (top of the page) with the test's browser settings."""
    from playwright.sync_api import sync_playwright

    path, reason = find_chromium()
    if path is None:
        raise SystemExit(reason)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=path, args=ARGS, headless=True)
        page, errors, blocked = open_offline(instance, report)
        page.screenshot(path=str(out), full_page=False)
        instance.close()
    if errors or blocked:
        raise SystemExit(f"console errors {errors}, blocked requests {blocked}")


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
