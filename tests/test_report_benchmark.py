"""--benchmark: equal-weight buy-and-hold of the universe (default) or one symbol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.benchmark import (
    EQUAL_WEIGHT,
    benchmark_equity,
    benchmark_label,
    equal_weight_equity,
    parse_benchmark,
)
from marketdata import load
from strategies.history import to_history
from tradeship.cli import main

DEMO = ["SYN000", "SYN001", "SYN002"]


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return to_history(load("demo", DEMO, "2024-01-02", "2024-03-28").bars)


def test_parse_and_label() -> None:
    assert parse_benchmark(None) == parse_benchmark(" Equal-Weight ") == EQUAL_WEIGHT
    assert parse_benchmark("spy") == "SPY"
    assert benchmark_label("spy") == "Benchmark (SPY buy & hold)"
    assert "equal-weight" in benchmark_label(EQUAL_WEIGHT)
    with pytest.raises(ValueError, match="one symbol"):
        parse_benchmark("SPY,QQQ")


def test_equal_weight_by_hand(history: pd.DataFrame) -> None:
    start = history.index[5]
    curve, held = equal_weight_equity(history, start, 1_000.0)
    assert held == 3 and curve.index[0] == history.index[4] and curve.iloc[0] == 1_000.0
    growth = (history["close"].loc[start:] / history["open"].loc[start]).mean(axis=1)
    np.testing.assert_allclose(curve.iloc[1:].to_numpy(), 1_000.0 * growth.to_numpy())


def test_a_symbol_of_the_universe_and_one_loaded_from_the_source(history) -> None:
    start = history.index[5]
    inside, n = benchmark_equity("syn001", history, start, 500.0, source="demo")
    expected = 500.0 * history["close"]["SYN001"].loc[start:] / history["open"]["SYN001"][start]
    assert n == 1 and inside.iloc[0] == 500.0
    np.testing.assert_allclose(inside.iloc[1:].to_numpy(), expected.to_numpy())
    outside, _ = benchmark_equity("SYN050", history, start, 500.0, source="demo")
    other = to_history(load("demo", ["SYN050"], "2024-01-02", "2024-03-28").bars)
    want = 500.0 * other["close"]["SYN050"].loc[start:] / other["open"]["SYN050"][start]
    assert list(outside.index[1:]) == list(want.index)
    np.testing.assert_allclose(outside.iloc[1:].to_numpy(), want.to_numpy())


def test_an_unknown_symbol_is_a_clear_error(history: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="--benchmark equal-weight"):
        benchmark_equity("NOPE", history, history.index[5], 1.0, source="demo")


def test_cli_backtest_with_a_symbol_benchmark(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bh"
    code = main(
        ["backtest", "--strategy", "buy_and_hold", "--source", "demo", "--symbols",
         ",".join(DEMO), "--start", "2024-01-02", "--end", "2024-03-28", "--quiet",
         "--benchmark", "SYN050", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    equity = pd.read_csv(out / "equity.csv", index_col="date", parse_dates=True)
    bench = equity["benchmark"].dropna()
    other = to_history(load("demo", ["SYN050"], "2023-06-01", "2024-03-28").bars)
    first = bench.index[1]
    want = bench.iloc[0] * other["close"]["SYN050"].loc[first:] / other["open"]["SYN050"][first]
    np.testing.assert_allclose(bench.iloc[1:].to_numpy(), want.to_numpy(), rtol=1e-6)
    assert json.loads((out / "metrics.json").read_text())["benchmark"]["trades"] == 1
    assert "Benchmark (SYN050 buy &amp; hold)" in (out / "report.html").read_text()
    assert not (out / "forecasts.csv").exists()  # buy_and_hold forecasts nothing

    bad = main(
        ["backtest", "--strategy", "buy_and_hold", "--source", "demo", "--symbols", "SYN000",
         "--start", "2024-01-02", "--end", "2024-03-28", "--quiet", "--benchmark", "NOPE",
         "--out", str(tmp_path / "bad")]
    )  # fmt: skip
    assert bad == 2
    assert "--benchmark equal-weight" in capsys.readouterr().err
