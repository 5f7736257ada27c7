"""Benchmark: how long ``marketdata.load`` takes, against a plain read of the same bars.

    .venv/bin/python benchmarks/marketdata_load.py [--repeat R]

Timing lives here, not in the tests: a wall-clock assert fails on a busy machine.

demo      ``load("demo")`` (the synthetic 120-symbol universe, 2012-2024) in a fresh
          process state: generation, validation, adjustment. Baseline ``parquet_read``:
          ``pandas.read_parquet`` of the same bars written to a temporary Parquet file,
          i.e. what loading them would cost if they were stored instead of generated.
parquet   ``load("parquet:../shared/data/sp500_daily.parquet", 122 symbols, 2005-2020)``
          (read, validate, adjust, window). Baseline ``pyarrow_read``: ``pq.read_table``
          of the same columns and symbols with the same filter, no validation. Skipped
          (with a line saying so) when the shared data is absent.

Each side is timed ``--repeat`` times (alternating) and the fastest of each is compared.
Printed lines: ``<case>_seconds=S <baseline>_seconds=B <case>_vs_<baseline>=S/B``. For
reference, the budgets the tests used to assert were 2 s (demo) and 5 s (parquet).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(PROJECT))

from marketdata import load  # noqa: E402
from marketdata.demo import demo_bars  # noqa: E402
from marketdata.parquet_source import PARQUET_REQUIRED  # noqa: E402

SP500 = PROJECT.parent / "shared" / "data" / "sp500_daily.parquet"


def fastest(
    fn: Callable[[], object], repeat: int, reset: Callable[[], None] | None = None
) -> float:
    """Best of ``repeat`` timings: the least disturbed by other jobs on the machine."""
    best = float("inf")
    for _ in range(repeat):
        if reset is not None:
            reset()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def reset_demo_memo() -> None:
    """Drop any memo so every demo timing pays the generation (lru_cache, if present)."""
    clear = getattr(demo_bars, "cache_clear", None)
    if clear is not None:
        clear()


def bench_demo(repeat: int) -> str:
    data = load("demo")
    long = pd.concat(data.bars, names=["symbol", "date"]).reset_index()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.parquet"
        long.to_parquet(path)
        case = fastest(lambda: load("demo"), repeat, reset_demo_memo)
        base = fastest(lambda: pd.read_parquet(path), repeat)
    return (
        f"demo_seconds={case:.3f} parquet_read_seconds={base:.3f} "
        f"demo_vs_parquet_read={case / base:.2f}"
    )


def bench_parquet(repeat: int) -> str:
    if not SP500.is_file():
        return f"parquet skipped: shared data not found at {SP500}"
    import pyarrow.parquet as pq

    every = sorted(set(pq.read_table(SP500, columns=["symbol"]).column(0).to_pylist()))
    wanted = sorted(set(every[:120] + ["AAPL", "TSLA"]))
    columns = [*PARQUET_REQUIRED, "split_coefficient"]  # what the loader itself reads

    def ours() -> object:
        return load(f"parquet:{SP500}", wanted, start="2005-01-01", end="2020-12-31")

    def plain() -> object:
        return pq.read_table(SP500, columns=columns, filters=[("symbol", "in", wanted)]).to_pandas()

    case = fastest(ours, repeat)
    base = fastest(plain, repeat)
    return (
        f"parquet_seconds={case:.3f} pyarrow_read_seconds={base:.3f} "
        f"parquet_vs_pyarrow_read={case / base:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timings per side (fastest wins)")
    args = parser.parse_args(argv)
    print(bench_demo(args.repeat))
    print(bench_parquet(args.repeat))


if __name__ == "__main__":
    main()
