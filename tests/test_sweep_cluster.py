"""Sweeps on a real Dask cluster, and sweeps that are killed or interrupted, then resumed."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_sweep import FIXED, SYMBOLS, make_spec, metrics_only

from backtests.sweep import RESULTS_FILE, DaskRunner, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def test_a_dask_cluster_gives_the_same_results_as_local_workers(tmp_path):
    from distributed import LocalCluster

    grid = ["top_n=1,2", "threshold=0,0.01,0.02"]
    one = run_sweep(make_spec(grid=grid), tmp_path / "one", workers=1)
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        on_cluster = run_sweep(
            make_spec(grid=grid), tmp_path / "cluster", cluster=cluster.scheduler_address
        )
        workers = {w["id"] for w in cluster.scheduler_info["workers"].values()}
    assert len(workers) == 2
    assert on_cluster.outcome.ran == 6 and on_cluster.outcome.failed == 0
    frame = pd.read_parquet(tmp_path / "cluster" / RESULTS_FILE)
    assert frame["worker"].notna().all()
    assert not frame["worker"].str.endswith(f":{os.getpid()}").any()  # ran elsewhere
    pd.testing.assert_frame_equal(metrics_only(one.frame), metrics_only(on_cluster.frame))


def _sweep_command(out: Path, workers: int, scales: list[float]) -> list[str]:
    """A sweep whose points each fit their own forecasts (one Prophet setting per point)."""
    return [
        sys.executable, "-m", "tradeship", "sweep",
        "--strategy", "prophet_momentum", "--source", "demo", "--symbols", ",".join(SYMBOLS),
        "--start", "2024-01-02", "--end", "2024-03-28",
        *[f"--param={k}={v}" for k, v in FIXED.items()], "--param=top_n=2",
        "--grid", "changepoint_prior_scale=" + ",".join(map(str, scales)),
        "--workers", str(workers), "--out", str(out),
    ]  # fmt: skip


def _rows(path: Path) -> int:
    try:
        return len(pd.read_parquet(path))
    except (OSError, ValueError):
        return 0


def _sigint_as_at_a_terminal() -> None:
    """In the child: Ctrl-C acts as at a terminal even when pytest runs as a background job
    (a shell without job control starts those with SIGINT ignored, and Python keeps that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_stop(command: list[str], results: Path, at_least: int, how: signal.Signals):
    """Run `command`, send `how` once `at_least` points are in the results; (rc, stderr)."""
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # a signal to its group reaches its workers too, like Ctrl-C
        preexec_fn=_sigint_as_at_a_terminal,
    )  # fmt: skip
    # Hang guards, not timing: on a loaded machine a first point alone has taken 70 s, and
    # the report written after Ctrl-C imports half the scientific stack.
    deadline = time.monotonic() + 600
    try:
        while _rows(results) < at_least:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.05)
        os.killpg(process.pid, how)
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, err


def test_a_killed_sweep_resumes_with_only_the_missing_points(tmp_path):
    scales = [0.011, 0.012, 0.013, 0.014, 0.015, 0.016]
    results = tmp_path / RESULTS_FILE
    rc, _ = _start_and_stop(_sweep_command(tmp_path, 1, scales), results, 2, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    before = pd.read_parquet(results)  # whole: every write is atomic
    done = len(before)
    assert 2 <= done < len(scales), "the sweep finished before it could be killed"

    spec = make_spec(grid={"changepoint_prior_scale": scales}, params={**FIXED, "top_n": 2})
    resumed = run_sweep(spec, tmp_path, workers=1)
    assert resumed.outcome.ran == len(scales) - done
    assert resumed.outcome.skipped == done
    after = pd.read_parquet(results)
    assert after["changepoint_prior_scale"].tolist() == scales
    assert after["error"].isna().all()
    kept = after.set_index("point").loc[before["point"], "run_id"]
    assert kept.tolist() == before["run_id"].tolist()  # finished points were not run again
    assert after["run_id"].nunique() == len(scales)


def test_ctrl_c_stops_local_workers_cleanly_and_says_how_to_resume(tmp_path):
    scales = [0.021, 0.022, 0.023, 0.024, 0.025, 0.026, 0.027, 0.028]
    results = tmp_path / RESULTS_FILE
    rc, err = _start_and_stop(_sweep_command(tmp_path, 2, scales), results, 1, signal.SIGINT)
    assert rc == 130, err
    assert "interrupted:" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    kept = pd.read_parquet(results)
    assert 1 <= len(kept) < len(scales)
    assert kept["error"].isna().all()
    assert (tmp_path / "report.html").exists()


def test_a_cluster_without_workers_is_a_clear_error(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        runner = DaskRunner(address=cluster.scheduler_address, wait_for_workers=0.5)
        with runner, pytest.raises(ValueError, match="has no workers"):
            run_sweep(make_spec(), tmp_path, runner=runner)
