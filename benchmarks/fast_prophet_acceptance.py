"""Acceptance of fitter "fast" against Prophet itself on real 252-bar windows.

    python benchmarks/fast_prophet_acceptance.py [--windows 1000] [--seed 0] [--self-check]

Draws windows of adjusted closes from the shared S&P 500 data (random symbol, random end
date, fixed seed), forecasts one session ahead with both fitters and prints one line:

    windows=N within_0.5pct=P% worst=W% (symbol end) median=M% speedup_fit_fast=X

``speedup_fit_fast`` is Prophet's total fitting time over fast's, both measured in this run
on the same windows (one process, serially). ``--self-check`` also fits Prophet on the same
windows with every price multiplied by (1 + 1e-12) and prints the same figures for Prophet
against itself: Stan's optimizer stops at a point that depends on rounding (the Laplace
prior makes the objective non-smooth), which bounds how closely any other implementation
can agree with it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from strategies.forecast import ProphetSettings, prophet_forecast  # noqa: E402

PARQUET = ROOT.parent / "shared" / "data" / "sp500_daily.parquet"
WINDOW = 252


def draw_windows(count: int, seed: int) -> list[tuple[str, pd.Series, pd.Timestamp]]:
    """`count` (symbol, window, target) drawn reproducibly from the shared data."""
    frame = pd.read_parquet(PARQUET, columns=["symbol", "date", "adjusted_close"])
    frame["date"] = pd.to_datetime(frame["date"])
    series = {
        symbol: group.set_index("date")["adjusted_close"].sort_index()
        for symbol, group in frame.groupby("symbol", sort=True)
    }
    symbols = sorted(s for s, values in series.items() if len(values) > WINDOW + 1)
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        symbol = symbols[int(rng.integers(len(symbols)))]
        values = series[symbol]
        end = int(rng.integers(WINDOW, len(values)))
        window = values.iloc[end - WINDOW : end]
        target = values.index[end]  # the next session: what a decision reads
        out.append((symbol, window, target))
    return out


def compare(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    return np.abs(other - reference) / np.abs(reference)


def summary(name: str, errors: np.ndarray, windows: list, extra: str = "") -> str:
    worst = int(np.argmax(errors))
    symbol, window, _ = windows[worst]
    return (
        f"{name}: windows={len(errors)} within_0.5pct={100 * np.mean(errors <= 0.005):.1f}% "
        f"worst={100 * errors[worst]:.2f}% ({symbol} {window.index[-1].date()}) "
        f"median={100 * np.median(errors):.3f}%{extra}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--self-check", action="store_true")
    args = parser.parse_args(argv)
    if not PARQUET.is_file():
        print(f"shared S&P 500 data not found at {PARQUET}", file=sys.stderr)
        return 2
    windows = draw_windows(args.windows, args.seed)
    prophet, fast = ProphetSettings(), ProphetSettings(fitter="fast")
    prophet_forecast(*windows[0][1:], prophet)  # pay Prophet's import outside the timing
    started = time.perf_counter()
    reference = np.array([prophet_forecast(w, t, prophet) for _, w, t in windows])
    prophet_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ours = np.array([prophet_forecast(w, t, fast) for _, w, t in windows])
    fast_seconds = time.perf_counter() - started
    speed = (
        f" prophet_fit_ms={1000 * prophet_seconds / len(windows):.1f}"
        f" fast_fit_ms={1000 * fast_seconds / len(windows):.1f}"
        f" speedup_fit_fast={prophet_seconds / fast_seconds:.1f}"
    )
    print(summary("fast vs prophet", compare(reference, ours), windows, speed))
    if args.self_check:
        nudged = np.array([prophet_forecast(w * (1 + 1e-12), t, prophet) for _, w, t in windows])
        label = "prophet vs prophet(prices x (1+1e-12))"
        print(summary(label, compare(reference, nudged), windows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
