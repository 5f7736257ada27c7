"""Backtrader data feeds built from the history frame: one feed per symbol, all aligned.

Every feed has the usual OHLCV lines plus three that tradeship's building blocks read, so a
strategy sees the same information in a backtest and in an exported module's replay:

- ``listed``: 1.0 from the symbol's first real bar on. Before it, the feed repeats that
  first bar (its volume too) so all feeds share one clock; nothing may trade or rank it there.
- ``member``: 1.0 when the symbol belongs to the universe on the session *after* this bar,
  the one that orders placed at this bar trade in (point-in-time index membership).
- ``next_session``: that session as a Backtrader date number (NaN when unknown, e.g. the
  last bar of a backtest).

Plain Backtrader strategies never need to know these lines exist.

Speed: `HistoryData` fills its lines from numpy arrays in one step when Cerebro preloads
(Backtrader's PandasData reads one cell at a time through ``.iloc``: ~70 % of a 504-symbol
backtest's time), and the arrays of all symbols are cut from the history frame at once.
The values are exactly PandasData's (tests/test_feeds.py compares every line).
"""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd

FEED_FIELDS = ("open", "high", "low", "close", "volume")
EXTRA_LINES = ("listed", "member", "next_session")


class HistoryData(bt.feed.DataBase):
    """A feed over prepared arrays: ``columns`` maps a line name (datetime as Backtrader
    date numbers, the OHLCV fields, the extra lines) to a float64 array, one value per bar.
    Lines without an array (openinterest) stay NaN, as PandasData leaves them.
    """

    lines = EXTRA_LINES
    params = (("columns", None),)

    def start(self) -> None:
        super().start()
        self._row = -1

    def _arrays(self) -> list[tuple[object, np.ndarray]]:
        columns = self.p.columns
        return [
            (getattr(self.lines, alias), columns[alias])
            for alias in self.getlinealiases()
            if alias in columns
        ]

    def preload(self) -> None:
        """All bars at once: each line's buffer is extended by its whole array."""
        size = len(self.p.columns["datetime"])
        filled = {id(line) for line, _ in self._arrays()}
        for line, values in self._arrays():
            line.array.frombytes(np.ascontiguousarray(values, dtype="float64").tobytes())
        for alias in self.getlinealiases():
            line = getattr(self.lines, alias)
            if id(line) not in filled:
                line.array.frombytes(np.full(size, np.nan).tobytes())
        self._row = size - 1  # every bar is in: a later load() finds none
        self._last()
        self.home()

    def _load(self) -> bool:
        """One bar (Cerebro without preload)."""
        self._row += 1
        if self._row >= len(self.p.columns["datetime"]):
            return False
        for line, values in self._arrays():
            line[0] = float(values[self._row])
        return True


def _following(index: pd.DatetimeIndex, after_last: pd.Timestamp | None) -> list:
    """For each bar, the session after it (None where unknown)."""
    return list(index[1:]) + [None if after_last is None else pd.Timestamp(after_last)]


def _date_numbers(days) -> np.ndarray:
    """Backtrader date numbers of `days` (None: NaN), as PandasData computes them."""
    return np.array(
        [np.nan if day is None else bt.date2num(pd.Timestamp(day).to_pydatetime()) for day in days],
        dtype="float64",
    )


def feed_columns(
    history: pd.DataFrame,
    members: pd.DataFrame | None = None,
    after_last: pd.Timestamp | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Every symbol's line arrays (see `HistoryData`), in symbol order, cut in one step.

    Before a symbol's first bar its fields repeat that bar: a backward fill of each column,
    as the per-symbol frames of old had (volume included: 0 only where no bar follows).
    """
    following = _following(history.index, after_last)
    sessions = _date_numbers(following)
    dates = _date_numbers(history.index)
    symbols = sorted(history.columns.get_level_values("symbol").unique())
    fields = {}
    for name in FEED_FIELDS:
        frame = history[name].reindex(columns=symbols)
        if name == "close":
            listed = frame.notna().to_numpy(dtype="float64").T
        frame = frame.bfill()
        if name == "volume":
            frame = frame.fillna(0.0)
        fields[name] = np.ascontiguousarray(frame.to_numpy(dtype="float64").T)
    member = None
    if members is not None:
        keys = pd.DatetimeIndex([pd.NaT if d is None else d for d in following])
        ahead = members.reindex(index=keys, columns=symbols).fillna(False).astype(bool)
        member = np.ascontiguousarray(ahead.to_numpy(dtype="float64").T)
    always = np.ones(len(history.index), dtype="float64")
    out = {}
    for position, symbol in enumerate(symbols):
        columns = {"datetime": dates}
        columns.update({name: fields[name][position] for name in FEED_FIELDS})
        columns["listed"] = listed[position]
        columns["member"] = always if member is None else member[position]
        columns["next_session"] = sessions
        out[symbol] = columns
    return out


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
    columns = feed_columns(history, members, after_last)
    return [(symbol, HistoryData(columns=lines)) for symbol, lines in columns.items()]
