"""`tradeship sweep` and `tradeship walkforward`: parameter sweeps, locally or on Dask.

Also runnable on its own: ``python -m tradeship.commands.sweep sweep ...``.
"""

from __future__ import annotations

import argparse
import sys

from tradeship.options import add_data_options, add_strategy_options, parse_symbols, strategy_params
from tradeship.settings import Settings

SWEEP_HELP = """\
Backtest every point of a parameter grid (or --random N of them) and write in --out:
  results.parquet  one row per point: the parameters, every metric of metrics.json
                   (benchmark_* too), seconds, error (null when it ran); sorted by parameters
  heatmap.png      the metric over the two most important parameters (importance = share of
                   the metric's variance explained by a parameter's group means)
  report.html      the heatmap, parameter importance and the best points (self-contained)
Results are written as each point finishes: rerun the same command after a crash or Ctrl-C
and only the missing points run. A point that fails is recorded with its error.

Where points run: --workers N local processes (default: all cores; 1 = in this process), or
--cluster tcp://HOST:8786, an existing Dask cluster (`dask scheduler` + `dask worker
tcp://HOST:8786 --nthreads 1` on machines with tradeship installed). Workers load the data
themselves from --source (a path must exist on every worker) and share the Prophet forecast
cache of their machine: points that differ only in non-Prophet parameters never refit.
"""

SWEEP_EXAMPLES = """\
examples:
  tradeship sweep --strategy prophet_momentum --source demo --start 2023-01-03 \\
      --end 2023-12-29 --grid top_n=5,10 --grid threshold=0,0.01,0.02 --out out/sweep
  tradeship sweep --strategy prophet_momentum --grid top_n=3,5,10,20 \\
      --grid momentum_lookback=20,63,126,252 --random 6 --seed 1 --out out/sweep-random
  tradeship sweep ... --cluster tcp://10.0.0.5:8786 --out out/sweep-cluster
"""

WALKFORWARD_HELP = """\
Walk-forward validation of a sweep: cut [--start, --end] into rolling folds of --train
in-sample sessions followed by --test out-of-sample sessions (a new fold every --step
sessions); in each fold, sweep the grid in sample, pick the best point by --metric and
backtest it out of sample. Prints and writes (walkforward.csv, report.html) the in-sample
and out-of-sample metric per fold and their difference (degradation): how much of a
sweep's best result is overfitting. Also writes results.parquet (every in-sample point)
and outofsample.parquet; resumes like `sweep`.
"""

WALKFORWARD_EXAMPLES = """\
example:
  tradeship walkforward --strategy prophet_momentum --source demo --start 2021-01-04 \\
      --end 2023-12-29 --grid top_n=5,10 --grid threshold=0,0.02 --train 252 --test 63 \\
      --out out/walkforward
"""


def _add_sweep_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    add_strategy_options(parser)  # --strategy, fixed --param KEY=VALUE, --params FILE.json
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2,...",
        help="a swept parameter and its values, repeatable (e.g. --grid top_n=5,10,20)",
    )
    parser.add_argument(
        "--random",
        type=int,
        metavar="N",
        help="run N points drawn from the grid instead of all of them",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the --random draw (default 0)")
    add_data_options(parser, settings)
    parser.add_argument(
        "--metric",
        default="sharpe",
        help="metric to rank points by (default sharpe; volatility is minimised, every "
        "other metric maximised; e.g. total_return, cagr, sortino, max_drawdown)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: all cores, TRADESHIP_WORKERS; 1 = run in "
        "this process); ignored with --cluster",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run on an existing Dask distributed cluster, e.g. tcp://10.0.0.5:8786",
    )
    parser.add_argument("--cash", type=float, default=100_000.0, help="starting cash")
    parser.add_argument(
        "--commission", type=float, default=0.0, help="commission, fraction of traded value"
    )
    parser.add_argument("--slippage", type=float, default=0.0, help="slippage, fraction of price")
    parser.add_argument(
        "--fill", choices=("open", "close"), default="open", help="fill at open or close"
    )
    parser.add_argument(
        "--retry-errors", action="store_true", help="run points that failed before again"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="do not read or write the forecast cache"
    )
    parser.add_argument("--out", required=True, help="folder for the results")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _spec(args: argparse.Namespace):
    from backtests.sweep import SweepSpec

    return SweepSpec(
        strategy=args.strategy,
        grid=args.grid,
        params=strategy_params(args),
        source=args.source,
        symbols=parse_symbols(args.symbols),
        start=args.start,
        end=args.end,
        metric=args.metric,
        random=args.random,
        seed=args.seed,
        cash=args.cash,
        commission=args.commission,
        slippage=args.slippage,
        fill=args.fill,
    )


def _run_options(args: argparse.Namespace, settings: Settings) -> dict:
    workers = args.workers if args.workers is not None else (settings.workers or None)
    return {
        "workers": workers,
        "cluster": args.cluster,
        "progress": not args.quiet,
        "retry_errors": args.retry_errors,
        "cache": not args.no_cache,
    }


def _interrupted(out: str, done: int, total: int) -> int:
    from backtests.sweep import resume_hint

    print(f"interrupted: {done} of {total} points done; {resume_hint(out)}", file=sys.stderr)
    return 130


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from backtests.sweep import run_sweep
    from backtests.sweep_report import text_table

    spec = _spec(args)
    result = run_sweep(spec, args.out, **_run_options(args, settings))
    outcome = result.outcome
    if outcome.interrupted:
        return _interrupted(args.out, len(outcome.frame), outcome.total)
    print(
        f"sweep: {outcome.total} points ({outcome.ran} run now, {outcome.skipped} from an "
        f"earlier run, {outcome.failed} failed) in {outcome.seconds:.1f} s"
    )
    for _, row in outcome.frame[outcome.frame["error"].notna()].head(5).iterrows():
        print(f"failed: {row['point']}: {row['error']}")
    ranked = sorted(result.importance.items(), key=lambda kv: (-kv[1], kv[0]))
    print(f"importance for {spec.metric}: " + ", ".join(f"{k} {v:.2f}" for k, v in ranked))
    print(f"best points by {spec.metric}:")
    print(text_table(result.best.head(5)))
    print(f"results: {result.results_path}")
    print(f"heatmap: {result.heatmap_path}")
    print(f"report: {result.report_path}")
    if outcome.failed == outcome.total:
        print("error: every point failed", file=sys.stderr)
        return 1
    return 0


def cmd_walkforward(args: argparse.Namespace, settings: Settings) -> int:
    from backtests.sweep_report import text_table
    from backtests.walkforward import WalkForwardSpec, run_walkforward, summary_line

    spec = WalkForwardSpec(_spec(args), train=args.train, test=args.test, step=args.step)
    result = run_walkforward(spec, args.out, **_run_options(args, settings))
    if result.interrupted:
        done = len(result.insample.frame) + (
            len(result.outofsample.frame) if result.outofsample else 0
        )
        total = result.insample.total + (result.outofsample.total if result.outofsample else 0)
        return _interrupted(args.out, done, total)
    print(text_table(result.folds))
    print(summary_line(result.folds, spec.sweep.metric))
    print(f"walk-forward: {result.csv_path}")
    print(f"report: {result.report_path}")
    return 0


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="backtest a grid of parameters in parallel (locally or on a Dask cluster)",
        description=SWEEP_HELP,
        epilog=SWEEP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_sweep_options(sweep, settings)
    sweep.set_defaults(func=cmd_sweep)

    walk = sub.add_parser(
        "walkforward",
        help="walk-forward validation: optimise in sample, score out of sample, per fold",
        description=WALKFORWARD_HELP,
        epilog=WALKFORWARD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_sweep_options(walk, settings)
    walk.add_argument(
        "--train", type=int, default=252, help="in-sample sessions per fold (default 252)"
    )
    walk.add_argument(
        "--test", type=int, default=63, help="out-of-sample sessions per fold (default 63)"
    )
    walk.add_argument(
        "--step", type=int, help="sessions between the starts of folds (default: --test)"
    )
    walk.set_defaults(func=cmd_walkforward)
