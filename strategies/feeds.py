"""Backtrader data feeds built from the history frame: one feed per symbol, all aligned.

Every feed has the usual OHLCV lines plus three that tradeship's building blocks read, so a
strategy sees the same information in a backtest and in an exported module's replay:

- ``listed``: 1.0 from the symbol's first real bar on. Before it, the feed repeats that
  first bar (volume 0) so all feeds share one clock; nothing may trade or rank it there.
- ``member``: 1.0 when the symbol belongs to the universe on the session *after* this bar,
  the one that orders placed at this bar trade in (point-in-time index membership).
- ``next_session``: that session as a Backtrader date number (NaN when unknown, e.g. the
  last bar of a backtest).

Plain Backtrader strategies never need to know these lines exist.
"""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd

FEED_FIELDS = ("open", "high", "low", "close", "volume")


class HistoryData(bt.feeds.PandasData):
    """A PandasData with tradeship's extra lines (see the module docstring)."""

    lines = ("listed", "member", "next_session")
    params = (
        ("datetime", None),
        ("openinterest", None),
        ("listed", "listed"),
        ("member", "member"),
        ("next_session", "next_session"),
    )


def _following(index: pd.DatetimeIndex, after_last: pd.Timestamp | None) -> list:
    """For each bar, the session after it (None where unknown)."""
    return list(index[1:]) + [None if after_last is None else pd.Timestamp(after_last)]


def _session_numbers(following: list) -> np.ndarray:
    return np.array(
        [
            np.nan if day is None else bt.date2num(pd.Timestamp(day).to_pydatetime())
            for day in following
        ],
        dtype="float64",
    )


def feed_frame(
    history: pd.DataFrame,
    symbol: str,
    member: pd.Series | None,
    sessions: np.ndarray,
) -> pd.DataFrame:
    """One symbol's lines on the shared index (first bar repeated before the listing)."""
    frame = history.xs(symbol, axis=1, level="symbol")[list(FEED_FIELDS)]
    listed = frame["close"].notna().to_numpy(dtype="float64")
    frame = frame.bfill().fillna({"volume": 0.0})
    frame["listed"] = listed
    frame["member"] = 1.0 if member is None else member.to_numpy(dtype="float64")
    frame["next_session"] = sessions
    return frame


def history_feeds(
    history: pd.DataFrame,
    members: pd.DataFrame | None = None,
    after_last: pd.Timestamp | None = None,
) -> list[tuple[str, bt.feed.DataBase]]:
    """One feed per symbol of `history`, in symbol order.

    members: booleans (dates x symbols): membership of the universe ON each date; it must
    cover every session after the first bar (and `after_last`). None: always a member.
    after_last: the session after the last bar (a replay's decision session), if any.
    """
    following = _following(history.index, after_last)
    sessions = _session_numbers(following)
    symbols = sorted(history.columns.get_level_values("symbol").unique())
    ahead = None
    if members is not None:
        keys = pd.DatetimeIndex([pd.NaT if d is None else d for d in following])
        ahead = members.reindex(index=keys, columns=symbols).fillna(False).astype(bool)
        ahead.index = history.index
    feeds = []
    for symbol in symbols:
        member = None if ahead is None else ahead[symbol]
        feeds.append((symbol, HistoryData(dataname=feed_frame(history, symbol, member, sessions))))
    return feeds
