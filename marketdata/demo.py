"""Built-in synthetic universe: offline, deterministic, fast.

Why: tests, notebooks and CI need realistic-looking data without a network or
the shared S&P files. 120 symbols ``SYN000``..``SYN119`` in 10 sectors over the
fixed NYSE sessions 2012-01-03 .. 2024-12-31 (never relative to today).

Model, per symbol, daily log return = drift + vol * (market + sector +
idiosyncratic shocks, with random variance shares) + rare jumps:
annual drift 0-15 %, annual vol 15-45 %, ~1.5 jumps a year.
Open gaps from the previous close; high/low extend beyond open/close;
volume is log-normal and rises on big moves. Everything comes from one
``numpy.random.default_rng(DEMO_SEED)`` stream, so bytes are identical every run
and a subset of symbols equals the same symbols of the full universe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketdata.calendar import nyse_sessions

DEMO_SEED = 20240601
DEMO_FIRST_SESSION = "2012-01-03"
DEMO_LAST_SESSION = "2024-12-31"
DEMO_SYMBOL_COUNT = 120
DEMO_SECTOR_NAMES = (
    "Syn Energy",
    "Syn Materials",
    "Syn Industrials",
    "Syn Consumer Discretionary",
    "Syn Consumer Staples",
    "Syn Health Care",
    "Syn Financials",
    "Syn Technology",
    "Syn Communication",
    "Syn Utilities",
)


def demo_symbols() -> list[str]:
    """The demo universe's symbols, sorted."""
    return [f"SYN{i:03d}" for i in range(DEMO_SYMBOL_COUNT)]


def demo_sectors() -> dict[str, str]:
    """Symbol -> synthetic sector name (12 symbols per sector, interleaved)."""
    n_sec = len(DEMO_SECTOR_NAMES)
    return {sym: DEMO_SECTOR_NAMES[i % n_sec] for i, sym in enumerate(demo_symbols())}


def demo_bars() -> dict[str, pd.DataFrame]:
    """Generate the whole demo universe: symbol -> OHLCV frame (already adjusted)."""
    rng = np.random.default_rng(DEMO_SEED)
    sessions = nyse_sessions(DEMO_FIRST_SESSION, DEMO_LAST_SESSION)
    n_days, n_sym, n_sec = len(sessions), DEMO_SYMBOL_COUNT, len(DEMO_SECTOR_NAMES)
    sector_of = np.arange(n_sym) % n_sec

    ann_vol = rng.uniform(0.15, 0.40, n_sym)  # jumps add the rest, up to ~45 %
    ann_ret = rng.uniform(0.0, 0.15, n_sym)
    share_mkt = rng.uniform(0.20, 0.40, n_sym)
    share_sec = rng.uniform(0.15, 0.30, n_sym)
    share_idio = 1.0 - share_mkt - share_sec
    start_price = np.exp(rng.uniform(np.log(15.0), np.log(250.0), n_sym))
    base_volume = np.exp(rng.uniform(np.log(2e5), np.log(2e7), n_sym))

    # Demeaned factors: the realised market path then has the designed drift
    # instead of whatever a single random draw gives over 13 years.
    z_mkt = rng.standard_normal(n_days)
    z_mkt -= z_mkt.mean()
    z_sec = rng.standard_normal((n_days, n_sec))
    z_sec -= z_sec.mean(axis=0)
    z_idio = rng.standard_normal((n_days, n_sym))
    shock = (
        np.sqrt(share_mkt) * z_mkt[:, None]
        + np.sqrt(share_sec) * z_sec[:, sector_of]
        + np.sqrt(share_idio) * z_idio
    )
    jump_hit = rng.random((n_days, n_sym)) < 1.5 / 252.0
    jump_size = rng.normal(0.0, 0.06, (n_days, n_sym))
    day_vol = ann_vol / np.sqrt(252.0)
    drift = ann_ret / 252.0  # log drift: median growth 0-15 % a year
    log_ret = drift + day_vol * shock + np.where(jump_hit, jump_size, 0.0)

    close = start_price * np.exp(np.cumsum(log_ret, axis=0))
    prev_close = np.vstack([start_price[None, :], close[:-1]])
    gap = 0.25 * day_vol * rng.standard_normal((n_days, n_sym))
    opn = prev_close * np.exp(gap)
    wick_up = np.abs(rng.standard_normal((n_days, n_sym))) * 0.4 * day_vol
    wick_dn = np.abs(rng.standard_normal((n_days, n_sym))) * 0.4 * day_vol
    high = np.maximum(opn, close) * np.exp(wick_up)
    low = np.minimum(opn, close) * np.exp(-wick_dn)
    surprise = np.abs(log_ret - drift) / day_vol
    volume = np.rint(
        base_volume
        * np.exp(0.3 * rng.standard_normal((n_days, n_sym)) + 0.25 * np.minimum(surprise, 6.0))
    )
    volume = np.maximum(volume, 1.0)

    index = pd.DatetimeIndex(sessions, name="date")
    bars: dict[str, pd.DataFrame] = {}
    for j, sym in enumerate(demo_symbols()):
        bars[sym] = pd.DataFrame(
            {
                "open": opn[:, j],
                "high": high[:, j],
                "low": low[:, j],
                "close": close[:, j],
                "volume": volume[:, j],
            },
            index=index.copy(),
        )
    return bars
