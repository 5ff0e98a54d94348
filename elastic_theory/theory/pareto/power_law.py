r"""The discrete power law above a cutoff (Clauset, Shalizi and Newman 2009): maximum-likelihood fit, sampling and the
semi-parametric bootstrap test."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np



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
        r"""Standard error of ``exponent`` (and of ``alpha``) from the discrete Fisher information (CSN eq. 3.6).

        With :math:`q = x_{\min}` and :math:`\zeta^{(j)}` the j-th derivative of the Hurwitz zeta function in
        :math:`a`, one count carries the information :math:`I(a) = \zeta''(a, q)/\zeta(a, q) - (\zeta'(a, q)/
        \zeta(a, q))^2 = \operatorname{Var}_a[\ln X]`, and :math:`se = 1/\sqrt{n_{tail} I(\hat a)}` (mpmath at 30
        digits: the difference of the two terms loses digits at large :math:`a`). The continuous formula
        :math:`(a - 1)/\sqrt{n_{tail}}` (CSN eq. 3.2), its limit for large :math:`x_{\min}`, understates the spread
        when the tail starts at a small count: by 23% at :math:`x_{\min} = 1`, :math:`a = 3.5`.
        """
        return discrete_exponent_se(self.exponent, self.x_min, self.n_tail)


def discrete_exponent_se(exponent: float, x_min: int, n: int) -> float:
    r""":math:`1/\sqrt{n\, I(a)}`, :math:`I(a) = \operatorname{Var}_a[\ln X]` for :math:`p(x) = x^{-a}/\zeta(a, x_{\min})`
    (:attr:`DiscretePowerLawFit.exponent_se`).

    >>> round(discrete_exponent_se(3.5, 1, 2000) / (2.5 / 2000 ** 0.5), 3)  # against the continuous formula
    1.298
    """
    import mpmath

    if not (exponent > 1 and math.isfinite(exponent)) or int(x_min) != x_min or x_min < 1 or n < 1:
        raise ValueError(f"need exponent > 1, an integer x_min >= 1 and n >= 1, got {exponent!r}, {x_min!r}, {n!r}")
    with mpmath.workdps(30):
        a, q = mpmath.mpf(exponent), int(x_min)
        z, z1, z2 = (mpmath.zeta(a, q, j) for j in range(3))
        info = z2 / z - (z1 / z) ** 2
    return 1.0 / math.sqrt(n * float(info))


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


def exponent_bootstrap_se(counts: np.ndarray, rng: np.random.Generator, n_bootstrap: int = 200,
                          tail_fraction: float = 0.25) -> float:
    r"""Standard error of the fitted exponent by the nonparametric bootstrap of the whole fit, ``x_min`` included.

    ``n_bootstrap`` resamples of the counts with replacement, each refitted by :func:`fit_discrete_power_law`
    (its own ``x_min`` chosen by KS), and the sample standard deviation of their exponents (Clauset et al. 2009,
    §3.5). The Fisher :attr:`DiscretePowerLawFit.exponent_se` holds ``x_min`` fixed; when the KS choice moves
    ``x_min`` away from the true cutoff the tail's estimate tends to sit far from the truth (at a = 1.5 and
    n = 2000, the Fisher se covers 0.80 of the fits whose x_min was not 1), which this spread includes. About
    ``n_bootstrap`` fits: 0.2 s for 2000 counts and the default.
    """
    x = _as_counts(counts)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be an integer >= 2, got {n_bootstrap!r}")
    fits = _fit_sorted([np.sort(rng.choice(x, x.size)) for _ in range(n_bootstrap)], _check_tail_fraction(tail_fraction))
    return float(np.std([f.exponent for f in fits], ddof=1))


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


def _clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


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
