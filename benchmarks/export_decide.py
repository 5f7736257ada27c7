"""Benchmark: one exported prophet_momentum decision for 100 S&P 500 symbols, in seconds.

    .venv/bin/python benchmarks/export_decide.py [--symbols 100] [--warmup 327]

It runs inside one Lambda invocation, so its time is what matters. The export is built
here (warm-up given, not measured) and run the way a bundle runs it: a fresh
``python -I -S`` with only the module's folder and the third-party packages on its path, an
empty forecast cache, Prophet fits serial (as in Lambda). Printed, measured in one run:
``load_s`` (history for the symbols), ``decide_s`` (the replay and its Prophet fits), and
``orders`` (how many target positions it returned).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from exporters.export import build_export, write_export  # noqa: E402
from marketdata import load  # noqa: E402

PARQUET = PROJECT.parent / "shared/data/sp500_daily.parquet"
SESSION = "2020-11-30"  # a Monday: a rebalance session of prophet_momentum's default buckets

CHILD = r"""
import importlib, json, sys, time
spec = json.loads(sys.stdin.read())
sys.path[:0] = spec["paths"]
started = time.perf_counter()
module = importlib.import_module("strategy")
import pandas as pd
history = module.load_history(spec["source"], spec["symbols"], pd.Timestamp(spec["first"]),
                              pd.Timestamp(spec["session"]))
history = history[history.index < pd.Timestamp(spec["session"])]
loaded = time.perf_counter()
targets = module.decide(history, {"$CASH": 100000.0}, pd.Timestamp(spec["session"]))
done = time.perf_counter()
print(json.dumps({"load_s": loaded - started, "decide_s": done - loaded,
                  "orders": len(targets or {})}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=327)
    args = parser.parse_args()
    if not PARQUET.is_file():
        print(f"skipped: {PARQUET} not found")
        return 0
    source = f"parquet:{PARQUET}"
    symbols = load(source, None, "2020-01-02", "2020-01-10").symbols[: args.symbols]
    with tempfile.TemporaryDirectory() as scratch:
        _, compiled = build_export(
            "prophet_momentum",
            {},
            symbols,
            "yfinance",
            sources=["parquet"],
            warmup=args.warmup,
        )
        module, _ = write_export(compiled, Path(scratch) / "strategy.py")
        packages = [p for p in sys.path if p.endswith("site-packages")]
        spec = {
            "paths": [scratch, *packages],
            "source": source,
            "symbols": symbols,
            "first": "2019-01-02",
            "session": SESSION,
        }
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TRADESHIP_CACHE_DIR": scratch}
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", CHILD],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            env=env,
            cwd=scratch,
        )
        if done.returncode:
            print(done.stderr[-3000:])
            return 1
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"symbols={len(symbols)} warmup={args.warmup} load_s={answer['load_s']:.2f} "
        f"decide_s={answer['decide_s']:.2f} orders={answer['orders']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
