r"""The Pareto mass assumption (paper Assumption A.7, THEORY §1) and a check of it on real token trees.

Leaf masses :math:`p_j = X_j / \sum_m X_m` with :math:`X_j` iid Pareto(:math:`x_m, \alpha`). For
:math:`\alpha > 1`, as :math:`M \to \infty` (nats),

.. math:: H = \ln M + \ln\frac{\alpha}{\alpha - 1} - \frac{1}{\alpha - 1} + o(1),

independent of :math:`x_m`: :math:`H = \ln S - T/S` with :math:`S = \sum X`, :math:`T = \sum X\ln X`,
and by the law of large numbers :math:`S/M \to \mu = \alpha x_m/(\alpha-1)`,
:math:`T/M \to \nu = E[X\ln X] = \mu(\ln x_m + 1/(\alpha-1))` (the size-biased law of a
Pareto(:math:`x_m,\alpha`) is Pareto(:math:`x_m,\alpha-1`)).

**Rate** (:func:`predicted_exponent`, :func:`predicted_log_power`, :func:`predicted_slope`).
Write :math:`S = M\mu + A`, :math:`T = M\nu + B` with centred sums :math:`A, B`. To first order
:math:`H - \text{offset} = \frac{A(1 + \nu/\mu) - B}{M\mu} = \frac{1}{M\mu}\sum_j (Y_j - EY)`,
:math:`Y = X(1 + \nu/\mu - \ln X)`, whose tail is that of :math:`X\ln X`:
:math:`P(|Y| > t) \sim x_m^\alpha t^{-\alpha} (\ln t)^{\alpha}` (:math:`X\ln X > t` iff
:math:`X \gtrsim t/\ln t`). Hence

* :math:`\alpha > 2`: finite variance, the CLT gives :math:`|H - \text{offset}| \sim M^{-1/2}`;
* :math:`\alpha = 2`: the truncated variance grows like :math:`\frac23(\ln t)^3`, so
  :math:`\sum (Y - EY) \sim \sqrt{M}(\ln M)^{3/2}` and the error is :math:`M^{-1/2}(\ln M)^{3/2}`;
* :math:`1 < \alpha < 2`: the generalized CLT scales the sum by :math:`a_M` with
  :math:`M P(|Y| > a_M) = 1`, i.e. :math:`a_M \approx x_m M^{1/\alpha} \ln a_M \approx x_m
  M^{1/\alpha} (\ln M)/\alpha`, so the error is :math:`M^{1/\alpha - 1} \ln M` (a totally skewed
  stable law: one large :math:`X_j = y` moves :math:`B` by :math:`y\ln y` but :math:`A` only by :math:`y`).

The second-order terms are :math:`O((A/M\mu)^2)`, of lower order. Over a finite range of M the
log factor steepens nothing but flattens the log-log slope: :func:`predicted_slope` is the
least-squares slope of :math:`\ln(M^b (\ln M)^c)` on :math:`\ln M` over the M used, e.g.
:math:`-1/3 + 0.11 = -0.22` at :math:`\alpha = 1.5` for :math:`M = 2^{10} \dots 2^{16}`, where
:math:`M^{1/\alpha-1}` alone says :math:`-0.33`. :func:`entropy_convergence_over_seeds` measures the
slope with its spread over independent seeds.

**Fitting counts.** A token tree records how often each leaf was seen, not its mass: whole numbers,
many of them 1. A continuous Pareto fitted to such counts is rejected whatever the masses were (the
KS distance is at least the fraction of leaves seen once). :func:`fit_discrete_power_law` fits a
discrete power law above a cutoff :math:`x_{\min}` (Clauset, Shalizi and Newman 2009), which is what
Pareto masses give for counts well above the Poisson noise, :func:`power_law_test` adds the
semi-parametric bootstrap p-value, and :func:`rejection_rate` measures the whole pipeline's size and
power (masses :math:`\to` multinomial counts :math:`\to` leaves seen :math:`\to` test).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .tree import TokenTree

__all__ = [
    "ALTERNATIVES",
    "ConvergencePoint",
    "CountsVerdict",
    "EntropyConvergence",
    "DiscretePowerLawFit",
    "PowerLawTest",
    "RejectionRate",
    "SeedSlopes",
    "counts_verdict",
    "entropy_convergence",
    "entropy_convergence_over_seeds",
    "entropy_offset",
    "fit_discrete_power_law",
    "leaf_counts",
    "matching_leaf_total",
    "power_law_test",
    "predicted_exponent",
    "predicted_log_power",
    "predicted_slope",
    "rejection_rate",
    "sample_discrete_power_law",
    "sample_masses",
    "tree_leaf_counts",
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


# ---------------------------------------------------------------------- discrete power law on counts
_MAX_EXPONENT = 30.0  # the MLE is clipped here: a tail that steep has all its values at x_min
_FD_STEP = 1e-4  # finite-difference step in a for ln zeta(a, q): truncation ~h^2 = 1e-8 in l'(a)


def _discrete_mle(q: np.ndarray, mean_log: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    r"""Vectorized MLE of :math:`a` in :math:`p(x) = x^{-a}/\zeta(a, q)`, :math:`x \ge q`, given the mean of :math:`\ln x`.

    The log-likelihood per point :math:`\ell(a) = -\ln\zeta(a, q) - a\,\overline{\ln x}` is concave
    (:math:`\ln\zeta` is a log-sum-exp of linear functions of :math:`a`), and :math:`\ell'(a) =
    E_a[\ln X] - \overline{\ln x}` falls from :math:`+\infty` at :math:`a = 1` to
    :math:`\ln q - \overline{\ln x} < 0`. Safeguarded Newton on :math:`\ell'` inside a shrinking bracket
    (derivatives of :math:`\ln\zeta` by central differences), started at the continuous approximation
    :math:`1 + 1/(\overline{\ln x} - \ln(q - 1/2))` (Clauset et al. 2009, eq. 3.7); stops when every
    step is below ``tol``.
    """
    from scipy.special import zeta

    h = _FD_STEP
    lo = np.full(q.shape, 1.0 + 2 * h)
    hi = np.full(q.shape, _MAX_EXPONENT)
    a = np.clip(1.0 + 1.0 / (mean_log - np.log(q - 0.5)), lo, hi)
    for _ in range(60):
        g = np.log(zeta(np.stack([a - h, a, a + h]), q))
        d1 = -(g[2] - g[0]) / (2 * h) - mean_log  # l'(a)
        d2 = -(g[2] - 2 * g[1] + g[0]) / (h * h)  # l''(a) < 0
        lo = np.where(d1 > 0, a, lo)
        hi = np.where(d1 > 0, hi, a)
        newton = a - d1 / np.minimum(d2, -np.finfo(np.float64).tiny)
        new = np.where((newton > lo) & (newton < hi), newton, 0.5 * (lo + hi))
        done = np.abs(new - a).max() <= tol
        a = new
        if done:
            break
    return a


@dataclass(frozen=True)
class DiscretePowerLawFit:
    r"""Discrete power law :math:`p(x) = x^{-a}/\zeta(a, x_{\min})` on :math:`x \ge x_{\min}`, fitted to counts.

    Clauset, Shalizi and Newman (2009, SIAM Review 51:661), §3: for each candidate :math:`x_{\min}`
    the exact discrete MLE of :math:`a`, then the :math:`x_{\min}` whose fitted law is closest to
    the tail's empirical CDF in Kolmogorov-Smirnov distance. ``n``: all counts; ``n_tail``: those
    :math:`\ge x_{\min}`. ``alpha`` :math:`= a - 1` is the Pareto index of the masses
    (:math:`P(X \ge x) \sim x^{-(a-1)}`), the ``alpha`` of :func:`sample_masses`.
    """

    n: int
    x_min: int
    n_tail: int
    exponent: float
    ks_statistic: float

    @property
    def alpha(self) -> float:
        return self.exponent - 1.0

    @property
    def exponent_se(self) -> float:
        r"""Asymptotic standard error of ``exponent`` (and of ``alpha``): :math:`(a - 1)/\sqrt{n_{tail}}` (CSN eq. 3.2)."""
        return (self.exponent - 1.0) / math.sqrt(self.n_tail)


def _as_counts(counts: np.ndarray) -> np.ndarray:
    x = np.asarray(counts)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array of positive integers, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        if not (np.issubdtype(x.dtype, np.floating) and np.all(np.isfinite(x)) and np.all(x == np.round(x))):
            raise ValueError("counts must be whole numbers (a discrete power law is fitted to counts, not to masses)")
        x = x.astype(np.int64)
    if (x < 1).any():
        raise ValueError(f"counts must be >= 1 (leaves never seen are not in the tree), got min {x.min()}")
    return np.sort(x)


_BATCH = 64  # samples fitted together: the KS arrays hold batch x candidates x distinct values floats


def _check_tail_fraction(tail_fraction: float) -> float:
    if not 0.0 <= tail_fraction < 1.0:
        raise ValueError(f"tail_fraction must be in [0, 1), got {tail_fraction!r}")
    return float(tail_fraction)


def _fit_sorted(samples: list[np.ndarray], tail_fraction: float) -> list[DiscretePowerLawFit]:
    """:func:`fit_discrete_power_law` for many sorted samples, in batches of padded arrays (one zeta call per step)."""
    return [f for i in range(0, len(samples), _BATCH) for f in _fit_batch(samples[i: i + _BATCH], tail_fraction)]


def _candidates(x: np.ndarray, tail_fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Distinct values, their first index in sorted ``x``, and the last candidate index for x_min (-1: none):
    x_min = values[k] for k = 0..last leaves at least a ``tail_fraction`` of ``x`` (and 2) and two distinct values."""
    values, start = np.unique(x, return_index=True)
    min_tail = max(2, math.ceil(tail_fraction * x.size))
    return values, start, min(int(np.searchsorted(-(x.size - start), -min_tail, side="right")) - 1, values.size - 2)


def _fit_batch(samples: list[np.ndarray], tail_fraction: float) -> list[DiscretePowerLawFit]:
    rows = []
    for x in samples:
        values, start, last = _candidates(x, tail_fraction)
        if last < 0:
            raise ValueError(f"no x_min leaves a {tail_fraction:g} share (and 2) of the {x.size} counts and two distinct "
                             f"values above it ({values.size} distinct): lower tail_fraction or use more data")
        logs = np.log(x.astype(np.float64))
        suffix = np.cumsum(logs[::-1])[::-1]
        rows.append((x.size, values, start, last + 1, suffix[start[: last + 1]]))
    B, D, K = len(rows), max(r[1].size for r in rows), max(r[3] for r in rows)
    v = np.ones((B, D))  # padding is masked below
    first = np.zeros((B, D))  # start index of each distinct value, and of the one after it
    after = np.zeros((B, D))
    valid_v = np.zeros((B, D), dtype=bool)
    q = np.ones((B, K))
    mean_log = np.ones((B, K))
    n_tail = np.ones((B, K))
    valid_k = np.zeros((B, K), dtype=bool)
    for i, (n, values, start, k, sums) in enumerate(rows):
        d = values.size
        v[i, :d], first[i, :d], after[i, :d], valid_v[i, :d] = values, start, np.append(start[1:], n), True
        q[i, :k], n_tail[i, :k], valid_k[i, :k] = values[:k], n - start[:k], True
        mean_log[i, :k] = sums / (n - start[:k])
    mean_log[~valid_k] = 1.0  # any value above ln q = 0 keeps the padding's MLE finite
    a = _discrete_mle(q, mean_log)
    from scipy.special import zeta

    # KS over the tail: the model CDF F(v) = 1 - zeta(a, v + 1)/zeta(a, q) jumps at every integer and the
    # empirical one only at observed values v_j, so sup |F_emp - F| is reached at some v_j or just below it.
    zq = zeta(a, q)[:, :, None]
    ge = zeta(a[:, :, None], v[:, None, :]) / zq  # P(X >= v_j)
    gt = ge - v[:, None, :] ** -a[:, :, None] / zq  # P(X > v_j)
    start_k = np.take_along_axis(first, np.arange(K)[None, :].repeat(B, 0).clip(max=D - 1), axis=1)[:, :, None]
    nt = n_tail[:, :, None]
    dev = np.maximum(np.abs((after[:, None, :] - start_k) / nt - (1.0 - gt)),
                     np.abs((first[:, None, :] - start_k) / nt - (1.0 - ge)))
    in_tail = valid_v[:, None, :] & (np.arange(D)[None, None, :] >= np.arange(K)[None, :, None])
    ks = np.where(in_tail, dev, 0.0).max(axis=2)
    ks[~valid_k] = np.inf
    best = ks.argmin(axis=1)
    return [DiscretePowerLawFit(rows[i][0], int(q[i, b]), int(n_tail[i, b]), float(a[i, b]), float(ks[i, b]))
            for i, b in enumerate(best)]


def fit_discrete_power_law(counts: np.ndarray, tail_fraction: float = 0.25) -> DiscretePowerLawFit:
    """Fit :class:`DiscretePowerLawFit` to positive integer ``counts``; ``x_min`` ranges over the observed
    values that leave at least a ``tail_fraction`` of the counts (and at least two, of two distinct values)
    in the tail. Clauset et al. let ``x_min`` go up to the largest values; a tail of a few dozen points
    fits almost anything, so the default keeps a quarter of the leaves, which kept the measured size near
    5% and raised the power several-fold on tree-sized samples (docs/theory.md)."""
    return _fit_sorted([_as_counts(counts)], _check_tail_fraction(tail_fraction))[0]


def sample_discrete_power_law(size: int, exponent: float, x_min: int, rng: np.random.Generator) -> np.ndarray:
    r"""``size`` iid draws from :math:`p(x) = x^{-a}/\zeta(a, x_{\min})`, :math:`x \ge x_{\min}` (exact inverse CDF).

    :math:`S(x) = P(X \ge x) = \zeta(a, x)/\zeta(a, x_{\min})` is tabulated for the first
    :math:`2^{16}` integers by a reverse cumulative sum (no cancellation); a uniform :math:`U`
    maps to the largest :math:`x` with :math:`S(x) \ge U`. Beyond the table (probability
    :math:`S(x_{\min} + 2^{16})`) the continuous approximation :math:`x = \lfloor (x_0 - \tfrac12)(U/S(x_0))^{-1/(a-1)}
    + \tfrac12 \rfloor` of Clauset et al. (2009, App. D) is used, whose relative error is :math:`O(x_0^{-2})`.
    """
    a = float(exponent)
    if not (a > 1 and math.isfinite(a)):
        raise ValueError(f"exponent must be finite and > 1 (a normalizable power law), got {exponent!r}")
    if int(x_min) != x_min or x_min < 1:
        raise ValueError(f"x_min must be an integer >= 1, got {x_min!r}")
    from scipy.special import zeta

    table = np.arange(int(x_min), int(x_min) + 2**16, dtype=np.float64)
    x0 = table[-1] + 1.0
    z0 = float(zeta(a, x0))
    surv = (np.cumsum((table ** -a)[::-1])[::-1] + z0) / float(zeta(a, x_min))  # S(x), decreasing
    s0 = z0 / float(zeta(a, x_min))
    u = rng.random(int(size))
    idx = np.searchsorted(-surv, -u, side="right")  # number of x with S(x) >= u; >= 1 because S(x_min) = 1
    out = table[np.maximum(idx - 1, 0)]
    far = u < s0
    out[far] = np.floor((x0 - 0.5) * (u[far] / s0) ** (-1.0 / (a - 1.0)) + 0.5)
    return out.astype(np.int64)


@dataclass(frozen=True)
class PowerLawTest:
    r"""Goodness of fit of a :class:`DiscretePowerLawFit`: a Monte Carlo test on its KS statistic.

    ``pvalue`` is :math:`(1 + \#\{b: D_b \ge D\})/(B + 1)` over ``n_bootstrap`` samples, each refitted
    (``x_min`` included), :math:`D_b` its KS statistic. ``bootstrap`` says where the samples come from:

    * ``"semi-parametric"`` (Clauset et al. 2009, §4.1): each of the ``n`` values comes, with
      probability ``n_tail/n``, from the fitted power law above ``x_min``, else uniformly from the
      observed values below it. Its null is "the counts above x_min follow a discrete power law".
    * ``"pipeline"``: leaf counts of ``n_draws`` multinomial draws from Pareto masses at the fitted
      ``alpha`` over :func:`matching_leaf_total` leaves, leaves never drawn dropped. Its null is the
      assumption itself, Pareto masses seen through a finite sample; the counts just above ``x_min``
      are Poisson-blurred, which the semi-parametric null does not know (it rejected Pareto masses
      in 15 and 17 of 200 tree-sized samples at level 0.05; docs/theory.md).

    The smallest possible p-value is :math:`1/(B+1)`; the size is measured, not assumed (:func:`rejection_rate`).
    """

    fit: DiscretePowerLawFit
    pvalue: float
    n_bootstrap: int
    bootstrap: str

    @property
    def pvalue_interval(self) -> tuple[float, float]:
        """Exact 95% interval of the p-value the test would give with infinitely many bootstrap samples
        (Clopper-Pearson on the ``n_bootstrap`` samples as extreme as the data): its Monte Carlo error."""
        return _clopper_pearson(round(self.pvalue * (self.n_bootstrap + 1)) - 1, self.n_bootstrap)


def _clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def _semiparametric_samples(x: np.ndarray, fit: DiscretePowerLawFit, n_bootstrap: int, rng: np.random.Generator) -> list[np.ndarray]:
    body = x[x < fit.x_min]
    n_tail = rng.binomial(x.size, fit.n_tail / x.size, size=n_bootstrap)
    tail = sample_discrete_power_law(int(n_tail.sum()), fit.exponent, fit.x_min, rng)
    ends = np.cumsum(n_tail)
    out = []
    for b in range(n_bootstrap):
        low = body[rng.integers(0, body.size, size=x.size - n_tail[b])] if body.size else body
        out.append(np.sort(np.concatenate([low, tail[ends[b] - n_tail[b]: ends[b]]])))
    return out


def _pipeline_samples(x: np.ndarray, fit: DiscretePowerLawFit, n_draws: int, n_bootstrap: int, rng: np.random.Generator) -> list[np.ndarray]:
    law = functools.partial(_pareto_law, fit.alpha)
    try:
        M = matching_leaf_total(law, x.size, n_draws, int(rng.integers(2**63)))
    except ValueError:  # a fitted alpha so small that no number of leaves shows as many: take the most tried
        M = 64 * x.size
    return [np.sort(leaf_counts(law(M, rng), n_draws, rng)) for _ in range(n_bootstrap)]


def _pareto_law(alpha: float, M: int, rng: np.random.Generator) -> np.ndarray:
    return sample_masses(M, alpha, rng)


def _tests_sorted(
    samples: list[np.ndarray], n_bootstrap: int, rng: np.random.Generator, tail_fraction: float, n_draws: int | None
) -> list[PowerLawTest]:
    fits = _fit_sorted(samples, tail_fraction)
    if n_draws is None:
        boots = [b for x, f in zip(samples, fits) for b in _semiparametric_samples(x, f, n_bootstrap, rng)]
    else:
        boots = [b for x, f in zip(samples, fits) for b in _pipeline_samples(x, f, n_draws, n_bootstrap, rng)]
    # A bootstrap sample too degenerate to fit (e.g. one leaf holding all but a handful of the draws) counts as
    # more extreme than the data: KS = inf.
    ok = np.array([_candidates(b, tail_fraction)[2] >= 0 for b in boots], dtype=bool)
    ks = np.full(len(boots), np.inf)
    ks[ok] = [f.ks_statistic for f in _fit_sorted([b for b, o in zip(boots, ok) if o], tail_fraction)]
    ks = ks.reshape(len(samples), n_bootstrap)
    kind = "semi-parametric" if n_draws is None else "pipeline"
    return [PowerLawTest(f, float((1 + (k >= f.ks_statistic).sum()) / (n_bootstrap + 1)), n_bootstrap, kind)
            for f, k in zip(fits, ks)]


def power_law_test(
    counts: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = 99,
    tail_fraction: float = 0.25,
    n_draws: int | None = None,
) -> PowerLawTest:
    """Fit a discrete power law with a tail cutoff to ``counts`` and test it (:class:`PowerLawTest`): against
    Pareto masses seen in ``n_draws`` responses (the pipeline bootstrap) when ``n_draws`` is given, else
    against a discrete power law above ``x_min`` (semi-parametric)."""
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    x = _as_counts(counts)
    if n_draws is not None and n_draws < x.sum():
        raise ValueError(f"n_draws ({n_draws}) must be at least the sum of the counts ({x.sum()})")
    return _tests_sorted([x], n_bootstrap, rng, _check_tail_fraction(tail_fraction), n_draws)[0]


def tree_leaf_counts(tree: TokenTree) -> np.ndarray:
    """The leaf counts of a tree built from whole responses (``counts`` or one per row): leaf mass times
    the number of responses, which must come out whole."""
    x = tree.leaves.prob * tree.n_sequences
    counts = np.rint(x)
    if not np.allclose(x, counts, rtol=0.0, atol=1e-6) or (counts < 1).any():
        raise ValueError("the tree's leaf masses are not whole counts (a tree built with weights=): counts are needed")
    return counts.astype(np.int64)


def leaf_counts(masses: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """The counts of the leaves seen in ``n_draws`` multinomial draws from ``masses`` (leaves seen 0 times dropped):
    what a token tree built from ``n_draws`` responses records."""
    counts = rng.multinomial(int(n_draws), masses)
    return counts[counts > 0]


@dataclass(frozen=True)
class RejectionRate:
    """How often :func:`power_law_test` rejected (``pvalue <= level``) in ``n_rep`` simulated data sets, with
    the exact (Clopper-Pearson) 95% interval of the rate."""

    rejections: int
    n_rep: int
    level: float
    n_bootstrap: int

    @property
    def rate(self) -> float:
        return self.rejections / self.n_rep

    @property
    def interval(self) -> tuple[float, float]:
        return _clopper_pearson(self.rejections, self.n_rep)


def rejection_rate(
    masses: Callable[[np.random.Generator], np.ndarray],
    n_draws: int,
    n_rep: int,
    rng: np.random.Generator,
    n_bootstrap: int = 19,
    level: float = 0.05,
    tail_fraction: float = 0.25,
    bootstrap: str = "pipeline",
) -> RejectionRate:
    """Run the whole pipeline ``n_rep`` times: leaf masses from ``masses(rng)`` -> :func:`leaf_counts` of
    ``n_draws`` responses -> :func:`power_law_test`; count the rejections at ``level``.

    With Pareto masses this is the test's size (false-rejection rate), with other masses its power;
    ``bootstrap`` picks the test's null (:class:`PowerLawTest`).
    ``n_bootstrap = 19`` at ``level = 0.05`` is the smallest exact Monte Carlo test (reject only when the
    data's KS exceeds all 19 bootstrap ones).
    """
    if n_rep < 1:
        raise ValueError(f"n_rep must be >= 1, got {n_rep}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if bootstrap not in ("pipeline", "semi-parametric"):
        raise ValueError(f"bootstrap must be 'pipeline' or 'semi-parametric', got {bootstrap!r}")
    samples = [np.sort(leaf_counts(masses(rng), n_draws, rng)) for _ in range(n_rep)]
    tests = _tests_sorted(samples, n_bootstrap, rng, _check_tail_fraction(tail_fraction),
                          int(n_draws) if bootstrap == "pipeline" else None)
    return RejectionRate(sum(t.pvalue <= level for t in tests), n_rep, level, n_bootstrap)


def matching_leaf_total(
    masses: Callable[[int, np.random.Generator], np.ndarray], n_seen: int, n_draws: int, seed: int, n_avg: int = 4
) -> int:
    r"""The number of leaves :math:`M` for which ``masses(M, rng)`` shows, on average, ``n_seen`` leaves in
    ``n_draws`` responses: leaves never drawn are not in a tree, so a tree with ``n_seen`` leaves comes from
    more. The expected number seen, :math:`\sum_j 1 - (1 - p_j)^N`, averaged over ``n_avg`` draws with the
    same seed at every M (so it is smooth in M), is bracketed by doubling M from ``n_seen`` (up to
    :math:`64\,n_{seen}`) and bisected to 1% of M: the smallest M found whose mean reaches ``n_seen``.
    """
    def seen(M: int) -> float:
        rng = np.random.default_rng(seed)
        return float(np.mean([(-np.expm1(n_draws * np.log1p(-masses(M, rng)))).sum() for _ in range(n_avg)]))

    lo, hi = int(n_seen), int(n_seen)
    while seen(hi) < n_seen:
        lo, hi = hi, 2 * hi
        if hi > 64 * n_seen:
            raise ValueError(f"even {hi} leaves show fewer than {n_seen} in {n_draws} draws: the mass law cannot match this tree")
    while hi - lo > max(1, hi // 100):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if seen(mid) < n_seen else (lo, mid)
    return hi


@dataclass(frozen=True)
class CountsVerdict:
    """A :func:`power_law_test` on a tree's leaf counts, with the pipeline's measured size and power.

    ``verdict``: "fails" when the test rejects at ``level`` beyond its Monte Carlo error (the whole 95%
    interval of the p-value at or below ``level``) and its measured size is compatible with ``level``
    (the lower end of its 95% interval at most ``level``); "holds" when the p-value's interval lies
    above ``level`` and every power's 95% interval above ``power_floor``; otherwise "inconclusive" (a
    test that rejects true Pareto data too often says nothing, a p-value whose interval straddles the
    level is undecided, and a non-rejection the test had little power to turn into a rejection says little).
    """

    test: PowerLawTest
    n_draws: int
    leaf_total: int
    size: RejectionRate
    power: dict[str, RejectionRate]
    level: float
    power_floor: float

    @property
    def verdict(self) -> str:
        p_lo, p_hi = self.test.pvalue_interval
        if self.size.interval[0] > self.level:
            return "inconclusive"
        if p_hi <= self.level:
            return "fails"
        if p_lo > self.level and all(r.interval[0] >= self.power_floor for r in self.power.values()):
            return "holds"
        return "inconclusive"


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


ALTERNATIVES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "log-normal(sigma=2)": lambda M, rng: _normalized(rng.lognormal(0.0, 2.0, size=M)),
    "exponential": lambda M, rng: _normalized(rng.exponential(size=M)),
}
"""Mass laws the test should tell from Pareto: the log-normal is the classic look-alike of a power law
(Clauset et al. 2009, §5), the exponential has a light tail."""


def counts_verdict(
    counts: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 99,
    n_rep_size: int = 40,
    n_rep_power: int = 20,
    alternatives: tuple[str, ...] = tuple(ALTERNATIVES),
    level: float = 0.05,
    power_floor: float = 0.8,
    tail_fraction: float = 0.25,
) -> CountsVerdict:
    """Test Pareto leaf masses on a tree's leaf ``counts`` (from ``n_draws`` responses) and measure the test.

    Size: ``n_rep_size`` pipelines with Pareto masses at the fitted alpha; power: ``n_rep_power`` with
    each mass law of ``alternatives`` (names in :data:`ALTERNATIVES`). Every simulated law gets the
    number of leaves that shows, on average, as many leaves as the data (:func:`matching_leaf_total`).
    The simulations use 19 bootstrap samples each (exact Monte Carlo tests at level 0.05).
    """
    unknown = [a for a in alternatives if a not in ALTERNATIVES]
    if unknown:
        raise ValueError(f"unknown alternatives {unknown}; choose from {sorted(ALTERNATIVES)}")
    test = power_law_test(counts, rng, n_bootstrap, tail_fraction, n_draws)
    laws = {"pareto": functools.partial(_pareto_law, test.fit.alpha), **{a: ALTERNATIVES[a] for a in alternatives}}
    totals = {name: matching_leaf_total(law, test.fit.n, n_draws, int(rng.integers(2**63))) for name, law in laws.items()}

    def rate(name: str, n_rep: int) -> RejectionRate:
        M = totals[name]
        return rejection_rate(lambda r: laws[name](M, r), n_draws, n_rep, rng, 19, level, tail_fraction)

    return CountsVerdict(test, int(n_draws), totals["pareto"], rate("pareto", n_rep_size),
                         {a: rate(a, n_rep_power) for a in alternatives}, level, power_floor)
