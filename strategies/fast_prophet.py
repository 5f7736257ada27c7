"""Prophet's model fitted in-process: the same MAP as `prophet.Prophet.fit`, no cmdstan.

Why: a Prophet fit spends almost all of its time outside the model (a cmdstan process,
files, pandas). For the settings tradeship uses the model is small and its MAP can be
found exactly in a millisecond, so a backtest of the whole S&P 500 need not wait on it.

The model is Prophet's (prophet/stan_model/prophet.stan, Prophet 1.1-1.5 defaults):

* ``y / y_scale`` with ``y_scale = max|y|`` ("absmax" scaling, floor 0), time
  ``t = (ds - start) / (end - start)``;
* linear trend ``(k + A delta) t + (m - A (t_change * delta))`` with Prophet's changepoint
  grid: 25 changepoints (fewer on short windows) on the first 80 % of the rows;
* priors ``k, m ~ N(0, 5)``, ``delta ~ Laplace(0, changepoint_prior_scale)``,
  ``sigma_obs ~ N(0, 0.5)``, seasonal ``beta ~ N(0, 10)``;
* optional weekly (order 3) and yearly (order 10) Fourier seasonalities, additive
  (multiplicative seasonality is not a least-squares problem: use fitter "prophet").

Prophet's Stan optimizer stops near the MAP; this module computes the MAP itself. For a
fixed ``sigma_obs`` the negative log posterior in ``(k, m, delta, beta)`` is a lasso
(a quadratic plus an L1 term on ``delta``), solved exactly by feature-sign search (an
active-set method: every step solves a small linear system); ``sigma_obs`` then has a
closed form given the residuals. The two alternate to a fixed point. Everything is plain
numpy, deterministic, with no global state.
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

_MAX_OUTER = 200  # sigma / lasso alternations (a fit takes ~5-15)
_MAX_STEPS = 500  # feature-sign steps per lasso (a lasso takes ~1-30)
_REL_TOL = 1e-12


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


def fit(
    dates_ns: np.ndarray,
    values: np.ndarray,
    *,
    changepoint_prior_scale: float = 0.05,
    weekly_seasonality: bool | int = False,
    yearly_seasonality: bool | int = False,
    seasonality_mode: str = "additive",
) -> FastFit:
    """The MAP of Prophet's model on (dates, values): sorted, distinct, finite."""
    dates = np.asarray(dates_ns, dtype="int64")
    y = np.asarray(values, dtype="float64")
    if dates.shape != y.shape or y.ndim != 1:
        raise ValueError("dates and values must be 1-d arrays of the same length")
    if y.size < 2 or not np.all(np.isfinite(y)):
        raise ValueError(f"cannot fit a forecast on {y.size} bars with missing prices")
    if np.any(np.diff(dates) <= 0):
        raise ValueError("dates must be strictly increasing")
    if not changepoint_prior_scale > 0:
        raise ValueError(f"changepoint_prior_scale must be > 0, got {changepoint_prior_scale}")
    seasonalities = seasonality_orders(weekly_seasonality, yearly_seasonality)
    if seasonalities and seasonality_mode != "additive":
        raise ValueError(
            f"fitter 'fast' fits additive seasonality only, not {seasonality_mode!r}; "
            "use fitter 'prophet' for it"
        )

    start, t_scale = int(dates[0]), int(dates[-1] - dates[0])
    t = (dates - start).astype("float64") / float(t_scale)
    y_scale = float(np.max(np.abs(y))) or 1.0
    changepoints = changepoint_grid(t)
    seasonal = _fourier(dates, seasonalities)
    if np.all(y == y[0]):  # Prophet skips the optimizer here and keeps its initial values
        return FastFit(
            start, t_scale, y_scale, changepoints, 0.0, float(y[0] / y_scale),
            np.zeros(changepoints.size), np.zeros(seasonal.shape[1]), 1e-9, seasonalities,
        )  # fmt: skip

    hinges = np.maximum(t[:, None] - changepoints[None, :], 0.0)  # A * (t - t_change)
    design = np.column_stack([t, np.ones_like(t), hinges, seasonal])
    n_cp = changepoints.size
    y_scaled = y / y_scale
    k0 = (y_scaled[-1] - y_scaled[0]) / (t[-1] - t[0])  # Prophet's linear_growth_init
    x0 = np.concatenate([[k0, y_scaled[0] - k0 * t[0]], np.zeros(n_cp + seasonal.shape[1]),
                         [0.0]])  # fmt: skip
    objective = _Objective(design, y_scaled, n_cp, changepoint_prior_scale,
                           SEASONALITY_PRIOR_SCALE)  # fmt: skip
    x = _stan_lbfgs(objective, x0)
    return FastFit(
        start, t_scale, y_scale, changepoints, float(x[0]), float(x[1]),
        x[2 : 2 + n_cp].copy(), x[2 + n_cp : -1].copy(), math.exp(float(x[-1])),
        seasonalities,
    )  # fmt: skip


def forecast(
    dates_ns: np.ndarray,
    values: np.ndarray,
    target_ns: int,
    *,
    changepoint_prior_scale: float = 0.05,
    weekly_seasonality: bool | int = False,
    yearly_seasonality: bool | int = False,
    seasonality_mode: str = "additive",
) -> float:
    """Fit on (dates, values) and return yhat at `target_ns`."""
    model = fit(
        dates_ns,
        values,
        changepoint_prior_scale=changepoint_prior_scale,
        weekly_seasonality=weekly_seasonality,
        yearly_seasonality=yearly_seasonality,
        seasonality_mode=seasonality_mode,
    )
    return float(model.predict(np.array([target_ns], dtype="int64"))[0])


# Stan's L-BFGS (stan/optimization/bfgs.hpp, bfgs_linesearch.hpp, lbfgs_update.hpp) with
# CmdStan's defaults, as Prophet calls it: the fit stops where Stan's would, not at the
# exact optimum (the Laplace prior makes the objective non-smooth at delta = 0, so
# Stan's answer depends on its path; the exact MAP moves yhat by up to ~30 % on some
# windows). Ported step by step; parameter order as in prophet.stan.
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


class _Objective:
    """Prophet's negative log density (Stan's, no Jacobian) and its gradient.

    x = [k, m, delta (S), beta (K), log sigma_obs]: prophet.stan's order except that
    sigma_obs comes last (the same when there is no seasonality, as by default).
    The design holds the matching columns [t, 1, A * (t - t_change), X].
    """

    def __init__(self, design: np.ndarray, y: np.ndarray, n_cp: int, tau: float,
                 beta_sd: float) -> None:  # fmt: skip
        self.design = design
        self.design_t = np.ascontiguousarray(design.T)
        self.y = y
        self.n = float(y.size)
        self.delta = slice(2, 2 + n_cp)
        self.beta = slice(2 + n_cp, design.shape[1])
        self.inv_tau = 1.0 / tau
        self.inv_beta_var = 1.0 / beta_sd**2
        self.inv_trend_var = 1.0 / TREND_PRIOR_SD**2
        self.inv_sigma_var = 1.0 / SIGMA_PRIOR_SD**2

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray] | None:
        """(f, gradient) at x, or None where the density is not finite (as Stan's adaptor)."""
        log_sigma = float(x[-1])
        if not -700.0 < log_sigma < 700.0:
            return None
        theta = x[:-1]
        inv_var = math.exp(-2.0 * log_sigma)
        var = math.exp(2.0 * log_sigma)
        residual = self.y - self.design @ theta
        rss = float(residual @ residual)
        k, m = float(theta[0]), float(theta[1])
        delta = theta[self.delta]
        beta = theta[self.beta]
        value = (
            0.5 * (k * k + m * m) * self.inv_trend_var
            + float(np.abs(delta).sum()) * self.inv_tau
            + 0.5 * var * self.inv_sigma_var
            + 0.5 * float(beta @ beta) * self.inv_beta_var
            + self.n * log_sigma
            + 0.5 * rss * inv_var
        )
        grad = np.empty_like(x)
        grad[:-1] = self.design_t @ residual
        grad[:-1] *= -inv_var
        grad[0] += k * self.inv_trend_var
        grad[1] += m * self.inv_trend_var
        grad[self.delta] += np.sign(delta) * self.inv_tau
        grad[self.beta] += beta * self.inv_beta_var
        grad[-1] = self.n - rss * inv_var + var * self.inv_sigma_var
        if not (math.isfinite(value) and np.isfinite(grad).all()):
            return None
        return value, grad


def _sqrt(value: float) -> float:
    """C's sqrt: NaN for a negative argument (every comparison with it is then false)."""
    return math.sqrt(value) if value >= 0.0 else math.nan


def _cubic_interp(df0: float, x1: float, f1: float, df1: float, lo: float, hi: float) -> float:
    """Minimum on [lo, hi] of the cubic through (0, 0, df0) and (x1, f1, df1)."""
    c3 = (-12 * f1 + 6 * x1 * (df0 + df1)) / (x1 * x1 * x1)
    c2 = -(4 * df0 + 2 * df1) / x1 + 6 * f1 / (x1 * x1)
    c1 = df0
    t_s = _sqrt(c2 * c2 - 2.0 * c1 * c3)
    s1 = -(c2 + t_s) / c3 if c3 != 0.0 else math.copysign(math.inf, -(c2 + t_s))
    s2 = -(c2 - t_s) / c3 if c3 != 0.0 else math.copysign(math.inf, -(c2 - t_s))

    def cubic(z: float) -> float:
        return z * (z * (z * c3 / 3.0 + c2) / 2.0 + c1)

    min_x, min_f = lo, cubic(lo)
    value = cubic(hi)
    if value < min_f:
        min_x, min_f = hi, value
    for z in (s1, s2):
        if lo < z < hi:
            value = cubic(z)
            if value < min_f:
                min_x, min_f = z, value
    return min_x


def _zoom(func, x, f, dfp, c1dfp, c2dfp, p, alo, alo_f, alo_dfp, ahi, ahi_f, ahi_dfp):
    """Stan's WolfLSZoom: (ok, alpha, f, g) of a point meeting the strong Wolfe conditions."""
    min_range = 1e-16
    it = 0
    while True:
        it += 1
        if abs(alo - ahi) < min_range or math.nextafter(alo, ahi) == ahi:
            return False, None
        if it % 5 == 0:
            alpha = 0.5 * (alo + ahi)
        else:
            d1 = alo_dfp + ahi_dfp - 3 * (alo_f - ahi_f) / (alo - ahi)
            d2 = _sqrt(d1 * d1 - alo_dfp * ahi_dfp)
            if ahi < alo:
                d2 = -d2
            denominator = ahi_dfp - alo_dfp + 2 * d2
            alpha = (
                ahi - (ahi - alo) * (ahi_dfp + d2 - d1) / denominator
                if denominator != 0.0
                else math.nan
            )
            span = abs(alo - ahi)
            if (
                not math.isfinite(alpha)
                or alpha < min(alo, ahi) + 0.01 * span
                or alpha > max(alo, ahi) - 0.01 * span
            ):
                alpha = 0.5 * (alo + ahi)
        result = func(x + alpha * p)
        while result is None:
            previous = alpha
            alpha = 0.5 * (alpha + min(alo, ahi))
            if abs(min(alo, ahi) - alpha) < min_range or alpha == previous:
                return False, None
            result = func(x + alpha * p)
        new_f, new_g = result
        new_dfp = float(new_g @ p)
        if new_f > f + alpha * c1dfp or new_f >= alo_f:
            ahi, ahi_f, ahi_dfp = alpha, new_f, new_dfp
        else:
            if abs(new_dfp) <= -c2dfp:
                return True, (alpha, new_f, new_g)
            if new_dfp * (ahi - alo) >= 0:
                ahi, ahi_f, ahi_dfp = alo, alo_f, alo_dfp
            alo, alo_f, alo_dfp = alpha, new_f, new_dfp


def _wolfe_line_search(func, alpha, p, x0, f0, g0):
    """Stan's WolfeLineSearch: (ok, (alpha, f, g))."""
    dfp = float(g0 @ p)
    c1dfp, c2dfp = _C1 * dfp, _C2 * dfp
    alpha0, alpha1 = _MIN_ALPHA, alpha
    prev_f, prev_dfp = f0, dfp
    nits = restarts = 0
    while True:
        if nits >= _MAX_LS_ITS:
            return False, None
        result = func(x0 + alpha1 * p)
        if result is None:
            if restarts >= _MAX_LS_RESTARTS:
                return False, None
            alpha1 = 0.5 * (alpha0 + alpha1)
            restarts += 1
            continue
        restarts = 0
        f1, g1 = result
        new_dfp = float(g1 @ p)
        # Stan compares with the *initial* alpha here (alpha, not alpha1): ported as is
        if f1 > f0 + alpha * c1dfp or (f1 >= prev_f and nits > 0):
            return _zoom(func, x0, f0, dfp, c1dfp, c2dfp, p, alpha0, prev_f, prev_dfp,
                         alpha1, f1, new_dfp)  # fmt: skip
        if abs(new_dfp) <= -c2dfp:
            return True, (alpha1, f1, g1)
        if new_dfp >= 0:
            return _zoom(func, x0, f0, dfp, c1dfp, c2dfp, p, alpha1, f1, new_dfp,
                         alpha0, prev_f, prev_dfp)  # fmt: skip
        alpha0, prev_f, prev_dfp = alpha1, f1, new_dfp
        alpha1 *= 10.0
        nits += 1


def _search_direction(history: list[tuple[float, np.ndarray, np.ndarray]], gamma: float,
                      g: np.ndarray) -> np.ndarray:  # fmt: skip
    """L-BFGS two-loop recursion (Stan's LBFGSUpdate.search_direction)."""
    p = -g
    alphas = []
    for rho, yv, sv in reversed(history):
        a = rho * float(sv @ p)
        p = p - a * yv
        alphas.append(a)
    p = p * gamma
    for (rho, yv, sv), a in zip(history, reversed(alphas), strict=True):
        b = rho * float(yv @ p)
        p = p + (a - b) * sv
    return p


def _stan_lbfgs(func: _Objective, x0: np.ndarray) -> np.ndarray:
    """Minimise `func` from `x0` exactly as CmdStan's `optimize` (L-BFGS) does."""
    first = func(x0)
    if first is None:
        raise ValueError("the initial point of the fit is not finite")
    xk, fk, gk = x0, *first
    pk = -gk
    history: list[tuple[float, np.ndarray, np.ndarray]] = []
    gamma = 1.0
    fk_1 = 0.0
    gk_1 = pk_1 = gk
    alphak_1 = 0.0
    for iteration in range(1, _MAX_ITERS + 1):
        reset = 1 if iteration == 1 else 0
        while True:
            if reset:
                pk = -gk
            if iteration > 1 and reset != 2:
                alpha = min(
                    1.0,
                    1.01 * _cubic_interp(float(gk_1 @ pk_1), alphak_1, fk - fk_1,
                                         float(gk @ pk_1), _MIN_ALPHA, 1.0),
                )  # fmt: skip
            else:
                alpha = _INIT_ALPHA
            ok, found = _wolfe_line_search(func, alpha, pk, xk, fk, gk)
            if ok:
                break
            if reset:
                return xk  # Stan: "line search failed" (Prophet then retries with Newton)
            reset = 2
        alpha, f_new, g_new = found
        x_new = xk + alpha * pk
        sk, yk = x_new - xk, g_new - gk
        fk_1, fk, xk, gk_1, gk, pk_1 = fk, f_new, x_new, gk, g_new, pk
        grad_norm = float(np.sqrt(gk @ gk))
        step_norm = float(np.sqrt(sk @ sk))
        skyk = float(yk @ sk)
        yy = float(yk @ yk)
        if reset:
            b0 = yy / skyk
            history.clear()
            pk_1 = pk_1 / b0
            alphak_1 = alpha * b0
        else:
            alphak_1 = alpha
        gamma = skyk / yy
        history.append((1.0 / skyk, yk, sk))
        if len(history) > _HISTORY:
            history.pop(0)
        pk = _search_direction(history, gamma, gk)
        if abs(fk_1 - fk) < _TOL_OBJ or grad_norm < _TOL_GRAD or step_norm < _TOL_PARAM:
            return xk
        rel_obj = abs(fk_1 - fk) / max(abs(fk_1), abs(fk), 1.0)
        if rel_obj < _TOL_REL_OBJ * _EPS:
            return xk
        if -float(pk @ gk) / max(abs(fk), 1.0) < _TOL_REL_GRAD * _EPS:
            return xk
    return xk
