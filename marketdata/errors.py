"""The one exception type of marketdata, so callers can catch bad data separately from bugs."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing market data; the message names the symbol (and file or date).

    ``symbols`` lists the affected symbols when the error concerns several
    (e.g. a yfinance answer missing some tickers), so callers can act on them.
    """

    def __init__(self, message: str, *, symbols: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.symbols: tuple[str, ...] = tuple(symbols)
