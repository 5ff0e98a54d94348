r"""Pareto leaf masses (Assumption A.7): sampling, the entropy offset and the rate at which the entropy of M masses
approaches it, measured over seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np



def _check_alpha(alpha: float, minimum: float = 1.0) -> float:
    alpha = float(alpha)
    if not (alpha > minimum and math.isfinite(alpha)):
        why = " (no finite mean for alpha <= 1)" if minimum >= 1 else ""
        raise ValueError(f"alpha must be finite and > {minimum:g}{why}, got {alpha!r}")
    return alpha


def sample_masses(M: int, alpha: float, rng: np.random.Generator, x_m: float = 1.0) -> np.ndarray:
    r"""``M`` leaf masses :math:`X_j/\sum X`, :math:`X_j` iid Pareto(``x_m``, ``alpha``), drawn with ``rng``.

    Pareto(:math:`x_m, \alpha`) is :math:`x_m(1 + Y)` with :math:`Y` Lomax(:math:`\alpha`) (``rng.pareto``).
    Any :math:`\alpha > 0` is allowed here (the masses are normalized by the sample sum).
    """
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1:
        raise ValueError(f"M (number of leaves) must be an integer >= 1, got {M!r}")
    alpha = _check_alpha(alpha, 0.0)
    if not (x_m > 0 and math.isfinite(x_m)):
        raise ValueError(f"x_m must be finite and > 0, got {x_m!r}")
    # x_m (1 + Lomax) = x_m exp(E/alpha), E ~ Exp(1): the same draws as rng.pareto, taken in logs so that a
    # small alpha (a few leaves holding almost all the mass) cannot overflow.
    log_x = rng.standard_exponential(size=int(M)) / alpha
    x = np.exp(log_x - log_x.max())
    return x / x.sum()


def entropy_offset(M: float, alpha: float) -> float:
    r""":math:`\ln M + \ln(\alpha/(\alpha-1)) - 1/(\alpha-1)`: the limiting leaf entropy in nats (:math:`\alpha > 1`)."""
    alpha = _check_alpha(alpha)
    if not M >= 1:
        raise ValueError(f"M must be >= 1, got {M!r}")
    return math.log(M) + math.log(alpha / (alpha - 1.0)) - 1.0 / (alpha - 1.0)


def predicted_exponent(alpha: float) -> float:
    r"""Exponent :math:`b` in error :math:`\sim M^b (\ln M)^c`: :math:`-1/2` for :math:`\alpha \ge 2`, :math:`1/\alpha - 1` for :math:`1 < \alpha < 2`."""
    alpha = _check_alpha(alpha)
    return -0.5 if alpha >= 2.0 else 1.0 / alpha - 1.0


def predicted_log_power(alpha: float) -> float:
    r"""Power :math:`c` of :math:`\ln M` in error :math:`\sim M^b (\ln M)^c`: 0 for :math:`\alpha > 2`, 3/2 at 2, 1 below (module docstring)."""
    alpha = _check_alpha(alpha)
    return 0.0 if alpha > 2.0 else (1.5 if alpha == 2.0 else 1.0)


def predicted_slope(alpha: float, Ms: tuple[int, ...]) -> float:
    r"""Least-squares slope of :math:`\ln(M^b (\ln M)^c)` on :math:`\ln M` over ``Ms``: what a log-log fit should find."""
    if len(Ms) < 2 or min(Ms) < 2:
        raise ValueError(f"need at least two values of M >= 2 to fit a slope, got Ms={Ms}")
    x = np.log(np.asarray(Ms, dtype=np.float64))
    y = predicted_exponent(alpha) * x + predicted_log_power(alpha) * np.log(x)
    return float(np.polyfit(x, y, 1)[0])


@dataclass(frozen=True)
class ConvergencePoint:
    """At M leaves: the median over repetitions of |H_sample - offset| (nats) and the median bias H_sample - offset."""

    M: int
    median_abs_error: float
    median_error: float


@dataclass(frozen=True)
class EntropyConvergence:
    """Error of the entropy offset against M for one alpha, and the fitted exponent of median |error| ~ C M^b."""

    alpha: float
    points: tuple[ConvergencePoint, ...]
    fitted_exponent: float
    predicted_exponent: float


def entropy_convergence(
    alpha: float, Ms: tuple[int, ...], n_rep: int, rng: np.random.Generator, x_m: float = 1.0
) -> EntropyConvergence:
    r"""Sample :math:`H` ``n_rep`` times at each M, compare with :func:`entropy_offset`, fit the decay.

    The error statistic is the median of :math:`|H - \text{offset}|` (the mean is dominated by
    rare huge draws when :math:`\alpha < 2`); the exponent :math:`b` is the least-squares slope of
    :math:`\log` median error on :math:`\log M`. Memory: one array of ``max(Ms)`` floats at a time.
    """
    alpha = _check_alpha(alpha)
    if n_rep < 1 or len(Ms) < 2:
        raise ValueError(f"need n_rep >= 1 and at least two values of M to fit a rate, got n_rep={n_rep}, Ms={Ms}")
    pts = []
    for M in Ms:
        errs = np.array([-(p * np.log(p)).sum() for p in (sample_masses(M, alpha, rng, x_m) for _ in range(n_rep))])
        errs -= entropy_offset(M, alpha)
        pts.append(ConvergencePoint(int(M), float(np.median(np.abs(errs))), float(np.median(errs))))
    x = np.log([p.M for p in pts])
    y = np.log([p.median_abs_error for p in pts])
    slope = float(np.polyfit(x, y, 1)[0])
    return EntropyConvergence(alpha, tuple(pts), slope, predicted_exponent(alpha))


@dataclass(frozen=True)
class SeedSlopes:
    r"""The fitted slope of :func:`entropy_convergence` over ``len(slopes)`` independent seeds, for one alpha.

    ``interval``: the two-sided 99% Student-t interval of the mean slope (the seeds are iid runs);
    ``predicted``: :func:`predicted_slope` over the same M, with the :math:`\ln M` factor.
    ``runs`` keeps each seed's points.
    """

    alpha: float
    slopes: tuple[float, ...]
    predicted: float
    runs: tuple[EntropyConvergence, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.slopes))

    @property
    def std(self) -> float:
        return float(np.std(self.slopes, ddof=1))

    @property
    def interval(self) -> tuple[float, float]:
        from scipy import stats

        half = float(stats.t.ppf(0.995, len(self.slopes) - 1)) * self.std / math.sqrt(len(self.slopes))
        return self.mean - half, self.mean + half


def entropy_convergence_over_seeds(
    alpha: float, Ms: tuple[int, ...], n_rep: int, rngs: list[np.random.Generator], x_m: float = 1.0
) -> SeedSlopes:
    """:func:`entropy_convergence` once per generator in ``rngs`` (at least 2, e.g. ``rng.spawn(8)``)."""
    if len(rngs) < 2:
        raise ValueError(f"need at least 2 seeds for a spread, got {len(rngs)}")
    runs = tuple(entropy_convergence(alpha, Ms, n_rep, r, x_m) for r in rngs)
    return SeedSlopes(float(alpha), tuple(r.fitted_exponent for r in runs), predicted_slope(alpha, Ms), runs)
