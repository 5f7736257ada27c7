"""`tradeship cache info|clear`: the on-disk forecast cache and loaded-data cache."""

from __future__ import annotations

import argparse
import json

from tradeship.settings import Settings

HELP = """\
Two caches, both keyed by everything that determines what they hold, so neither ever needs
invalidating by hand:

- forecasts: one entry per Prophet forecast, keyed by the symbol, the exact window of
  prices (hashed), the target date, every Prophet setting including the fitter
  (prophet or fast) and the versions of what fits.
  Location: $TRADESHIP_CACHE_DIR/forecasts (default ~/.cache/tradeship/forecasts).
- data: one entry per load of bars (validated and adjusted), keyed by the source's
  content (Parquet file or CSV files), the symbols, the date range and the loader's code.
  yfinance loads are not cached here. Location: $TRADESHIP_CACHE_DIR/data.

Backtests, sweeps, notebooks and verify-parity share them.
"""


def cmd_cache(args: argparse.Namespace, settings: Settings) -> int:
    from backtests.forecast_cache import ForecastCache
    from marketdata.cache import DataCache

    forecasts = ForecastCache(settings.cache_dir / "forecasts")
    data = DataCache(settings.cache_dir / "data")
    if args.action == "clear":
        print(f"removed {forecasts.clear()} cached forecasts from {forecasts.root}")
        print(f"removed {data.clear()} cached data loads from {data.root}")
    else:
        print(json.dumps({"forecasts": forecasts.info(), "data": data.info()}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    parser = sub.add_parser(
        "cache",
        help="show or clear the forecast and loaded-data caches",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action", choices=("info", "clear"), help="info: size and place; clear: empty them"
    )
    parser.set_defaults(func=cmd_cache)
