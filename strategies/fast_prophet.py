"""Prophet's model fitted in-process: the same MAP as `prophet.Prophet.fit`, no cmdstan.

Why: a Prophet fit spends most of its time outside the model (a cmdstan process, files,
pandas). For the settings tradeship uses the model is small, so a backtest of the whole
S&P 500 need not wait on cmdstan, and a bundle need not ship it.

The model is Prophet's (prophet/stan_model/prophet.stan, Prophet 1.1-1.5 defaults):

* ``y / y_scale`` with ``y_scale = max|y|`` ("absmax" scaling, floor 0), time
  ``t = (ds - start) / (end - start)``;
* linear trend ``(k + A delta) t + (m - A (t_change * delta))`` with Prophet's changepoint
  grid: 25 changepoints (fewer on short windows) on the first 80 % of the rows;
* priors ``k, m ~ N(0, 5)``, ``delta ~ Laplace(0, changepoint_prior_scale)``,
  ``sigma_obs ~ N(0, 0.5)``, seasonal ``beta ~ N(0, 10)``;
* optional weekly (order 3) and yearly (order 10) Fourier seasonalities, additive
  (multiplicative seasonality is left to fitter "prophet").

The optimizer is Stan's L-BFGS as CmdStan runs it for Prophet (same initial point, line
search, history, tolerances), ported step by step. Not the exact MAP on purpose: the
Laplace prior makes the objective non-smooth at delta = 0, Stan stops where its path
stops, and the exact optimum differs from Prophet's forecast by more than 0.5 % on ~1 in 4
windows. Stan's stopping point also depends on rounding, so agreement is statistical
(benchmarks/fast_prophet_acceptance.py measures it, and Prophet against itself).

Windows of one shape are fitted as one batch in lockstep (`fit_many`): numpy's per-call
cost is paid once per step of the batch. Deterministic, no global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FAST_FIT_VERSION = "1"  # bump when a fitted value can change: it is part of cache keys

N_CHANGEPOINTS = 25
CHANGEPOINT_RANGE = 0.8
TREND_PRIOR_SD = 5.0  # k ~ N(0, 5), m ~ N(0, 5)
SIGMA_PRIOR_SD = 0.5  # sigma_obs ~ N(0, 0.5)
SEASONALITY_PRIOR_SCALE = 10.0
WEEKLY = (7.0, 3)  # (period in days, Fourier order): Prophet's defaults
YEARLY = (365.25, 10)
NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class FastFit:
    """A fitted model: everything `predict` needs, in Prophet's own parametrisation."""

    start_ns: int
    t_scale_ns: int
    y_scale: float
    changepoints_t: np.ndarray
    k: float
    m: float
    delta: np.ndarray
    beta: np.ndarray
    sigma_obs: float
    seasonalities: tuple[tuple[float, int], ...]

    def predict(self, dates_ns: np.ndarray) -> np.ndarray:
        """yhat at each date (int64 ns, wall clock), as `Prophet.predict` computes it."""
        dates = np.asarray(dates_ns, dtype="int64")
        t = (dates - self.start_ns).astype("float64") / float(self.t_scale_ns)
        trend = self.k * t + self.m
        for change, delta in zip(self.changepoints_t, self.delta, strict=True):
            trend = trend + np.where(t >= change, delta * (t - change), 0.0)
        seasonal = _fourier(dates, self.seasonalities) @ self.beta if self.beta.size else 0.0
        return (trend + seasonal) * self.y_scale


def seasonality_orders(weekly: bool | int, yearly: bool | int) -> tuple[tuple[float, int], ...]:
    """(period, order) of each enabled seasonality, in Prophet's column order (yearly first).

    True means Prophet's default order, False none, an int that order (as in Prophet).
    """
    out = []
    for arg, (period, default) in ((yearly, YEARLY), (weekly, WEEKLY)):
        order = default if arg is True else 0 if arg is False else int(arg)
        if order < 0:
            raise ValueError(f"a seasonality order must be >= 0, got {arg!r}")
        if order:
            out.append((period, order))
    return tuple(out)


def _fourier(dates_ns: np.ndarray, seasonalities: tuple[tuple[float, int], ...]) -> np.ndarray:
    """Prophet's Fourier features (sin, cos per order) of days since the epoch."""
    days = np.asarray(dates_ns, dtype="int64") / NS_PER_DAY
    columns = []
    for period, order in seasonalities:
        for i in range(order):
            angle = (i + 1) / period * (2 * np.pi * days)
            columns += [np.sin(angle), np.cos(angle)]
    if not columns:
        return np.zeros((days.size, 0))
    return np.column_stack(columns)


def changepoint_grid(t: np.ndarray) -> np.ndarray:
    """Prophet's changepoint times for a history at scaled times `t` (sorted).

    A history too short for any changepoint gets Prophet's dummy changepoint at t=0.
    """
    hist_size = int(np.floor(t.size * CHANGEPOINT_RANGE))
    n = min(N_CHANGEPOINTS, hist_size - 1)
    if n <= 0:
        return np.zeros(1)
    indexes = np.linspace(0, hist_size - 1, n + 1).round().astype(int)
    return np.sort(t[indexes[1:]])


@dataclass(frozen=True)
class FitRequest:
    """One fit: prices at dates (int64 ns, wall clock) and the model's settings."""

    dates_ns: np.ndarray
    values: np.ndarray
    changepoint_prior_scale: float = 0.05
    weekly_seasonality: bool | int = False
    yearly_seasonality: bool | int = False
    seasonality_mode: str = "additive"


@dataclass
class _Problem:
    """A fit prepared for the optimizer (or already solved, for a constant series)."""

    start: int
    t_scale: int
    y_scale: float
    changepoints: np.ndarray
    seasonalities: tuple[tuple[float, int], ...]
    t: np.ndarray | None = None
    cp_rows: np.ndarray | None = None
    seasonal: np.ndarray | None = None
    y: np.ndarray | None = None
    x0: np.ndarray | None = None
    tau: float = 0.05
    solved: FastFit | None = None


def _prepare(request: FitRequest) -> _Problem:
    dates = np.asarray(request.dates_ns, dtype="int64")
    y = np.asarray(request.values, dtype="float64")
    if dates.shape != y.shape or y.ndim != 1:
        raise ValueError("dates and values must be 1-d arrays of the same length")
    if y.size < 2 or not np.all(np.isfinite(y)):
        raise ValueError(f"cannot fit a forecast on {y.size} bars with missing prices")
    if np.any(np.diff(dates) <= 0):
        raise ValueError("dates must be strictly increasing")
    tau = float(request.changepoint_prior_scale)
    if not tau > 0:
        raise ValueError(f"changepoint_prior_scale must be > 0, got {tau}")
    seasonalities = seasonality_orders(request.weekly_seasonality, request.yearly_seasonality)
    if seasonalities and request.seasonality_mode != "additive":
        raise ValueError(
            f"fitter 'fast' fits additive seasonality only, not {request.seasonality_mode!r}; "
            "use fitter 'prophet' for it"
        )
    start, t_scale = int(dates[0]), int(dates[-1] - dates[0])
    t = (dates - start).astype("float64") / float(t_scale)
    y_scale = float(np.max(np.abs(y))) or 1.0
    changepoints = changepoint_grid(t)
    seasonal = _fourier(dates, seasonalities)
    problem = _Problem(start, t_scale, y_scale, changepoints, seasonalities, tau=tau)
    if np.all(y == y[0]):  # Prophet skips the optimizer here and keeps its initial values
        problem.solved = FastFit(
            start, t_scale, y_scale, changepoints, 0.0, float(y[0] / y_scale),
            np.zeros(changepoints.size), np.zeros(seasonal.shape[1]), 1e-9, seasonalities,
        )  # fmt: skip
        return problem
    problem.t = t
    problem.cp_rows = np.searchsorted(t, changepoints)  # changepoints are rows' times
    problem.seasonal = seasonal
    problem.y = y / y_scale
    k0 = (problem.y[-1] - problem.y[0]) / (t[-1] - t[0])  # Prophet's linear_growth_init
    problem.x0 = np.concatenate(
        [[k0, problem.y[0] - k0 * t[0]], np.zeros(changepoints.size + seasonal.shape[1]), [0.0]]
    )
    return problem


def fit_many(requests: list[FitRequest]) -> list[FastFit]:
    """The fits of `requests`, in order: problems of one shape are solved as one batch.

    A fit's result does not depend on what it is batched with.
    """
    problems = [_prepare(r) for r in requests]
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, problem in enumerate(problems):
        if problem.solved is None:
            shape = (problem.t.size, problem.changepoints.size, problem.seasonal.shape[1])
            groups.setdefault(shape, []).append(position)
    for (_, n_cp, _), positions in groups.items():
        chosen = [problems[i] for i in positions]
        objective = _Objective(
            np.stack([p.t for p in chosen]),
            np.stack([p.cp_rows for p in chosen]),
            np.stack([p.seasonal for p in chosen]),
            np.stack([p.y for p in chosen]),
            np.array([p.tau for p in chosen]),
        )
        xs = _stan_lbfgs(objective, np.stack([p.x0 for p in chosen]))
        for problem, x in zip(chosen, xs, strict=True):
            problem.solved = FastFit(
                problem.start, problem.t_scale, problem.y_scale, problem.changepoints,
                float(x[0]), float(x[1]), x[2 : 2 + n_cp].copy(), x[2 + n_cp : -1].copy(),
                math.exp(float(x[-1])), problem.seasonalities,
            )  # fmt: skip
    return [p.solved for p in problems]


def fit(dates_ns: np.ndarray, values: np.ndarray, **settings) -> FastFit:
    """The fit of one series (see `FitRequest` for the settings)."""
    return fit_many([FitRequest(dates_ns, values, **settings)])[0]


def forecast_many(requests: list[FitRequest], targets_ns: list[int]) -> list[float]:
    """yhat at each target, each fitted on its own request; fitted as batches."""
    models = fit_many(requests)
    return [
        float(model.predict(np.array([target], dtype="int64"))[0])
        for model, target in zip(models, targets_ns, strict=True)
    ]


def forecast(dates_ns: np.ndarray, values: np.ndarray, target_ns: int, **settings) -> float:
    """Fit on (dates, values) and return yhat at `target_ns`."""
    return forecast_many([FitRequest(dates_ns, values, **settings)], [target_ns])[0]


# Stan's L-BFGS (stan/optimization/bfgs.hpp, bfgs_linesearch.hpp, lbfgs_update.hpp) with
# CmdStan's defaults, as Prophet calls it (iter=10000; Prophet uses Newton below 100 rows,
# not ported: the same L-BFGS serves there).
_INIT_ALPHA = 1e-3
_MIN_ALPHA = 1e-12
_C1, _C2 = 1e-4, 0.9
_MAX_LS_ITS = 20
_MAX_LS_RESTARTS = 10
_HISTORY = 5
_MAX_ITERS = 10_000
_TOL_OBJ = 1e-12
_TOL_REL_OBJ = 1e4
_TOL_GRAD = 1e-8
_TOL_REL_GRAD = 1e7
_TOL_PARAM = 1e-8
_EPS = float(np.finfo(float).eps)


# Many fits at once ----------------------------------------------------------------------
# The same algorithm, step for step, run in lockstep over a batch of windows: each tick
# evaluates one trial point per unfinished fit in a few numpy calls over the whole batch,
# then advances every fit's own line-search state. Python's per-step overhead is paid once
# per batch instead of once per fit. Row-wise arithmetic only (no value depends on the
# other rows of a batch): a window's forecast is the same whatever it is batched with.

_EXPAND, _ZOOM = 0, 1


class _Objective:
    """Prophet's negative log density (Stan's, no Jacobian) and its gradient, for a batch.

    Row i of x is fit i's [k, m, delta (S), beta (K), log sigma_obs]: prophet.stan's order
    except that sigma_obs comes last (the same when there is no seasonality, the default).
    The trend is piecewise linear with kinks at rows `cp_rows` (Prophet's changepoints are
    rows of the history), so it and its gradient take running sums over the rows, not the
    T x S changepoint matrix: O(T) per fit.
    """

    def __init__(self, t: np.ndarray, cp_rows: np.ndarray, seasonal: np.ndarray,
                 ys: np.ndarray, tau: np.ndarray) -> None:  # fmt: skip
        self.t = t  # (B, T) scaled times
        self.cp_rows = cp_rows  # (B, S) row index of each changepoint
        self.rows = np.arange(t.shape[0])[:, None]
        self.c = np.take_along_axis(t, cp_rows, axis=1)  # (B, S) changepoint times
        self.seasonal = seasonal  # (B, T, K)
        self.y = ys
        self.n = float(ys.shape[1])
        self.n_cp = cp_rows.shape[1]
        self.inv_tau = 1.0 / np.asarray(tau, dtype="float64")

    def take(self, keep: np.ndarray) -> None:
        self.t, self.cp_rows, self.c = self.t[keep], self.cp_rows[keep], self.c[keep]
        self.seasonal, self.y, self.inv_tau = self.seasonal[keep], self.y[keep], self.inv_tau[keep]
        self.rows = np.arange(self.t.shape[0])[:, None]

    def _running(self, values: np.ndarray) -> np.ndarray:
        """Per row, the sum of `values` (B, S) over changepoints at or before each row."""
        spread = np.zeros_like(self.t)
        spread[self.rows, self.cp_rows] = values
        return np.cumsum(spread, axis=1)

    def __call__(self, x: np.ndarray):
        """(f, g, finite): one row per fit; not finite where Stan's evaluation fails."""
        n_cp = self.n_cp
        k, m = x[:, 0], x[:, 1]
        delta = x[:, 2 : 2 + n_cp]
        beta = x[:, 2 + n_cp : -1]
        log_sigma = x[:, -1]
        inv_var = np.exp(-2.0 * log_sigma)
        var = np.exp(2.0 * log_sigma)
        t = self.t
        slope = k[:, None] + self._running(delta)
        offset = m[:, None] - self._running(delta * self.c)
        mu = slope * t + offset
        if beta.shape[1]:
            mu = mu + np.matmul(self.seasonal, beta[:, :, None])[:, :, 0]
        residual = self.y - mu
        rss = (residual * residual).sum(axis=1)
        f = (
            0.5 * (k * k + m * m) / TREND_PRIOR_SD**2
            + np.abs(delta).sum(axis=1) * self.inv_tau
            + 0.5 * var / SIGMA_PRIOR_SD**2
            + 0.5 * (beta * beta).sum(axis=1) / SEASONALITY_PRIOR_SCALE**2
            + self.n * log_sigma
            + 0.5 * rss * inv_var
        )
        rt = residual * t
        after_r = np.cumsum(residual[:, ::-1], axis=1)[:, ::-1]  # sum over rows >= i
        after_rt = np.cumsum(rt[:, ::-1], axis=1)[:, ::-1]
        g = np.empty_like(x)
        g[:, 0] = after_rt[:, 0]
        g[:, 1] = after_r[:, 0]
        g[:, 2 : 2 + n_cp] = np.take_along_axis(after_rt, self.cp_rows, axis=1) - self.c * (
            np.take_along_axis(after_r, self.cp_rows, axis=1)
        )
        if beta.shape[1]:
            g[:, 2 + n_cp : -1] = np.matmul(self.seasonal.transpose(0, 2, 1), residual[:, :, None])[
                :, :, 0
            ]
        g[:, :-1] *= -inv_var[:, None]
        g[:, 0] += k / TREND_PRIOR_SD**2
        g[:, 1] += m / TREND_PRIOR_SD**2
        g[:, 2 : 2 + n_cp] += np.sign(delta) * self.inv_tau[:, None]
        g[:, 2 + n_cp : -1] += beta / SEASONALITY_PRIOR_SCALE**2
        g[:, -1] = self.n - rss * inv_var + var / SIGMA_PRIOR_SD**2
        ok = np.isfinite(f) & np.isfinite(g).all(axis=1) & (np.abs(log_sigma) < 700.0)
        return f, g, ok


class _Trial:
    """One step's evaluations and what the line searches made of them (row masks)."""

    def __init__(self, ft, gt, ok, dfp_t, c1dfp, c2dfp, rows: int) -> None:
        self.ft, self.gt, self.ok, self.dfp_t = ft, gt, ok, dfp_t
        self.c1dfp, self.c2dfp = c1dfp, c2dfp
        self.success = np.zeros(rows, dtype=bool)
        self.fail = np.zeros(rows, dtype=bool)
        self.to_zoom = np.zeros(rows, dtype=bool)
        self.alpha = np.zeros(rows)
        self.f = np.zeros(rows)
        self.g = np.zeros_like(gt)

    def accept(self, rows: np.ndarray, alpha: np.ndarray) -> None:
        """Rows whose line search ends here, at step `alpha`, with this step's f and g."""
        if rows.any():
            self.success |= rows
            self.alpha[rows], self.f[rows], self.g[rows] = alpha[rows], self.ft[rows], self.gt[rows]


class _Batch:
    """State of a batch of fits with the same shape (rows = fits)."""

    def __init__(self, objective: _Objective, x0: np.ndarray) -> None:
        b, dim = x0.shape
        self.rows = np.arange(b)  # each row's position in the caller's batch
        self.objective = objective
        self.x = x0.copy()
        f, g, ok = objective(self.x)
        if not ok.all():
            raise ValueError("the initial point of the fit is not finite")
        self.f, self.g = f, g
        self.p = -g
        self.f1 = np.zeros(b)
        self.g1 = np.zeros((b, dim))
        self.p1 = np.zeros((b, dim))
        self.alphak1 = np.zeros(b)
        self.hs = np.zeros((b, _HISTORY, dim))
        self.hy = np.zeros((b, _HISTORY, dim))
        self.hrho = np.zeros((b, _HISTORY))
        self.gamma = np.ones(b)
        self.iteration = np.ones(b, dtype=int)
        self.reset = np.ones(b, dtype=int)
        # line search
        self.mode = np.zeros(b, dtype=int)
        self.alpha_init = np.zeros(b)
        self.alpha0 = np.zeros(b)
        self.alpha1 = np.zeros(b)
        self.prev_f = np.zeros(b)
        self.prev_dfp = np.zeros(b)
        self.nits = np.zeros(b, dtype=int)
        self.restarts = np.zeros(b, dtype=int)
        self.dfp = np.zeros(b)
        self.alo = np.zeros(b)
        self.alo_f = np.zeros(b)
        self.alo_dfp = np.zeros(b)
        self.ahi = np.zeros(b)
        self.ahi_f = np.zeros(b)
        self.ahi_dfp = np.zeros(b)
        self.zit = np.zeros(b, dtype=int)
        self.trial = np.zeros(b)
        self.start_search(np.arange(b), np.full(b, _INIT_ALPHA))

    def start_search(self, idx: np.ndarray, alpha: np.ndarray) -> None:
        """Begin a Wolfe line search along p from x for rows idx (first trial: alpha)."""
        self.mode[idx] = _EXPAND
        self.alpha_init[idx] = alpha
        self.alpha0[idx] = _MIN_ALPHA
        self.alpha1[idx] = alpha
        self.prev_f[idx] = self.f[idx]
        dfp = _rowdot(self.g[idx], self.p[idx])
        self.dfp[idx] = dfp
        self.prev_dfp[idx] = dfp
        self.nits[idx] = 0
        self.restarts[idx] = 0
        self.trial[idx] = alpha

    def zoom_next(self, idx: np.ndarray) -> np.ndarray:
        """WolfLSZoom's loop top for rows idx: the next trial, or failure (returned mask)."""
        self.zit[idx] += 1
        alo, ahi = self.alo[idx], self.ahi[idx]
        fail = (np.abs(alo - ahi) < 1e-16) | (np.nextafter(alo, ahi) == ahi)
        alo_f, ahi_f = self.alo_f[idx], self.ahi_f[idx]
        alo_dfp, ahi_dfp = self.alo_dfp[idx], self.ahi_dfp[idx]
        d1 = alo_dfp + ahi_dfp - 3 * (alo_f - ahi_f) / (alo - ahi)
        d2 = np.sqrt(d1 * d1 - alo_dfp * ahi_dfp)
        d2 = np.where(ahi < alo, -d2, d2)
        alpha = ahi - (ahi - alo) * (ahi_dfp + d2 - d1) / (ahi_dfp - alo_dfp + 2 * d2)
        span = np.abs(alo - ahi)
        low, high = np.minimum(alo, ahi), np.maximum(alo, ahi)
        bad = ~np.isfinite(alpha) | (alpha < low + 0.01 * span) | (alpha > high - 0.01 * span)
        middle = 0.5 * (alo + ahi)
        alpha = np.where(bad | (self.zit[idx] % 5 == 0), middle, alpha)
        self.trial[idx] = alpha
        return fail

    def search_direction(self, idx: np.ndarray) -> np.ndarray:
        """L-BFGS two-loop recursion over each row's history (newest last)."""
        q = -self.g[idx]
        hs, hy, rho = self.hs[idx], self.hy[idx], self.hrho[idx]
        alphas = np.zeros((idx.size, _HISTORY))
        for j in range(_HISTORY - 1, -1, -1):
            a = rho[:, j] * _rowdot(hs[:, j], q)
            q = q - a[:, None] * hy[:, j]
            alphas[:, j] = a
        q = q * self.gamma[idx][:, None]
        for j in range(_HISTORY):
            b = rho[:, j] * _rowdot(hy[:, j], q)
            q = q + (alphas[:, j] - b)[:, None] * hs[:, j]
        return q

    def step(self) -> np.ndarray:
        """Evaluate every row's trial point and advance; returns the rows that finished."""
        rows = self.x.shape[0]
        ft, gt, ok = self.objective(self.x + self.trial[:, None] * self.p)
        out = _Trial(ft, gt, ok, _rowdot(gt, self.p), _C1 * self.dfp, _C2 * self.dfp, rows)
        expand = self.mode == _EXPAND
        if expand.any():
            self._expand(expand, out)
        zoom = self.mode == _ZOOM
        if zoom.any():
            self._zoom(zoom, out)

        idx = np.flatnonzero(out.to_zoom)
        if idx.size:
            self.mode[idx] = _ZOOM
            out.fail[idx] |= self.zoom_next(idx)

        finished = np.zeros(rows, dtype=bool)
        # a successful line search: BFGSMinimizer::step's update and convergence tests -----
        idx = np.flatnonzero(out.success)
        if idx.size:
            finished[idx] = self._advance(idx, out.alpha[idx], out.f[idx], out.g[idx])
        # a failed one: reset the Hessian approximation once, then give up (Stan: LS failed)
        idx = np.flatnonzero(out.fail & ~out.success)
        if idx.size:
            done = self.reset[idx] != 0
            finished[idx[done]] = True
            again = idx[~done]
            if again.size:
                self.reset[again] = 2
                self.p[again] = -self.g[again]
                self.start_search(again, np.full(again.size, _INIT_ALPHA))
        return finished

    def _expand(self, expand: np.ndarray, out: _Trial) -> None:
        """WolfeLineSearch's expansion loop for the rows in it."""
        ft, dfp_t = out.ft, out.dfp_t
        bad = expand & ~out.ok
        if bad.any():
            give_up = bad & (self.restarts >= _MAX_LS_RESTARTS)
            out.fail |= give_up
            retry = bad & ~give_up
            self.alpha1[retry] = 0.5 * (self.alpha0[retry] + self.alpha1[retry])
            self.restarts[retry] += 1
            self.trial[retry] = self.alpha1[retry]
        good = expand & out.ok
        self.restarts[good] = 0
        above = good & ((ft > self.f + self.alpha_init * out.c1dfp)
                        | ((ft >= self.prev_f) & (self.nits > 0)))  # fmt: skip
        if above.any():
            self.alo[above], self.alo_f[above] = self.alpha0[above], self.prev_f[above]
            self.alo_dfp[above] = self.prev_dfp[above]
            self.ahi[above], self.ahi_f[above], self.ahi_dfp[above] = (
                self.alpha1[above], ft[above], dfp_t[above]
            )  # fmt: skip
        rest = good & ~above
        wolfe = rest & (np.abs(dfp_t) <= -out.c2dfp)
        out.accept(wolfe, self.alpha1)
        rest &= ~wolfe
        if not rest.any():
            entering = above
        else:
            zoom_b = rest & (dfp_t >= 0)
            self.alo[zoom_b], self.alo_f[zoom_b], self.alo_dfp[zoom_b] = (
                self.alpha1[zoom_b], ft[zoom_b], dfp_t[zoom_b]
            )  # fmt: skip
            self.ahi[zoom_b], self.ahi_f[zoom_b], self.ahi_dfp[zoom_b] = (
                self.alpha0[zoom_b], self.prev_f[zoom_b], self.prev_dfp[zoom_b]
            )  # fmt: skip
            grow = rest & ~zoom_b
            self.alpha0[grow], self.prev_f[grow], self.prev_dfp[grow] = (
                self.alpha1[grow], ft[grow], dfp_t[grow]
            )  # fmt: skip
            self.alpha1[grow] *= 10.0
            self.nits[grow] += 1
            self.trial[grow] = self.alpha1[grow]
            out.fail |= grow & (self.nits >= _MAX_LS_ITS)
            entering = above | zoom_b
        self.zit[entering] = 0
        out.to_zoom |= entering

    def _zoom(self, zoom: np.ndarray, out: _Trial) -> None:
        """WolfLSZoom's body for the rows in it."""
        ft, dfp_t = out.ft, out.dfp_t
        bad = zoom & ~out.ok
        if bad.any():
            low = np.minimum(self.alo, self.ahi)
            halved = 0.5 * (self.trial + low)
            give_up = bad & ((np.abs(low - halved) < 1e-16) | (halved == self.trial))
            out.fail |= give_up
            self.trial[bad & ~give_up] = halved[bad & ~give_up]
        good = zoom & out.ok
        alpha = self.trial
        high = good & ((ft > self.f + alpha * out.c1dfp) | (ft >= self.alo_f))
        self.ahi[high], self.ahi_f[high], self.ahi_dfp[high] = alpha[high], ft[high], dfp_t[high]
        rest = good & ~high
        wolfe = rest & (np.abs(dfp_t) <= -out.c2dfp)
        out.accept(wolfe, alpha)
        rest &= ~wolfe
        flip = rest & (dfp_t * (self.ahi - self.alo) >= 0)
        self.ahi[flip], self.ahi_f[flip], self.ahi_dfp[flip] = (
            self.alo[flip], self.alo_f[flip], self.alo_dfp[flip]
        )  # fmt: skip
        self.alo[rest], self.alo_f[rest], self.alo_dfp[rest] = alpha[rest], ft[rest], dfp_t[rest]
        out.to_zoom |= high | rest

    def _advance(self, idx, alpha, f_new, g_new) -> np.ndarray:
        x_old, g_old, p_old = self.x[idx], self.g[idx], self.p[idx]
        x_new = x_old + alpha[:, None] * p_old
        sk = x_new - x_old
        yk = g_new - g_old
        self.f1[idx], self.f[idx] = self.f[idx], f_new
        self.g1[idx], self.g[idx] = g_old, g_new
        self.x[idx] = x_new
        grad_norm = np.sqrt(_rowdot(g_new, g_new))
        step_norm = np.sqrt(_rowdot(sk, sk))
        skyk = _rowdot(yk, sk)
        yy = _rowdot(yk, yk)
        reset = self.reset[idx] != 0
        if reset.any():
            b0 = yy / skyk
            self.p1[idx] = np.where(reset[:, None], p_old / b0[:, None], p_old)
            self.alphak1[idx] = np.where(reset, alpha * b0, alpha)
            cleared = idx[reset]
            self.hs[cleared] = 0.0
            self.hy[cleared] = 0.0
            self.hrho[cleared] = 0.0
        else:
            self.p1[idx] = p_old
            self.alphak1[idx] = alpha
        self.gamma[idx] = skyk / yy
        for history, newest in ((self.hs, sk), (self.hy, yk), (self.hrho, 1.0 / skyk)):
            rows = history[idx]
            rows[:, :-1] = rows[:, 1:].copy()
            rows[:, -1] = newest
            history[idx] = rows
        self.p[idx] = self.search_direction(idx)
        f, f1 = self.f[idx], self.f1[idx]
        change = np.abs(f1 - f)
        rel_obj = change / np.maximum(np.maximum(np.abs(f1), np.abs(f)), 1.0)
        rel_grad = -_rowdot(self.p[idx], self.g[idx]) / np.maximum(np.abs(f), 1.0)
        done = (
            (change < _TOL_OBJ)
            | (grad_norm < _TOL_GRAD)
            | (step_norm < _TOL_PARAM)
            | (self.iteration[idx] >= _MAX_ITERS)
            | (rel_obj < _TOL_REL_OBJ * _EPS)
            | (rel_grad < _TOL_REL_GRAD * _EPS)
        )
        go = idx[~done]
        if go.size:
            self.iteration[go] += 1
            self.reset[go] = 0
            first = _cubic_interp_rows(
                _rowdot(self.g1[go], self.p1[go]), self.alphak1[go], self.f[go] - self.f1[go],
                _rowdot(self.g[go], self.p1[go]), _MIN_ALPHA, 1.0,
            )  # fmt: skip
            self.start_search(go, np.minimum(1.0, 1.01 * first))
        return done

    def take(self, keep: np.ndarray) -> None:
        """Keep only rows `keep` (finished fits leave the batch)."""
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(self, name, value[keep])
        self.objective.take(keep)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def _cubic_interp_rows(df0, x1, f1, df1, lo: float, hi: float) -> np.ndarray:
    """`_cubic_interp` for many rows at once (NaN where C's arithmetic gives NaN)."""
    c3 = (-12 * f1 + 6 * x1 * (df0 + df1)) / (x1 * x1 * x1)
    c2 = -(4 * df0 + 2 * df1) / x1 + 6 * f1 / (x1 * x1)
    c1 = df0
    t_s = np.sqrt(c2 * c2 - 2.0 * c1 * c3)
    s1 = -(c2 + t_s) / c3
    s2 = -(c2 - t_s) / c3

    def cubic(z):
        return z * (z * (z * c3 / 3.0 + c2) / 2.0 + c1)

    min_x = np.full_like(c1, lo)
    min_f = cubic(min_x)
    value = cubic(np.full_like(c1, hi))
    better = value < min_f
    min_x = np.where(better, hi, min_x)
    min_f = np.where(better, value, min_f)
    for s in (s1, s2):
        value = cubic(s)
        better = (lo < s) & (s < hi) & (value < min_f)
        min_x = np.where(better, s, min_x)
        min_f = np.where(better, value, min_f)
    return min_x


def _stan_lbfgs(objective: _Objective, x0: np.ndarray) -> np.ndarray:
    """Minimise each row's objective from x0 as CmdStan's `optimize` (L-BFGS) would."""
    out = np.empty_like(x0)
    with np.errstate(all="ignore"):
        batch = _Batch(objective, x0)
        while batch.rows.size:
            finished = batch.step()
            if finished.any():
                out[batch.rows[finished]] = batch.x[finished]
                batch.take(~finished)
    return out
