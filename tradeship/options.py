"""Options and helpers every `tradeship` command shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from tradeship.settings import Settings

SOURCE_HELP = (
    "market data: 'demo' (built-in synthetic universe, offline), 'yfinance', "
    "'parquet:PATH' (long table: symbol,date,open,...,adjusted_close,...) or "
    "'csv:DIR' (one CSV per symbol, Yahoo or raw_samples layout)"
)


def parse_symbols(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [s.strip().upper() for s in text.split(",") if s.strip()]


def progress_bar(enabled: bool, label: str) -> Callable[[int], Callable[[], None]] | None:
    if not enabled:
        return None

    def start(total: int) -> Callable[[], None]:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=label, unit="bar", leave=False, file=sys.stderr)

        def tick() -> None:
            bar.update(1)
            if bar.n >= total:
                bar.close()

        return tick

    return start


def add_data_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument("--source", default=settings.source, help=SOURCE_HELP)
    parser.add_argument("--symbols", help="comma-separated symbols (default: all the source has)")
    parser.add_argument(
        "--start", help="first session to trade, YYYY-MM-DD (warm-up is loaded before it)"
    )
    parser.add_argument("--end", help="last session, YYYY-MM-DD")
    parser.add_argument("--universe", help=UNIVERSE_HELP)


UNIVERSE_HELP = (
    "who may be picked on each session: 'membership:PATH' (point-in-time index membership, "
    "ticker,start_date,end_date), 'symbols:A,B,C' or 'all' (every symbol of --source on every "
    "session). Default: point-in-time on the shared S&P 500 file when "
    "sp500_membership.csv sits beside it, a plain list with --symbols, else all"
)


def add_strategy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategy",
        required=True,
        help="prophet_momentum, buy_and_hold, or your own as package.module:ClassName",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy parameter, repeatable (e.g. --param top_n=5)",
    )
    parser.add_argument(
        "--params", metavar="FILE.json", help="strategy parameters as a JSON object"
    )


def strategy_params(args: argparse.Namespace) -> dict:
    from strategies.registry import load_params_file

    params: dict = load_params_file(args.params) if getattr(args, "params", None) else {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--param takes KEY=VALUE, got {item!r}")
        params[key.strip()] = value
    return params


def add_forecast_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes fitting Prophet forecasts in parallel (default: all cores; "
        "TRADESHIP_WORKERS)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or write the forecast cache (see `tradeship cache info`)",
    )
    add_fitter_option(parser)


def add_fitter_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fitter",
        choices=("prophet", "fast"),
        default=None,
        help="who fits Prophet's model: 'prophet' (Prophet and cmdstan, the default) or "
        "'fast' (the same model fitted in-process, no cmdstan; see strategies/fast_prophet.py)",
    )


def open_forecaster(args: argparse.Namespace, settings: Settings):
    """The backtest forecaster: cached on disk, fitting misses in parallel. Close it after."""
    from backtests.forecast_cache import ForecastCache
    from backtests.forecasting import FastForecaster

    cache = None if args.no_cache else ForecastCache(settings.cache_dir / "forecasts")
    workers = args.workers if args.workers is not None else (settings.workers or None)
    progress = None
    if not getattr(args, "quiet", False):
        from tqdm import tqdm

        progress = tqdm(unit="fit", desc="prophet fits", leave=False, file=sys.stderr, delay=1.0)
    return FastForecaster(
        cache=cache, workers=workers, progress=progress, fitter=getattr(args, "fitter", None)
    )


def money(name: str, *, positive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number >= 0 (> 0 with `positive`), named in the error."""

    def parse(text: str) -> float:
        from backtests.broker import require_non_negative

        try:
            return require_non_negative(name, text, positive=positive)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def check_date_range(start: str | None, end: str | None) -> None:
    """--start after --end is an error naming the dates as the user typed them."""
    if not (start and end):
        return
    import pandas as pd

    try:
        first, last = pd.Timestamp(start), pd.Timestamp(end)
    except ValueError:
        raise ValueError(f"--start {start!r} / --end {end!r}: use YYYY-MM-DD dates") from None
    if first > last:
        raise ValueError(f"--start {start} is after --end {end}: swap them")


def backtest_config(args: argparse.Namespace, **extra):
    """A BacktestConfig from the strategy and data options every command shares."""
    from backtests.runner import BacktestConfig

    check_date_range(args.start, args.end)
    return BacktestConfig(
        strategy=args.strategy,
        params=strategy_params(args),
        source=args.source,
        symbols=parse_symbols(args.symbols),
        start=args.start,
        end=args.end,
        universe=getattr(args, "universe", None),
        **extra,
    )
