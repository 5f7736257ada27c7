"""Parameter sweeps: the grid, one point, results on disk, resume, failures, reports, CLI.

Every sweep here is prophet_momentum on 8 demo symbols over one quarter with tiny Prophet
windows, so the forecasts (shared by all tests of a pytest worker through the forecast
cache) cost a few seconds once.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from backtests.forecast_cache import ForecastCache
from backtests.forecasting import FastForecaster
from backtests.runner import run_backtest
from backtests.sweep import (
    RESULTS_FILE,
    RUN_INFO_COLUMNS,
    SweepSpec,
    SweepTask,
    flatten_metrics,
    grid_points,
    load_market_data,
    parse_grid,
    point_key,
    run_point,
    run_sweep,
)
from backtests.sweep_report import best_points, heatmap_params, param_importance
from backtests.walkforward import (
    Fold,
    WalkForwardSpec,
    chosen_point,
    fold_table,
    fold_windows,
    run_walkforward,
)
from tradeship.cli import main as tradeship_main
from tradeship.commands import sweep as sweep_command

SYMBOLS = [f"SYN{i:03d}" for i in range(8)]
FIXED = {"prophet_window": 30, "momentum_lookback": 10}
START, END = "2024-01-02", "2024-03-28"
GRID = ["top_n=1,2", "threshold=0,0.02"]


def make_spec(grid=GRID, **changes) -> SweepSpec:
    fields = dict(
        strategy="prophet_momentum",
        grid=grid,
        params=dict(FIXED),
        source="demo",
        symbols=SYMBOLS,
        start=START,
        end=END,
    )
    fields.update(changes)
    return SweepSpec(**fields)


def metrics_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Everything but what legitimately differs between runs (time, ids, cache use)."""
    return frame.drop(columns=list(RUN_INFO_COLUMNS)).reset_index(drop=True)


# --------------------------------------------------------------------------- the grid


def test_grid_values_are_typed_sorted_and_checked():
    given = ["top_n=10,2,2", "threshold=0.02, 0", "weekly_seasonality=false,true"]
    grid = parse_grid("prophet_momentum", given)
    assert grid == {
        "threshold": [0.0, 0.02],
        "top_n": [2, 10],
        "weekly_seasonality": [False, True],
    }
    assert parse_grid("prophet_momentum", {"top_n": [3, "1"]}) == {"top_n": [1, 3]}
    for bad, message in [
        (["nope=1,2"], "no parameter nope"),
        (["top_n=a,b"], "takes a int"),
        (["top_n=1", "top_n=2"], "given twice"),
        (["top_n="], "no values"),
        (["top_n"], "KEY=V1,V2"),
        ([], "at least one --grid"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_grid("prophet_momentum", bad)


def test_grid_points_full_product_and_seeded_random_sample():
    grid = {"a": [1, 2, 3], "b": [0.5, 0.1], "c": ["x", "y"]}
    every = grid_points(grid)
    assert len(every) == 12
    assert every == sorted(every, key=lambda p: (p["a"], p["b"], p["c"]))
    assert every[0] == {"a": 1, "b": 0.1, "c": "x"}
    assert len({point_key(p) for p in every}) == 12

    sample = grid_points(grid, random=5, seed=7)
    assert len(sample) == 5
    assert sample == grid_points({"c": ["y", "x"], "b": [0.1, 0.5], "a": [3, 1, 2]}, 5, 7)
    assert all(p in every for p in sample)
    assert sample == sorted(sample, key=lambda p: (p["a"], p["b"], p["c"]))
    assert {point_key(p) for s in range(20) for p in grid_points(grid, 5, s)} != {
        point_key(p) for p in sample
    }
    assert grid_points(grid, random=50, seed=1) == every
    with pytest.raises(ValueError, match="positive"):
        grid_points(grid, random=0)


def test_flatten_metrics_keeps_scalars_and_benchmark():
    metrics = {
        "sharpe": 1.5,
        "trades": 3,
        "start": "2024-01-02",
        "benchmark": {"sharpe": 0.5, "trades": 8},
        "params": {"top_n": 2},
        "synthetic": True,
        "top_n": 99,  # clashes with a swept parameter
    }
    flat = flatten_metrics(metrics, reserved=["top_n"])
    assert flat == {
        "sharpe": 1.5,
        "trades": 3,
        "start": "2024-01-02",
        "benchmark_sharpe": 0.5,
        "benchmark_trades": 8,
        "synthetic": True,
        "metric_top_n": 99,
    }


def test_importance_is_the_variance_share_of_each_parameter():
    points = pd.DataFrame(grid_points({"a": [1, 2, 3], "b": [10, 20], "c": [0, 1]}))
    points["sharpe"] = points["a"] * 2.0 + (points["b"] == 20) * 0.5
    points["error"] = None
    importance = param_importance(points, ["a", "b", "c"], "sharpe")
    total = ((points["sharpe"] - points["sharpe"].mean()) ** 2).sum()
    assert importance["a"] == pytest.approx(8 / 3 * 12 / total)
    assert importance["b"] == pytest.approx(0.0625 * 12 / total)
    assert importance["c"] == 0.0
    assert importance["a"] + importance["b"] == pytest.approx(1.0)
    assert heatmap_params(importance, points) == ["a", "b"]
    failed = points.assign(error=np.where(points["a"] == 3, "boom", None))
    best = best_points(failed, ["a", "b", "c"], "sharpe", n=2)
    assert best[["a", "b"]].values.tolist() == [[2, 20], [2, 20]]  # a=3 failed: not ranked
    assert best["rank"].tolist() == [1, 2]


# --------------------------------------------------------------------------- one point


def test_a_point_is_exactly_the_plain_backtest_and_its_data_is_loaded_once():
    spec = make_spec()
    params = {"threshold": 0.0, "top_n": 2}
    config = spec.config(params)
    task = SweepTask(
        key=point_key(params),
        config=config,
        columns=params,
        load_start="2023-06-01",  # a wider load, cut to the point's own range
        load_end="2024-06-28",
    )
    load_market_data.cache_clear()
    row = run_point(task)
    assert row["error"] is None
    again = run_point(task)
    assert load_market_data.cache_info().hits >= 1 and load_market_data.cache_info().misses == 1
    assert again["fits"] == 0  # every forecast came from the cache

    with FastForecaster(cache=ForecastCache.default(), workers=1) as forecaster:
        plain = run_backtest(config, forecaster=forecaster)  # loads its own range
    expected = flatten_metrics(plain.metrics)
    assert {k: row[k] for k in expected} == expected
    assert row["top_n"] == 2 and row["threshold"] == 0.0 and row["seconds"] > 0


# --------------------------------------------------------------------------- a sweep


def test_sweep_writes_sorted_results_resumes_and_never_refits(tmp_path):
    out = tmp_path / "sweep"
    result = run_sweep(make_spec(), out, workers=1)
    frame = pd.read_parquet(out / RESULTS_FILE)
    assert result.outcome.ran == 4 and result.outcome.skipped == 0
    assert frame[["threshold", "top_n"]].values.tolist() == [[0, 1], [0, 2], [0.02, 1], [0.02, 2]]
    assert frame["error"].isna().all()
    for column in ["sharpe", "total_return", "max_drawdown", "benchmark_sharpe", "seconds"]:
        assert frame[column].notna().all(), column
    assert (frame["seconds"] > 0).all()
    # threshold does not enter a forecast: its second value reads every forecast from the cache
    assert frame.loc[frame["threshold"] == 0.02, "fits"].tolist() == [0, 0]
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_bytes()
    assert b"data:image/png;base64," in report and b"Best points by sharpe" in report

    again = run_sweep(make_spec(), out, workers=1)
    assert again.outcome.ran == 0 and again.outcome.skipped == 4
    assert pd.read_parquet(out / RESULTS_FILE)["run_id"].tolist() == frame["run_id"].tolist()
    assert (out / "report.html").read_bytes() == report  # deterministic bytes

    wider = run_sweep(make_spec(grid=["top_n=1,2,3", "threshold=0,0.02"]), out, workers=1)
    assert wider.outcome.ran == 2 and wider.outcome.skipped == 4

    with pytest.raises(ValueError, match="different sweep"):
        run_sweep(make_spec(end="2024-03-27"), out, workers=1)


def test_a_failing_point_is_recorded_and_the_others_complete(tmp_path):
    spec = make_spec(grid=["prophet_window=5,30"], params={"momentum_lookback": 10, "top_n": 2})
    result = run_sweep(spec, tmp_path, workers=1)
    frame = pd.read_parquet(tmp_path / RESULTS_FILE)
    assert frame["prophet_window"].tolist() == [5, 30]
    assert frame.loc[0, "error"] == "ValueError: prophet_window must be at least 10 bars, got 5"
    assert np.isnan(frame.loc[0, "sharpe"])
    assert pd.isna(frame.loc[1, "error"]) and np.isfinite(frame.loc[1, "sharpe"])
    assert result.outcome.failed == 1
    assert b"Failed points (1)" in (tmp_path / "report.html").read_bytes()

    retried = run_sweep(spec, tmp_path, workers=1, retry_errors=True)
    assert retried.outcome.ran == 1 and retried.outcome.skipped == 1


def test_two_local_workers_give_the_same_results_as_one(tmp_path):
    grid = ["top_n=1,2", "threshold=0,0.01,0.02"]
    one = run_sweep(make_spec(grid=grid), tmp_path / "one", workers=1)
    two = run_sweep(make_spec(grid=grid), tmp_path / "two", workers=2)
    assert two.outcome.ran == 6 and two.outcome.failed == 0
    pd.testing.assert_frame_equal(metrics_only(one.frame), metrics_only(two.frame))
    assert (tmp_path / "one" / "report.html").read_bytes() == (
        tmp_path / "two" / "report.html"
    ).read_bytes()


def test_random_sweep_and_metric_checks(tmp_path):
    spec = make_spec(grid=["top_n=1,2", "threshold=0,0.01,0.02"], random=3, seed=4)
    result = run_sweep(spec, tmp_path, workers=1)
    expected = grid_points(parse_grid("prophet_momentum", spec.grid), 3, 4)
    assert [point_key(p) for p in expected] == result.frame["point"].tolist()
    with pytest.raises(ValueError, match="not a metric"):
        run_sweep(make_spec(metric="nope"), tmp_path / "x", workers=1)
    with pytest.raises(ValueError, match="both swept"):
        run_sweep(make_spec(params={**FIXED, "top_n": 3}), tmp_path / "y", workers=1)


# --------------------------------------------------------------------------- walk-forward


def test_fold_windows_roll_over_sessions():
    folds = fold_windows("2024-01-02", "2024-04-30", train=40, test=20)
    assert [(f.is_start, f.is_end, f.oos_start, f.oos_end) for f in folds] == [
        ("2024-01-02", "2024-02-28", "2024-02-29", "2024-03-27"),
        ("2024-01-31", "2024-03-27", "2024-03-28", "2024-04-25"),
    ]
    assert len(fold_windows("2024-01-02", "2024-04-30", 40, 20, step=5)) == 5
    with pytest.raises(ValueError, match="at least"):
        fold_windows("2024-01-02", "2024-02-28", 40, 20)


def test_walkforward_reports_in_and_out_of_sample_per_fold(tmp_path, capsys):
    args = [
        "walkforward", "--strategy", "prophet_momentum", "--source", "demo",
        "--symbols", ",".join(SYMBOLS), "--start", "2024-01-02", "--end", "2024-04-30",
        "--param", "prophet_window=30", "--param", "momentum_lookback=10",
        "--param", "top_n=2", "--grid", "threshold=0,0.02", "--train", "40", "--test", "20",
        "--workers", "1", "--quiet", "--out", str(tmp_path),
    ]  # fmt: skip
    assert tradeship_main(args) == 0
    printed = capsys.readouterr().out
    assert "degradation" in printed and "mean out-of-sample sharpe" in printed
    folds = pd.read_csv(tmp_path / "walkforward.csv")
    assert folds["fold"].tolist() == [0, 1]
    assert folds["oos_start"].tolist() == ["2024-02-29", "2024-03-28"]
    assert folds["error"].isna().all()
    assert np.allclose(folds["degradation"], folds["is_sharpe"] - folds["oos_sharpe"])
    insample = pd.read_parquet(tmp_path / RESULTS_FILE)
    assert insample[["fold", "threshold"]].values.tolist() == [[0, 0], [0, 0.02], [1, 0], [1, 0.02]]
    for fold in (0, 1):  # the chosen point is the in-sample best
        rows = insample[insample["fold"] == fold]
        assert folds.loc[fold, "is_sharpe"] == rows["sharpe"].max()
    oos = pd.read_parquet(tmp_path / "outofsample.parquet")
    # an equity curve starts at the close before its first trading session: the in-sample end
    assert oos["start"].tolist() == folds["is_end"].tolist() == ["2024-02-28", "2024-03-27"]
    assert oos["end"].tolist() == ["2024-03-27", "2024-04-25"]
    assert b"Walk-forward validation" in (tmp_path / "report.html").read_bytes()

    spec = WalkForwardSpec(make_spec(grid=["threshold=0,0.02"], params={**FIXED, "top_n": 2},
                                     end="2024-04-30"), train=40, test=20)  # fmt: skip
    again = run_walkforward(spec, tmp_path, workers=1)
    assert again.insample.ran == 0 and again.outofsample.ran == 0


def test_fold_table_keeps_integer_parameters_integer():
    folds = [Fold(i, "2024-01-02", "2024-02-01", "2024-02-02", "2024-03-01") for i in (0, 1, 2)]
    insample = pd.DataFrame(
        {"fold": [0, 0, 1, 1], "top_n": [1, 2, 1, 2], "threshold": [0.0, 0.02, 0.0, 0.02],
         "sharpe": [0.5, 1.5, 2.0, 1.0], "error": [None] * 4}
    )  # fmt: skip
    outofsample = pd.DataFrame({"fold": [0, 1], "sharpe": [0.25, 0.75], "error": [None, None]})
    table = fold_table(folds, ["threshold", "top_n"], "sharpe", insample, outofsample)
    assert table["top_n"].tolist()[:2] == [2, 1] and pd.isna(table["top_n"][2])  # fold 2: none
    assert table["threshold"].tolist()[:2] == [0.02, 0.0]
    chosen = chosen_point(table, 0, ["threshold", "top_n"])  # the out-of-sample task's point
    assert chosen == {"threshold": 0.02, "top_n": 2} and type(chosen["top_n"]) is int
    csv = table.to_csv(index=False).splitlines()
    assert csv[1].split(",")[5:7] == ["0.02", "2"] and csv[3].split(",")[6] == ""


# --------------------------------------------------------------------------- the command


def test_sweep_command(tmp_path, capsys):
    args = [
        "sweep", "--strategy", "prophet_momentum", "--source", "demo",
        "--symbols", ",".join(SYMBOLS), "--start", START, "--end", END,
        "--param", "prophet_window=30", "--param", "momentum_lookback=10",
        "--grid", "top_n=1,2", "--grid", "threshold=0,0.02", "--metric", "total_return",
        "--workers", "1", "--quiet", "--out", str(tmp_path),
    ]  # fmt: skip
    assert tradeship_main(args) == 0
    printed = capsys.readouterr().out
    assert "sweep: 4 points (4 run now, 0 from an earlier run, 0 failed)" in printed
    assert "best points by total_return" in printed and "report:" in printed
    assert tradeship_main([*args[:-2], "--metric", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "not a metric" in capsys.readouterr().err

    parser = argparse.ArgumentParser()
    sweep_command.register(parser.add_subparsers(dest="command"), sweep_command.Settings())
    parsed = parser.parse_args(["sweep", "--strategy", "x", "--grid", "a=1", "--out", "o"])
    assert parsed.func is sweep_command.cmd_sweep and parsed.metric == "sharpe"
    parsed = parser.parse_args(["walkforward", "--strategy", "x", "--grid", "a=1", "--out", "o"])
    assert parsed.func is sweep_command.cmd_walkforward and parsed.train == 252
