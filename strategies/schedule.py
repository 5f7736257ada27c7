"""When a strategy rebalances and when its forecasts are refit.

Both rules are pure functions of dates, so a backtest that starts in 2012 and a live run
that loaded only the last year of bars agree on every rebalance and refit date. Dates are
bucketed by weekday count since a fixed epoch: a holiday never shifts later buckets, and
the first session of each bucket is the one that acts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCHEDULE_EPOCH = np.datetime64("2000-01-03", "D")  # a Monday; buckets count weekdays from it


def weekday_bucket(day: pd.Timestamp, every: int) -> int:
    """Index of the `every`-weekday bucket that `day` falls in."""
    if every < 1:
        raise ValueError(f"the interval must be at least 1 bar, got {every}")
    offset = int(np.busday_count(SCHEDULE_EPOCH, np.datetime64(pd.Timestamp(day).date(), "D")))
    return offset // every


def is_first_of_bucket(
    session: pd.Timestamp, previous_bar: pd.Timestamp | None, every: int
) -> bool:
    """True when `session` opens a new bucket: the session after `previous_bar` acts."""
    if previous_bar is None:
        return True
    return weekday_bucket(session, every) != weekday_bucket(previous_bar, every)


def refit_end(bar_dates: pd.DatetimeIndex, session: pd.Timestamp, every: int) -> pd.Timestamp:
    """The last bar a forecast for `session` may be fitted on.

    Forecasts are refit once per `every`-weekday bucket: every decision in the bucket of
    `session` uses the fit on the last bar before that bucket began, so with ``every=1``
    it is simply the last completed bar.
    """
    current = weekday_bucket(session, every)
    days = np.asarray(bar_dates.values.astype("datetime64[D]"))
    buckets = np.busday_count(SCHEDULE_EPOCH, days) // every
    earlier = np.flatnonzero(buckets < current)
    if earlier.size == 0:
        raise ValueError(f"no bar before the refit bucket of {pd.Timestamp(session).date()}")
    return pd.Timestamp(bar_dates[earlier[-1]])
