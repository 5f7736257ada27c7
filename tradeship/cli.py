"""`tradeship`: backtest, export and verify strategies from the command line.

Every command prints a clear one-line error (exit 2) instead of a traceback when its inputs
are wrong; `tradeship COMMAND --help` explains each option with an example.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tradeship.options import (
    UNIVERSE_HELP,
    add_data_options,
    add_forecast_options,
    add_strategy_options,
    backtest_config,
    money,
    open_forecaster,
    parse_symbols,
    progress_bar,
    strategy_params,
)
from tradeship.settings import Settings

# Commands that live in their own modules: each has register(subparsers, settings).
COMMAND_MODULES: tuple[str, ...] = (
    "tradeship.commands.cache",
    "tradeship.commands.live",
    "tradeship.commands.paper",
    "tradeship.commands.sandbox",
    "tradeship.commands.bundle",
    "tradeship.commands.sweep",
)

EXAMPLES = """\
examples:
  tradeship backtest --strategy prophet_momentum --source demo --out out/demo
  tradeship backtest --strategy buy_and_hold --source csv:../shared/data/raw_samples \\
      --symbols AAPL --out out/aapl
  tradeship backtest --strategy prophet_momentum \\
      --source parquet:../shared/data/sp500_daily.parquet --start 2019-01-01 \\
      --end 2020-12-31 --param top_n=5 --param threshold=0.02 --out out/sp500
"""


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from backtests.benchmark import parse_benchmark
    from backtests.forecast_skill import RecordingForecaster
    from backtests.report import print_metrics_table
    from backtests.runner import run_backtest, write_outputs

    config = backtest_config(
        args,
        cash=args.cash,
        commission=args.commission,
        slippage=args.slippage,
        fill=args.fill,
        fractional=args.fractional,
        account=args.account,
        benchmark=parse_benchmark(args.benchmark),
    )
    with open_forecaster(args, settings) as forecaster:
        recorder = RecordingForecaster(forecaster)  # the report measures the forecasts' skill
        result = run_backtest(
            config, forecaster=recorder, progress=progress_bar(not args.quiet, "backtest")
        )
    report = write_outputs(result, args.out, forecasts=recorder.records)
    for note in result.notes:
        print(f"note: {note}")
    print(print_metrics_table(result.metrics))
    print(f"report: {report}")
    return 0


def _parity_exit(report, what: str) -> int:
    for line in report.lines():
        print(line)
    if not report.ok:
        print(f"FAILED: {what}", file=sys.stderr)
        return 1
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from exporters.export import build_export, export_summary, write_export

    symbols = parse_symbols(args.symbols)
    if symbols is None:
        from marketdata import load

        symbols = load(args.source).symbols if args.source else None
    warmup = args.warmup
    if warmup is None:
        warmup = _measure_warmup(args, settings, symbols)
    spec, compiled = build_export(
        args.strategy,
        strategy_params(args),
        symbols or [],
        args.default_source,
        fill=args.fill,
        warmup=warmup,
        sources=[args.source.partition(":")[0]] if args.source else [],
        fitter=getattr(args, "fitter", None) or "prophet",
        universe=_universe_record(args, symbols or []),
    )
    module, requirements = write_export(compiled, args.out)
    print(export_summary(spec, compiled))
    print(f"wrote {module} and {requirements}")
    return 0


def _universe_record(args: argparse.Namespace, symbols: list[str]):
    """The point-in-time universe the export carries (every ticker's stays, so a live run
    knows today's members), or None for a plain list."""
    from marketdata.universe import parse_universe, universe_record

    spec = parse_universe(
        args.universe, args.source or args.default_source, args.symbols and symbols
    )
    if not spec.point_in_time:
        return None
    membership = spec.load(symbols)
    return universe_record(membership, membership.tickers)


def _measure_warmup(args: argparse.Namespace, settings: Settings, symbols) -> int:
    """Backtest on --source over --start/--end (default: its last year) and find the
    shortest replay window that decides as the backtest did (exporters.warmup)."""
    from backtests.runner import BacktestConfig, run_backtest
    from exporters.warmup import find_warmup
    from marketdata import load

    if not args.source:
        raise ValueError(
            "the export measures how many bars its replay needs on real data: give --source "
            "(the data you backtested on), or choose the length yourself with --warmup N"
        )
    # every bar before the measured year too: recursive indicators need a long past to show
    # how far back a replay must start
    data = load(args.source, symbols, None, args.end)
    start = args.start
    if start is None:
        import pandas as pd

        last = max(frame.index[-1] for frame in data.bars.values())
        start = (last - pd.Timedelta(days=365)).date().isoformat()
    config = BacktestConfig(
        strategy=args.strategy,
        params=strategy_params(args),
        source=args.source,
        symbols=symbols,
        start=start,
        end=args.end,
        fill=args.fill if args.fill != "market" else "open",
        universe=args.universe,
    )
    with open_forecaster(args, settings) as forecaster:
        result = run_backtest(
            config,
            forecaster=forecaster,
            market_data=data,
            progress=progress_bar(not args.quiet, "backtest"),
        )

        def say(line: str) -> None:
            print(line, file=sys.stderr)

        return find_warmup(result.strategy, result, forecaster=forecaster, say=say)


def cmd_verify_parity(args: argparse.Namespace, settings: Settings) -> int:
    from exporters.parity import verify_parity

    with open_forecaster(args, settings) as forecaster:
        report, _ = verify_parity(
            args.module,
            args.source,
            parse_symbols(args.symbols),
            args.start,
            args.end,
            forecaster=forecaster,
            progress=progress_bar(not args.quiet, "parity"),
        )
    return _parity_exit(report, "the module decides differently from the backtest")


def cmd_check_lookahead(args: argparse.Namespace, settings: Settings) -> int:
    from exporters.parity import check_lookahead

    config = backtest_config(args)
    with open_forecaster(args, settings) as forecaster:
        report, _ = check_lookahead(
            config, forecaster=forecaster, progress=progress_bar(not args.quiet, "lookahead")
        )
    return _parity_exit(
        report, "decisions change when later data is removed: the strategy looks ahead"
    )


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradeship",
        description="Research to production for Backtrader strategies: backtest, export, verify.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bt = sub.add_parser(
        "backtest",
        help="run a strategy over history and write metrics, orders, decisions and a report",
        description=(
            "Backtest a strategy. Writes in --out: metrics.json, equity.csv, orders.csv, "
            "decisions.csv (date,symbol,target_weight per rebalance), report.html (tearsheet: "
            "interactive charts, trade statistics, forecast skill), tearsheet.json, "
            "forecasts.csv (every forecast a decision read, with the return that followed) "
            "and PNG plots. "
            "Decisions for session t read bars through t-1 and fill at t's open."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_strategy_options(bt)
    add_data_options(bt, settings)
    bt.add_argument(
        "--cash",
        type=money("--cash", positive=True),
        default=100_000.0,
        help="starting cash (default 100000)",
    )
    bt.add_argument(
        "--commission",
        type=money("--commission"),
        default=0.0,
        help="commission as a fraction of traded value (Alpaca: 0)",
    )
    bt.add_argument(
        "--slippage",
        type=money("--slippage"),
        default=0.0,
        help="slippage as a fraction of price, against each fill at the open or the close, "
        "in full even past the bar's high/low (e.g. 0.0005)",
    )
    bt.add_argument(
        "--fill",
        choices=("open", "close"),
        default="open",
        help="fill orders at the decided session's open (default) or close",
    )
    bt.add_argument(
        "--fractional", action="store_true", help="trade fractional shares (default: whole)"
    )
    bt.add_argument(
        "--account",
        choices=("margin", "cash"),
        default="margin",
        help="margin (default, as Alpaca's paper accounts: a buy that a gap at the open makes "
        "cost more than the cash borrows up to 2x instead of being refused) or cash",
    )
    bt.add_argument(
        "--benchmark",
        default="equal-weight",
        metavar="SYMBOL|equal-weight",
        help="what the report compares with: equal-weight buy & hold of the universe "
        "(default) or one symbol bought and held, e.g. --benchmark SPY (loaded from --source "
        "when it is not in --symbols)",
    )
    bt.add_argument("--out", required=True, help="folder for the results")
    bt.add_argument("--quiet", action="store_true", help="no progress bar")
    add_forecast_options(bt)
    bt.set_defaults(func=cmd_backtest)

    ex = sub.add_parser(
        "export",
        help="compile a strategy into one standalone run() module (+ requirements.txt)",
        description=(
            "Write ONE Python file that imports nothing from tradeship: every module the "
            "strategy and run() need embedded verbatim, decide(history, holdings, now) (the "
            "Backtrader class replayed on the last WARMUP bars) and run(now, dry_run, source). "
            "requirements.txt is written beside it. Exports are byte-identical for the same "
            "source and parameters; anything that looks like a secret is refused."
        ),
        epilog="example:\n  tradeship export --strategy prophet_momentum --source demo "
        "--param top_n=5 --out build/strategy.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_strategy_options(ex)
    ex.add_argument(
        "--symbols", help="the universe, comma-separated (default: every symbol of --source)"
    )
    ex.add_argument("--source", help="take the universe from this source's symbols (e.g. demo)")
    ex.add_argument(
        "--default-source",
        default="yfinance",
        help="where run() loads data unless told otherwise (default yfinance)",
    )
    ex.add_argument(
        "--fill",
        choices=("open", "close", "market"),
        default="open",
        help="how run() trades, matching the backtest's fill: 'open' (market-on-open orders, "
        "sent before 09:28 New York), 'close' (market-on-close, before the close cut-off) or "
        "'market' (plain market orders when it runs: NOT the backtest's fill price)",
    )
    ex.add_argument(
        "--warmup",
        type=int,
        help="completed bars each decision replays (default: measured on --source: the "
        "shortest window that reproduces the backtest's decisions, plus 25%%)",
    )
    ex.add_argument("--start", help="first session of the measuring backtest (default: last year)")
    ex.add_argument("--end", help="last session of the measuring backtest")
    ex.add_argument("--universe", help=UNIVERSE_HELP)
    ex.add_argument("--quiet", action="store_true", help="no progress bars")
    add_forecast_options(ex)
    ex.add_argument("--out", required=True, help="FILE.py to write")
    ex.set_defaults(func=cmd_export)

    vp = sub.add_parser(
        "verify-parity",
        help="prove an exported module decides exactly what the backtest decided",
        description=(
            "Backtest the module's strategy, then for every rebalance date t call the module's "
            "decide() with data cut at t and the backtest's holdings at t. Prints "
            "'rebalances=N mismatches=M' and each mismatch; exits 1 when M > 0."
        ),
        epilog="example:\n  tradeship verify-parity --module build/strategy.py --source demo "
        "--start 2023-01-03 --end 2023-12-29",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vp.add_argument("--module", required=True, help="the exported FILE.py")
    add_data_options(vp, settings)
    vp.add_argument("--quiet", action="store_true", help="no progress bar")
    add_forecast_options(vp)
    vp.set_defaults(func=cmd_verify_parity)

    check = sub.add_parser("check", help="checks on a strategy (lookahead)")
    check_sub = check.add_subparsers(dest="check", required=True, metavar="CHECK")
    la = check_sub.add_parser(
        "lookahead",
        help="does any decision change when data after it is removed?",
        description=(
            "Run the backtest, then recompute every decision from data cut at its date "
            "(the strategy's prepare() included). Any difference means the strategy reads the "
            "future. Exits 1 when it does. Try it on "
            "examples.lookahead:PeekingMomentum."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_strategy_options(la)
    add_data_options(la, settings)
    la.add_argument("--quiet", action="store_true", help="no progress bar")
    add_forecast_options(la)
    la.set_defaults(func=cmd_check_lookahead)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings()
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    if os.getcwd() not in sys.path:  # --strategy package.module:Class is found from here,
        sys.path.insert(0, os.getcwd())  # as `python -m` finds modules
    try:
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
