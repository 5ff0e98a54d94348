r"""The Pareto mass assumption (paper Assumption A.7, THEORY §1) and a check of it on real token trees.

Leaf masses :math:`p_j = X_j / \sum_m X_m` with :math:`X_j` iid Pareto(:math:`x_m, \alpha`). For
:math:`\alpha > 1`, as :math:`M \to \infty` (nats),

.. math:: H = \ln M + \ln\frac{\alpha}{\alpha - 1} - \frac{1}{\alpha - 1} + o(1),

independent of :math:`x_m`: :math:`H = \ln S - \frac1S\sum X\ln X`, and by the law of large numbers
:math:`S/M \to \mu = \alpha x_m/(\alpha-1)`, :math:`\frac1M \sum X \ln X \to E[X\ln X] = \mu(\ln x_m + 1/(\alpha-1))`
(the size-biased law of a Pareto(:math:`x_m,\alpha`) is Pareto(:math:`x_m,\alpha-1`)).
The o(1) error is a sum of sample-mean fluctuations: :math:`O(M^{-1/2})` for :math:`\alpha > 2`
(finite variance) and :math:`O(M^{1/\alpha - 1})` for :math:`1 < \alpha < 2` (stable-law
fluctuations, up to log factors), so convergence is slow for heavy tails;
:func:`entropy_convergence` measures the exponent.

:func:`fit_pareto` fits :math:`\alpha` by maximum likelihood to the leaf masses of any
:class:`~elastic_theory.tree.TokenTree` and tests the fit (Kolmogorov-Smirnov, with a parametric
bootstrap p-value because the plain KS p-value is conservative once parameters are estimated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .tree import TokenTree

__all__ = [
    "ConvergencePoint",
    "EntropyConvergence",
    "ParetoFit",
    "entropy_convergence",
    "entropy_offset",
    "fit_pareto",
    "predicted_exponent",
    "sample_masses",
]


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
    x = x_m * (1.0 + rng.pareto(alpha, size=int(M)))
    return x / x.sum()


def entropy_offset(M: float, alpha: float) -> float:
    r""":math:`\ln M + \ln(\alpha/(\alpha-1)) - 1/(\alpha-1)`: the limiting leaf entropy in nats (:math:`\alpha > 1`)."""
    alpha = _check_alpha(alpha)
    if not M >= 1:
        raise ValueError(f"M must be >= 1, got {M!r}")
    return math.log(M) + math.log(alpha / (alpha - 1.0)) - 1.0 / (alpha - 1.0)


def predicted_exponent(alpha: float) -> float:
    r"""Exponent :math:`b` in error :math:`\sim M^b`: :math:`-1/2` for :math:`\alpha \ge 2`, :math:`1/\alpha - 1` for :math:`1 < \alpha < 2`."""
    alpha = _check_alpha(alpha)
    return -0.5 if alpha >= 2.0 else 1.0 / alpha - 1.0


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
        errs = np.empty(n_rep)
        for r in range(n_rep):
            p = sample_masses(M, alpha, rng, x_m)
            errs[r] = -(p * np.log(p)).sum() - entropy_offset(M, alpha)
        pts.append(ConvergencePoint(int(M), float(np.median(np.abs(errs))), float(np.median(errs))))
    x = np.log([p.M for p in pts])
    y = np.log([p.median_abs_error for p in pts])
    slope = float(np.polyfit(x, y, 1)[0])
    return EntropyConvergence(alpha, tuple(pts), slope, predicted_exponent(alpha))


@dataclass(frozen=True)
class ParetoFit:
    r"""Maximum-likelihood Pareto fit to leaf masses, with goodness of fit.

    ``x_m`` = smallest mass, ``alpha`` = :math:`n / \sum_j \ln(p_j/x_m)` (closed-form MLE);
    ``ks_statistic``: sup-distance of the empirical CDF from the fitted one; ``ks_pvalue_plain``:
    scipy's KS p-value *as if* the parameters were known (conservative: too large, because the
    fit was tuned to these data); ``bootstrap_pvalue``: the fraction of ``n_bootstrap`` samples
    from the fitted law, each refitted, whose KS statistic is at least as large (the honest one).
    Masses are scale-free, so the fit is the same for counts and for probabilities.
    """

    n: int
    x_m: float
    alpha: float
    ks_statistic: float
    ks_pvalue_plain: float
    bootstrap_pvalue: float
    n_bootstrap: int


def _mle_and_ks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise MLE (x_m = row min) and KS statistic for a 2-D array of samples."""
    x = np.sort(x, axis=-1)
    n = x.shape[-1]
    x_m = x[..., :1]
    logs = np.log(x / x_m).sum(axis=-1)
    alpha = n / np.maximum(logs, np.finfo(np.float64).tiny)
    cdf = 1.0 - (x_m / x) ** alpha[..., None]
    i = np.arange(1, n + 1)
    ks = np.maximum((i / n - cdf).max(axis=-1), (cdf - (i - 1) / n).max(axis=-1))
    return alpha, ks


def fit_pareto(masses: TokenTree | np.ndarray, rng: np.random.Generator, n_bootstrap: int = 200) -> ParetoFit:
    """Fit Pareto(x_m, alpha) to the leaf masses of a token tree (or to an array of positive masses).

    Needs at least 2 distinct masses. Ties (common for count data, e.g. many leaves seen once)
    make any continuous fit look worse; the KS statistic reports that honestly.
    """
    from scipy import stats

    x = np.asarray(masses.leaves.prob if isinstance(masses, TokenTree) else masses, dtype=np.float64).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)) or (x <= 0).any():
        raise ValueError(f"need at least 2 finite positive masses, got {x.size} values (min {x.min() if x.size else None!r})")
    if np.all(x == x[0]):
        raise ValueError("all masses are equal: a Pareto tail cannot be fitted (alpha would be infinite)")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    alpha, ks = (float(v[0]) for v in _mle_and_ks(x[None, :]))
    x_m = float(x.min())
    plain = float(stats.kstest(x, stats.pareto(alpha, scale=x_m).cdf).pvalue)
    boot = x_m * (1.0 + rng.pareto(alpha, size=(n_bootstrap, x.size)))
    _, ks_boot = _mle_and_ks(boot)
    pval = float((1 + (ks_boot >= ks).sum()) / (n_bootstrap + 1))
    return ParetoFit(int(x.size), x_m, alpha, ks, plain, pval, int(n_bootstrap))
