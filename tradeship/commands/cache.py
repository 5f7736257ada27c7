"""`tradeship cache info|clear`: the on-disk Prophet forecast cache."""

from __future__ import annotations

import argparse
import json

from tradeship.settings import Settings

HELP = """\
Forecasts are cached on disk, keyed by everything that determines them: the symbol, the
exact window of prices (hashed), the target date, every Prophet setting and the Prophet
and cmdstanpy versions. Backtests, sweeps, notebooks and verify-parity share it; any change
to data or settings is a different key, so the cache never needs invalidating by hand.
Location: $TRADESHIP_CACHE_DIR/forecasts (default ~/.cache/tradeship/forecasts).
"""


def cmd_cache(args: argparse.Namespace, settings: Settings) -> int:
    from backtests.forecast_cache import ForecastCache

    cache = ForecastCache(settings.cache_dir / "forecasts")
    if args.action == "clear":
        print(f"removed {cache.clear()} cached forecasts from {cache.root}")
    else:
        print(json.dumps(cache.info(), indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction, settings: Settings) -> None:
    parser = sub.add_parser(
        "cache",
        help="show or clear the Prophet forecast cache",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action", choices=("info", "clear"), help="info: size and place; clear: empty it"
    )
    parser.set_defaults(func=cmd_cache)
