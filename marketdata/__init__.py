"""Market data for tradeship: one ``load()`` for demo, Parquet, CSV and yfinance sources.

Bars are validated (see marketdata.validate) and adjusted for splits and
dividends (yfinance ``auto_adjust=True`` convention) on NYSE sessions.
"""

from marketdata.calendar import is_session, nyse_sessions, previous_session
from marketdata.demo import demo_sectors
from marketdata.errors import DataError
from marketdata.load import MarketData, load, parse_source
from marketdata.universe import (
    Membership,
    UniverseSpec,
    coverage,
    coverage_sentence,
    load_membership,
    parse_universe,
)

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
