"""Backtests end to end: files written, splits handled, real data at scale, clear errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from shared_data import RAW_SAMPLES, SP500_PARQUET, needs_parquet, needs_raw_samples

from backtests.runner import BacktestConfig, run_backtest
from marketdata import load
from tradeship.cli import main

SMALL_PM = ["top_n=3", "prophet_window=60", "momentum_lookback=20"]


def test_demo_backtest_writes_every_output(tmp_path, capsys):
    out = tmp_path / "bh"
    code = main(
        [
            "backtest",
            "--strategy",
            "buy_and_hold",
            "--source",
            "demo",
            "--symbols",
            "SYN000,SYN001,SYN002",
            "--start",
            "2023-01-03",
            "--end",
            "2023-06-30",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    for name in (
        "metrics.json",
        "equity.csv",
        "orders.csv",
        "decisions.csv",
        "report.html",
        "equity.png",
        "drawdown.png",
        "trades.png",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "final_value"):
        assert key in metrics and key in metrics["benchmark"]
    assert metrics["synthetic"] is True
    orders = pd.read_csv(out / "orders.csv")
    assert list(orders.columns) == ["date", "symbol", "side", "quantity", "price", "commission"]
    assert set(orders["symbol"]) == {"SYN000", "SYN001", "SYN002"}
    assert (orders["date"] == "2023-01-03").all()  # decided on 2022-12-30's close, filled next open
    decisions = pd.read_csv(out / "decisions.csv")
    assert list(decisions.columns) == ["date", "symbol", "target_weight"]
    assert decisions.loc[decisions.symbol == "SYN000", "target_weight"].iloc[0] == pytest.approx(
        1 / 3
    )
    report = (out / "report.html").read_text()
    assert "SYNTHETIC DEMO DATA" in report
    printed = capsys.readouterr().out
    assert "Sharpe" in printed and "report:" in printed


@needs_raw_samples
def test_buy_and_hold_across_the_aapl_split_follows_adjusted_close():
    start, end = "2000-05-01", "2000-08-31"
    result = run_backtest(
        BacktestConfig(
            strategy="buy_and_hold",
            source=f"csv:{RAW_SAMPLES}",
            symbols=["AAPL"],
            start=start,
            end=end,
            fractional=True,
            cash_buffer=0.0,
        )
    )
    raw = pd.read_csv(next(RAW_SAMPLES.glob("DA-AAPL-*.csv")), parse_dates=["timestamp"])
    raw = raw.set_index("timestamp").sort_index().loc[start:end]
    assert raw.loc["2000-06-20", "close"] / raw.loc["2000-06-21", "close"] > 1.7  # the split
    fill = result.orders.iloc[0]
    entry_day = pd.Timestamp(fill["date"])
    adjusted_open = (
        raw.loc[entry_day, "open"]
        * raw.loc[entry_day, "adjusted_close"]
        / raw.loc[entry_day, "close"]
    )
    assert fill["price"] == pytest.approx(adjusted_open, rel=1e-9)
    # the position, bought at the adjusted open, is worth what adjusted_close says at the end
    gain = fill["quantity"] * (raw["adjusted_close"].iloc[-1] - fill["price"])
    assert result.metrics["total_return"] == pytest.approx(gain / 100_000, abs=1e-9)
    # and what adjusted_close says over the whole span differs only by the entry fill price
    span = raw["adjusted_close"].iloc[-1] / raw["adjusted_close"].iloc[0] - 1
    entry_effect = raw["adjusted_close"].iloc[0] / adjusted_open  # bought at the next open
    assert abs((1 + span) * entry_effect - 1 - result.metrics["total_return"]) < 0.002
    assert result.metrics["total_return"] > -0.2  # a missed 2:1 split would show about -50%


@needs_parquet
def test_prophet_momentum_on_100_plus_real_symbols():
    symbols = load(f"parquet:{SP500_PARQUET}", start="2020-01-02", end="2020-01-10").symbols
    result = run_backtest(
        BacktestConfig(
            strategy="prophet_momentum",
            source=f"parquet:{SP500_PARQUET}",
            symbols=symbols[:120],
            start="2019-03-01",
            end="2019-04-30",
            params={"top_n": 3, "prophet_window": 60, "momentum_lookback": 40},
        )
    )
    assert len(result.data.bars) >= 100
    assert result.metrics["symbols"] >= 100
    assert result.decided, "no rebalance happened"
    assert len(result.orders) > 0
    assert "survivorship" in " ".join(result.notes)


def test_cli_errors_are_one_clear_line(capsys, tmp_path):
    assert main(["backtest", "--strategy", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert (
        main(
            [
                "backtest",
                "--strategy",
                "prophet_momentum",
                "--param",
                "top_n=x",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "takes a int" in capsys.readouterr().err
    assert (
        main(
            [
                "backtest",
                "--strategy",
                "buy_and_hold",
                "--source",
                "csv:/nonexistent",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "error: CSV source folder not found: /nonexistent" in err and "Traceback" not in err


def test_too_short_a_range_says_how_much_warmup_is_needed(capsys, tmp_path):
    code = main(
        [
            "backtest",
            "--strategy",
            "prophet_momentum",
            "--source",
            "demo",
            "--symbols",
            "SYN000",
            "--start",
            "2012-01-03",
            "--end",
            "2012-03-01",
            "--out",
            str(tmp_path),
            "--quiet",
            *[f"--param={p}" for p in SMALL_PM],
        ]
    )
    assert code == 2
    assert "bars of history before it trades" in capsys.readouterr().err
