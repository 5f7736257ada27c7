"""Benchmark: a 12-point sweep on 1 worker vs 2 local worker processes, in one run.

    .venv/bin/python benchmarks/sweep_scaling.py [--points 12] [--repeat R] [--cold]

1 worker   the sweep's ``workers=1`` mode: the points one after the other in this process.
2 workers  ``workers=2``: a dask LocalCluster of 2 single-threaded worker processes; the
           time includes starting the cluster, the workers' imports and their data loads
           (a real sweep pays them too). Prophet is imported here before anything is timed.

The points are CPU-bound and equal-sized. Default (backtest-bound): prophet_momentum on all
120 demo symbols over three years, the points differing only in ``threshold``, which
enters no forecast. An untimed first pass fills a forecast cache folder that both runs then
read, so every point is the same Backtrader simulation over the same cached forecasts
(~240 cache hits, no fit) and both runs do exactly the same work.

``--cold`` (Prophet-bound): 8 symbols over one quarter, one ``changepoint_prior_scale`` per
point, so every point fits its own ~50 forecasts; each run starts from an empty cache folder
of its own.

The last line printed is ``speedup_2_workers=X`` (1-worker seconds / 2-worker seconds;
with ``--repeat R`` the runs alternate R times and the fastest of each is compared). The
metrics of the two runs must be identical (``identical_metrics=true``). Before it,
``cpu_ceiling_2_processes`` is the machine's own 2-process speedup on pure Python
arithmetic, measured at the end of the run: on a shared VM, other tenants' load caps what
any 2-worker run can reach.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(PROJECT))

from backtests.sweep import (  # noqa: E402
    RUN_INFO_COLUMNS,
    SweepSpec,
    load_market_data,
    run_sweep,
)
from strategies.forecast import quiet_prophet_logs  # noqa: E402


def backtest_bound(points: int) -> SweepSpec:
    return SweepSpec(
        strategy="prophet_momentum",
        grid={"threshold": [round(0.002 * i, 3) for i in range(points)]},
        params={
            "top_n": 3,
            "prophet_window": 30,
            "momentum_lookback": 20,
            "rebalance_every": 10,
            "refit_every": 10,
        },
        source="demo",
        symbols=None,  # all 120
        start="2022-01-03",
        end="2024-12-31",
    )


def prophet_bound(points: int) -> SweepSpec:
    return SweepSpec(
        strategy="prophet_momentum",
        grid={"changepoint_prior_scale": [round(0.01 * (i + 1), 2) for i in range(points)]},
        params={"prophet_window": 30, "momentum_lookback": 10, "top_n": 4},
        source="demo",
        symbols=[f"SYN{i:03d}" for i in range(8)],
        start="2024-01-02",
        end="2024-03-28",
    )


def burn(loops: int) -> float:
    total = 0
    for i in range(loops):
        total += i
    return float(total)


def cpu_ceiling(loops: int = 20_000_000, rounds: int = 3) -> float:
    """This machine's own 2-process speedup right now: pure Python, no I/O, no sweep."""
    import multiprocessing

    serial, parallel = [], []
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(burn, [1, 1])  # start-up outside the timing
        for _ in range(rounds):
            started = time.perf_counter()
            burn(loops)
            burn(loops)
            serial.append(time.perf_counter() - started)
            started = time.perf_counter()
            pool.map(burn, [loops, loops])
            parallel.append(time.perf_counter() - started)
    return min(serial) / min(parallel)


def timed(spec: SweepSpec, workers: int, out: Path, cache: Path):
    load_market_data.cache_clear()  # each run loads its data, as the workers do
    started = time.perf_counter()
    result = run_sweep(spec, out, workers=workers, cache_dir=cache)
    seconds = time.perf_counter() - started
    frame = result.frame.drop(columns=list(RUN_INFO_COLUMNS))
    failed = int(frame["error"].notna().sum())
    fits = int(result.frame["fits"].sum())
    hits = int(result.frame["forecast_hits"].sum())
    print(f"workers={workers}: {seconds:.1f} s for {len(frame)} points ({fits} Prophet fits, "
          f"{hits} cache hits, {failed} failed)", flush=True)  # fmt: skip
    return seconds, frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternate 1- and 2-worker runs this many times and compare the fastest of "
        "each (steadier on a shared machine)",
    )
    parser.add_argument(
        "--cold", action="store_true", help="Prophet-bound points on cold caches instead"
    )
    args = parser.parse_args()
    quiet_prophet_logs()
    with suppress(ImportError):  # Prophet imported before timing (workers pay their own)
        import prophet  # noqa: F401
    spec = prophet_bound(args.points) if args.cold else backtest_bound(args.points)
    times: dict[int, list[float]] = {1: [], 2: []}
    frames = {}
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        root = Path(tmp)
        shared = root / "cache"
        if not args.cold:
            started = time.perf_counter()
            first = SweepSpec(**{**spec.__dict__, "grid": {"threshold": [0.0]}})
            run_sweep(first, root / "warm-up", workers=1, cache_dir=shared)
            print(f"untimed warm-up of the forecast cache: {time.perf_counter() - started:.1f} s")
        for round_ in range(max(1, args.repeat)):
            for workers in (1, 2):
                where = root / f"r{round_}-{workers}"
                cache = where / "cache" if args.cold else shared
                seconds, frames[workers] = timed(spec, workers, where / "out", cache)
                times[workers].append(seconds)
    identical = frames[1].equals(frames[2])
    print(f"cpu_ceiling_2_processes={cpu_ceiling():.2f}  (pure Python, measured just now)")
    print(f"identical_metrics={str(identical).lower()}")
    print(f"speedup_2_workers={min(times[1]) / min(times[2]):.2f}")


if __name__ == "__main__":
    main()
