"""Market data for tradeship: one ``load()`` for demo, Parquet, CSV and yfinance sources.

Bars are validated (see marketdata.validate) and adjusted for splits and
dividends (yfinance ``auto_adjust=True`` convention) on NYSE sessions.
"""

import importlib
from typing import Any

from marketdata.calendar import is_session, nyse_sessions, previous_session
from marketdata.errors import DataError
from marketdata.load import MarketData, load, parse_source

# Imported on first use (PEP 562), so a module importing marketdata.load does not drag them
# into an export that never calls them: the exporter embeds only what is imported.
_LAZY = {
    "Membership": "marketdata.universe",
    "UniverseSpec": "marketdata.universe",
    "coverage": "marketdata.universe",
    "coverage_sentence": "marketdata.universe",
    "demo_sectors": "marketdata.demo",
    "load_membership": "marketdata.universe",
    "parse_universe": "marketdata.universe",
}

__all__ = [
    "DataError",
    "MarketData",
    "Membership",
    "UniverseSpec",
    "coverage",
    "coverage_sentence",
    "demo_sectors",
    "is_session",
    "load",
    "load_membership",
    "nyse_sessions",
    "parse_source",
    "parse_universe",
    "previous_session",
]
# A user's own package named like this one (marketdata.mine) merges into it.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)


def __getattr__(name: str) -> Any:
    """The names of `_LAZY`, imported from their module on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'marketdata' has no attribute {name!r}")
