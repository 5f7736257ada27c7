"""Split/dividend adjustment to the yfinance ``auto_adjust=True`` convention.

Why: raw OHLC jump on split days (AAPL 2000-06-21: 101.25 -> 55.63); a backtest
on raw prices would see a fake -45% day. Prices are scaled by
``factor = adj_close / close`` per row, so close becomes the adjusted close and
open/high/low keep their ratios to it. Volume is scaled by splits only (the
product of later split coefficients), like Yahoo's volume, so price * volume
stays a meaningful dollar volume across splits; dividends do not change volume.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BAR_COLUMNS = ("open", "high", "low", "close", "volume")


def adjust_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the contract frame (float64 open/high/low/close/volume) from validated bars.

    ``frame`` must already be validated (sorted, unique, positive). Without an
    ``adj_close`` column prices are taken as already adjusted; without a
    ``split`` column volume is left unchanged.
    """
    close = frame["close"].to_numpy(dtype="float64")
    if "adj_close" in frame.columns:
        adj_close = frame["adj_close"].to_numpy(dtype="float64")
        factor = adj_close / close
    else:
        adj_close = close
        factor = np.ones_like(close)
    volume = frame["volume"].to_numpy(dtype="float64")
    if "split" in frame.columns:
        split = frame["split"].to_numpy(dtype="float64")
        # Product of the coefficients of splits strictly AFTER each row.
        later = np.cumprod(split[::-1])[::-1] / split
        volume = volume * later
    out = pd.DataFrame(
        {
            "open": frame["open"].to_numpy(dtype="float64") * factor,
            "high": frame["high"].to_numpy(dtype="float64") * factor,
            "low": frame["low"].to_numpy(dtype="float64") * factor,
            "close": adj_close.copy(),
            "volume": volume,
        },
        index=pd.DatetimeIndex(frame.index, name="date"),
    )
    # Multiplying by a float factor can push open/close a hair outside [low, high].
    out["high"] = np.maximum(out["high"].to_numpy(), out[["open", "close"]].max(axis=1).to_numpy())
    out["low"] = np.minimum(out["low"].to_numpy(), out[["open", "close"]].min(axis=1).to_numpy())
    return out
