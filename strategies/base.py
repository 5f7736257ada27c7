"""The strategy contract: a decision is a pure function of point-in-time data and holdings.

A strategy sees `history` (completed daily bars strictly before the session it decides for,
as a DataFrame with (field, symbol) columns: ``history["close"]`` is dates x symbols) and
`holdings` (symbol -> current portfolio weight), and returns target weights for the session,
or None to leave the portfolio alone. Backtrader drives it in backtests; an exported `run()`
drives it live; both call the same `decide`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd

WEIGHT_TOLERANCE = 1e-9
_NOT_PREPARED = object()


class LookaheadError(RuntimeError):
    """History handed to a decision reaches into the session being decided."""


def decision_session(now: Any) -> pd.Timestamp:
    """The session date a decision at `now` is for (midnight, no time zone)."""
    stamp = pd.Timestamp(now)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("America/New_York").tz_localize(None)
    return stamp.normalize()


class Strategy:
    """Base class: subclasses set `name` and `Params` and implement `targets`.

    `prepare` may precompute vectorised state from the history a driver holds (the whole
    backtest range, or the truncated live history); it must be causal, which
    `tradeship check lookahead` verifies.
    """

    name: ClassVar[str] = "strategy"
    Params: ClassVar[type] = type(None)
    # When a deployment runs it, New York time: "daily at HH:MM" or "every N min".
    schedule: ClassVar[str] = "daily at 15:00"

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        if params is None:
            params = self.Params()
        elif isinstance(params, Mapping):
            params = self.Params(**dict(params))
        if overrides:
            params = dataclasses.replace(params, **overrides)
        self.params = params

    def warmup_bars(self) -> int:
        """Completed bars a decision needs before the session it decides for."""
        return 1

    def is_rebalance(self, session: pd.Timestamp, previous_bar: pd.Timestamp | None) -> bool:
        """Whether the decision for `session` may trade (default: every session)."""
        return True

    def prepare(self, history: pd.DataFrame) -> Any:
        """Vectorised precomputation over `history`; must not look past each row's date."""
        return None

    def targets(
        self,
        history: pd.DataFrame,
        holdings: Mapping[str, float],
        session: pd.Timestamp,
        state: Any,
    ) -> Mapping[str, float] | None:
        raise NotImplementedError

    def decide(
        self,
        history: pd.DataFrame,
        holdings: Mapping[str, float],
        now: Any,
        state: Any = _NOT_PREPARED,
    ) -> dict[str, float] | None:
        """Target weights for the session of `now`, or None when this is no rebalance."""
        session = decision_session(now)
        if len(history.index) and pd.Timestamp(history.index[-1]) >= session:
            raise LookaheadError(
                f"history ends {pd.Timestamp(history.index[-1]).date()}, but a decision for "
                f"{session.date()} may only read bars before it"
            )
        previous = pd.Timestamp(history.index[-1]) if len(history.index) else None
        if not self.is_rebalance(session, previous):
            return None
        if state is _NOT_PREPARED:
            state = self.prepare(history)
        held = {s: float(w) for s, w in holdings.items() if abs(float(w)) > WEIGHT_TOLERANCE}
        chosen = self.targets(history, held, session, state)
        if chosen is None:
            return None
        return normalise_weights(chosen)


def normalise_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Sorted, non-negative weights summing to at most 1 (long-only strategies)."""
    cleaned = {str(s): float(w) for s, w in weights.items()}
    negative = sorted(s for s, w in cleaned.items() if w < 0)
    if negative:
        raise ValueError(f"negative target weights for {', '.join(negative)}: long-only")
    total = sum(cleaned.values())
    if total > 1.0 + 1e-6:
        raise ValueError(f"target weights sum to {total:.6f} > 1")
    return {s: cleaned[s] for s in sorted(cleaned)}
