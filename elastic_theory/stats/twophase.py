r"""Two-phase fit: a continuous piecewise-linear curve in log data, with a breakpoint and its interval.

The paper's rebound curves (Ji et al. 2025, §5.2, Fig. 4) fall fast, then slowly: "two-phase".
We make that a model. With :math:`u = \ln x` (``x`` the amount of perturbation data, > 0),

.. math:: y = a + b_1 \min(u - c, 0) + b_2 \max(u - c, 0) + \varepsilon,

continuous at the breakpoint :math:`c` (in :math:`\ln x`; :math:`e^c` in data units), slope
:math:`b_1` before and :math:`b_2` after, both per unit of :math:`\ln x` (one e-fold of data).
For fixed :math:`c` the model is linear, so :math:`\hat c` minimizes the profiled residual sum of
squares :math:`RSS(c)` (a dense grid, then a bounded scalar refinement in the best cell).

**Breakpoint interval (profile likelihood).** With Gaussian errors the profile log-likelihood
ratio is :math:`n \ln(RSS(c)/RSS(\hat c))`; the interval is the set of :math:`c` where it is at
most :math:`\chi^2_{1}(level)` (3.84 for 95%). Breakpoints are a non-regular problem, so the
nominal level is approximate: ``tests/stats/test_twophase.py`` measures the coverage on synthetic
curves. An interval that reaches the edge of the admissible range is flagged ``ci_censored``.

**Is it two-phase at all?** The one-line model is the hinge with :math:`b_1 = b_2`, but under it
:math:`c` is not identified, so the F statistic has no F distribution (Davies' problem). The
p-value is a parametric bootstrap: simulate the fitted line plus Gaussian noise of its residual
variance, refit both models, and count statistics at least as large as the observed one.

Admissible breakpoints leave at least two distinct :math:`u` values on each side (each slope
rests on two abscissae), so a fit needs at least four distinct amounts and five points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .._validation import check_curve

__all__ = ["TwoPhaseFit", "fit_two_phase", "hinge"]

_GRID = 256
_CHUNK = 64  # bootstrap resamples per batch: 64 x grid x n residuals (about 4 MB at n = 30)


def hinge(x, intercept: float, slope_before: float, slope_after: float, breakpoint_log: float) -> np.ndarray:
    """The model's curve at data amounts ``x`` (> 0): ``a + b1 min(ln x - c, 0) + b2 max(ln x - c, 0)``."""
    d = np.log(np.asarray(x, dtype=np.float64)) - breakpoint_log
    return intercept + slope_before * np.minimum(d, 0.0) + slope_after * np.maximum(d, 0.0)


@dataclass(frozen=True)
class TwoPhaseFit:
    """A fitted two-phase curve. Slopes are per unit of ``ln x``; ``breakpoint = exp(breakpoint_log)``."""

    intercept: float
    slope_before: float
    slope_after: float
    breakpoint_log: float
    ci_log: tuple[float, float]
    ci_censored: bool
    rss: float
    rss_line: float
    line_slope: float
    n: int
    p_two_phase: float | None
    level: float

    @property
    def breakpoint(self) -> float:
        return math.exp(self.breakpoint_log)

    @property
    def ci(self) -> tuple[float, float]:
        return (math.exp(self.ci_log[0]), math.exp(self.ci_log[1]))

    def predict(self, x) -> np.ndarray:
        return hinge(x, self.intercept, self.slope_before, self.slope_after, self.breakpoint_log)

    def as_dict(self) -> dict:
        return {**asdict(self), "breakpoint": self.breakpoint, "ci": list(self.ci), "ci_log": list(self.ci_log)}


def _design(u: np.ndarray, c: float) -> np.ndarray:
    d = u - c
    return np.column_stack([np.ones_like(u), np.minimum(d, 0.0), np.maximum(d, 0.0)])


def _rss_at(u: np.ndarray, y: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    X = _design(u, c)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    return float(r @ r), coef


def _hinge_projections(u: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The least-squares hat matrices ``H[g] = X (X'X)^{-1} X'`` of the hinge designs at every grid point
    (``[len(grid), n, n]``). They depend on ``u`` and the grid only, not on ``y``: built once per fit
    and shared by the data and every bootstrap resample. The grid stays inside the data range, so
    every design has full column rank."""
    d = u[None, :] - grid[:, None]
    X = np.stack([np.ones_like(d), np.minimum(d, 0.0), np.maximum(d, 0.0)], axis=-1)
    return X @ np.linalg.solve(np.einsum("gni,gnj->gij", X, X), np.swapaxes(X, 1, 2))


def _rss_grid(H: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """RSS(c) at every grid point (rows of ``H``, from :func:`_hinge_projections`) for each curve in ``Y``
    (``[..., n]``): ``[..., len(grid)]``."""
    r = Y[..., None, :] - np.einsum("gnm,...m->...gn", H, Y)
    return np.einsum("...gn,...gn->...g", r, r)


def _line(u: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    X = np.column_stack([np.ones_like(u), u])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    return float(r @ r), float(coef[0]), float(coef[1])


def _best_breakpoint(u: np.ndarray, y: np.ndarray, lo: float, hi: float,
                     ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Minimizer of RSS(c) on [lo, hi], the grid, its RSS values (for the profile interval) and the grid's
    hat matrices (for the bootstrap)."""
    from scipy.optimize import minimize_scalar

    grid = np.unique(np.concatenate([np.linspace(lo, hi, _GRID), u[(u >= lo) & (u <= hi)]]))
    H = _hinge_projections(u, grid)
    rss = _rss_grid(H, y)
    i = int(np.argmin(rss))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    best_c, best_rss = float(grid[i]), float(rss[i])
    if b > a:
        res = minimize_scalar(lambda c: _rss_at(u, y, c)[0], bounds=(a, b), method="bounded",
                              options={"xatol": 1e-10 * max(1.0, hi - lo)})
        if res.fun < best_rss:
            best_c, best_rss = float(res.x), float(res.fun)
    return best_c, grid, rss, H


def _profile_interval(u, y, c_hat, rss_hat, grid, rss, level, scale) -> tuple[tuple[float, float], bool]:
    from scipy.optimize import brentq
    from scipy.stats import chi2

    n = u.size
    floor = max(rss_hat, 1e-300, scale * np.finfo(np.float64).eps)
    crit = float(chi2.ppf(level, 1))

    def excess(c: float) -> float:
        return n * math.log(max(_rss_at(u, y, c)[0], floor) / floor) - crit

    inside = n * np.log(np.maximum(rss, floor) / floor) - crit <= 0
    j = int(np.argmin(np.abs(grid - c_hat)))
    censored = False
    edges = []
    for step in (-1, 1):
        i = j
        while 0 <= i + step < grid.size and inside[i + step]:
            i += step
        if not 0 <= i + step < grid.size:
            censored = censored or bool(inside[i])
            edges.append(float(grid[i]) if inside[i] else c_hat)
            continue
        inner = float(grid[i]) if inside[i] else c_hat
        outer = float(grid[i + step])
        a, b = sorted((inner, outer))
        if excess(a) * excess(b) < 0:
            edges.append(float(brentq(excess, a, b, xtol=1e-12 * max(1.0, abs(b)))))
        else:
            edges.append(inner)
    low, high = min(edges[0], c_hat), max(edges[1], c_hat)
    return (low, high), censored


def _lr_statistics(u: np.ndarray, H: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """n ln(RSS_line / RSS_hinge) of each curve (row) of ``Y``, the hinge minimized over the grid of ``H``
    (the same grid for data and resamples)."""
    X = np.column_stack([np.ones_like(u), u])
    r = Y - (Y @ np.linalg.pinv(X).T) @ X.T
    floor = np.maximum(_rss_grid(H, Y).min(axis=-1), 1e-300)
    return u.size * np.log(np.maximum(np.einsum("bn,bn->b", r, r), floor) / floor)


def fit_two_phase(
    x, y, *, level: float = 0.95, n_bootstrap: int = 0, rng: np.random.Generator | None = None
) -> TwoPhaseFit:
    r"""Fit the continuous two-phase curve to points ``(x, y)`` (``x`` > 0 data amounts; repeats allowed).

    ``level`` is the profile-likelihood level of the breakpoint interval. With ``n_bootstrap`` > 0
    (and an explicit ``rng``), ``p_two_phase`` is the parametric-bootstrap p-value of
    :math:`H_0`: one straight line in :math:`\ln x` (see the module docstring); else ``None``.
    """
    x, y = check_curve(x, y, "two-phase fit")
    if (x <= 0).any():
        raise ValueError(f"two-phase fit works in ln x: every data amount x must be > 0, got {x.min()!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    u = np.log(x)
    distinct = np.unique(u)
    if distinct.size < 4 or u.size < 5:
        raise ValueError(
            f"two-phase fit needs >= 4 distinct data amounts and >= 5 points, got {distinct.size} and {u.size}"
        )
    if n_bootstrap and rng is None:
        raise ValueError("n_bootstrap > 0 needs an explicit rng (np.random.default_rng(seed))")
    lo, hi = float(distinct[1]), float(distinct[-2])
    c_hat, grid, rss, H = _best_breakpoint(u, y, lo, hi)
    rss_hat, coef = _rss_at(u, y, c_hat)
    scale = float(((y - y.mean()) ** 2).sum())
    ci_log, censored = _profile_interval(u, y, c_hat, rss_hat, grid, rss, level, scale)
    rss_line, line_icpt, line_slope = _line(u, y)

    p_value = None
    if n_bootstrap:
        observed = float(_lr_statistics(u, H, y[None, :])[0])
        sigma = math.sqrt(rss_line / (u.size - 2))
        mean = line_icpt + line_slope * u
        # the same draws, in the same order, as one standard_normal(n) call per resample
        noise = rng.standard_normal((int(n_bootstrap), u.size))
        sims = np.concatenate([_lr_statistics(u, H, mean + sigma * noise[s : s + _CHUNK])
                               for s in range(0, noise.shape[0], _CHUNK)])
        p_value = float((1 + np.count_nonzero(sims >= observed * (1 - 1e-12))) / (1 + sims.size))
    return TwoPhaseFit(
        intercept=float(coef[0]), slope_before=float(coef[1]), slope_after=float(coef[2]),
        breakpoint_log=c_hat, ci_log=ci_log, ci_censored=censored, rss=rss_hat, rss_line=rss_line,
        line_slope=line_slope, n=int(u.size), p_two_phase=p_value, level=level,
    )
