r"""Which way does a curve bend: the phase-order test, its multiplicity correction, the steepest phase, calibration.

All on the fits of :mod:`elastic_theory.stats.phases` (:math:`t = \ln(1 + n)`, 1-3 phases chosen by BIC, drops
:math:`d_j = -b_j` per e-fold of :math:`1 + n`).

**Phase-order test** (:func:`phase_order_test`). Statistics, from the chosen fit: the largest speed-up at a knot
:math:`U = \max_j (d_{j+1} - d_j)^+` ("slow then fast"), the largest slow-down
:math:`W = \max_j (d_j - d_{j+1})^+` ("fast then slow") and the order statistic :math:`T = \max(U, W)`, all 0
when one phase is chosen. :math:`H_0`: one straight line in :math:`t` (no order). Null curves are the fitted
line plus residuals of the chosen fit, resampled (single residuals, or whole seed curves with ``groups``),
scaled by :math:`\sqrt{n/(n-p)}`; each is refitted with the same BIC choice, so the null distribution includes
the choice of the number of phases. :math:`p = (1 + \#\{T^* \ge T\})/(1 + B)`, likewise for :math:`U`, :math:`W`,
with Monte Carlo standard error :math:`\sqrt{p(1-p)/B}`: at :math:`p = 0.05` it is 0.007 with :math:`B = 999`
and 0.022 with :math:`B = 99`. The reported order is the chosen fit's pattern
(:func:`~elastic_theory.stats.phases.pattern_of`), claimed when :math:`p \le \alpha`. Under :math:`H_0` BIC
chooses one phase for most curves (:math:`T = 0`, :math:`p = 1`), so the null distribution of :math:`T` has an atom
at 0 of mass :math:`1 - \pi`, :math:`\pi` = P(more than one phase | line) (about 0.035 on the rebound design,
docs/phases.md): the size is about :math:`\min(\alpha, \pi)`, exact for :math:`\alpha < \pi` (the range
that matters after a multiplicity correction) and conservative above it.

**Several curves** (:func:`benjamini_hochberg`). Sort the :math:`m` p-values, :math:`p_{(1)} \le \dots \le
p_{(m)}`; the adjusted value is :math:`\tilde p_{(i)} = \min_{j \ge i} \min(1, m\,p_{(j)}/j)`; rejecting every
:math:`\tilde p \le q` keeps the false discovery rate at most :math:`q` for independent or positively dependent
tests (Benjamini & Hochberg 1995; positive regression dependence, Benjamini & Yekutieli 2001). The probability
and log-odds curves of one run are monotone transforms of the same scores, so their tests are expected to be
positively dependent, but that is not proven here; under arbitrary dependence use level :math:`q/\sum_{i \le m} 1/i`
(Benjamini & Yekutieli).

**Steepest phase** (:func:`steepest_drop`). :math:`\hat\theta = \max_j \hat d_j` is biased upward: a maximum of
noisy slopes, with knots placed where the slopes come out extreme. Bootstrap bias correction: with
:math:`\theta^*_b` the same estimate on residual-bootstrap curves around the fit,
:math:`\widehat{\mathrm{bias}} = \overline{\theta^*} - \hat\theta` and
:math:`\hat\theta_{bc} = \hat\theta - \widehat{\mathrm{bias}} = 2\hat\theta - \overline{\theta^*}`. It removes
the bias to first order when the bias changes slowly with the true curve; where two phases drop at about the
same rate the maximum is not smooth and the correction is only partial (docs/phases.md measures both). The
number of phases is held at the chosen one, so the correction does not cover that choice.

**Calibration** (:func:`calibrate_order_test`). Simulate the design (the amounts, the seeds per amount, Gaussian
noise of the measured standard deviation, e.g. :func:`noise_sd`) under (a) a straight line: the fraction of
curves for which the test claims an order is its size; (b) a two-phase curve with a given change of drop at its
knot: the fraction for which it claims the true order is its power. Each with a 95% Wilson interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .._validation import check_count
from .phases import _check, _check_phases, _group_order, _models, _resample, _select_batch, pattern_of, select_phases

__all__ = ["FDRAdjustment", "OrderCalibration", "PhaseOrderTest", "SteepestDrop", "benjamini_hochberg",
           "calibrate_order_test", "noise_sd", "phase_order_test", "steepest_drop"]


def _need_rng(count: int, rng, name: str = "n_resamples") -> int:
    check_count(count, name, 1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("resampling needs an explicit rng (np.random.default_rng(seed))")
    return int(count)


def _monte_carlo_p(null: np.ndarray, observed: float) -> float:
    """``(1 + #{null >= observed}) / (1 + B)``; ties within rounding of ``observed`` count as at least as large."""
    return float((1 + np.count_nonzero(null >= observed - 1e-12 * abs(observed))) / (1 + null.size))


@dataclass(frozen=True)
class PhaseOrderTest:
    """The chosen fit's order (``pattern``), the order statistic and its Monte Carlo p-values (module docstring)."""

    phases: int
    pattern: str
    drops: tuple[float, ...]
    statistic: float
    speed_up: float
    slow_down: float
    p_value: float
    p_speed_up: float
    p_slow_down: float
    n_resamples: int

    @property
    def mc_se(self) -> float:
        r"""Monte Carlo standard error of ``p_value``, :math:`\sqrt{p(1-p)/B}`."""
        return math.sqrt(self.p_value * (1 - self.p_value) / self.n_resamples)

    def verdict(self, alpha: float = 0.05) -> str:
        """The pattern when ``p_value <= alpha``, else ``"no order"``."""
        return self.pattern if self.p_value <= alpha else "no order"

    def as_dict(self) -> dict:
        """The fields and the Monte Carlo standard error, for a results file."""
        return {**asdict(self), "drops": list(self.drops), "mc_se": self.mc_se}


def _contrasts(chosen: np.ndarray, slopes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Largest speed-up ``U`` and slow-down ``W`` of each curve's chosen fit (0 for one phase)."""
    up, down = np.zeros(chosen.size), np.zeros(chosen.size)
    for p, b in enumerate(slopes, start=1):
        rows = chosen == p
        if p > 1 and rows.any():
            change = -np.diff(b[rows], axis=1)  # d_{j+1} - d_j with d = -b
            up[rows], down[rows] = np.maximum(change.max(axis=1), 0), np.maximum(-change.min(axis=1), 0)
    return up, down


def _order_tests(t: np.ndarray, Y: np.ndarray, n_resamples: int, rng: np.random.Generator, max_phases: int,
                 order=None) -> list[PhaseOrderTest]:
    """:func:`phase_order_test` of every curve (row) of ``Y``, all resamples refitted in one batch."""
    models = _models(t, max_phases)
    chosen, slopes, resid = _select_batch(models, Y)
    up, down = _contrasts(chosen, slopes)
    own = np.stack([resid[p - 1][i] for i, p in enumerate(chosen)])
    null = (Y - resid[0])[:, None, :] + _resample(own, chosen, n_resamples, rng, order)  # line + residuals
    up_b, down_b = (c.reshape(Y.shape[0], n_resamples) for c in
                    _contrasts(*_select_batch(models, null.reshape(-1, t.size))[:2]))
    tests = []
    for i, p in enumerate(chosen):
        u, w, drops = float(up[i]), float(down[i]), tuple(float(-b) for b in slopes[p - 1][i])
        tests.append(PhaseOrderTest(
            phases=int(p), pattern=pattern_of(drops), drops=drops, statistic=max(u, w), speed_up=u, slow_down=w,
            p_value=_monte_carlo_p(np.maximum(up_b[i], down_b[i]), max(u, w)),
            p_speed_up=_monte_carlo_p(up_b[i], u), p_slow_down=_monte_carlo_p(down_b[i], w),
            n_resamples=n_resamples))
    return tests


def phase_order_test(amounts, y, *, n_resamples: int = 999, rng: np.random.Generator, max_phases: int = 3,
                     groups=None) -> PhaseOrderTest:
    r"""Does the curve fall slow then fast, fast then slow, or neither? (module docstring)

    ``amounts`` (:math:`n \ge 0`, repeats allowed) and ``y`` as for :func:`~elastic_theory.stats.phases.fit_phases`;
    ``groups`` (one label per point, e.g. the seed) resamples whole residual curves.
    """
    n_resamples = _need_rng(n_resamples, rng)
    t, y = _check(amounts, y)
    _check_phases(t, max_phases)
    return _order_tests(t, y[None, :], n_resamples, rng, max_phases, _group_order(t, groups))[0]


@dataclass(frozen=True)
class FDRAdjustment:
    """Benjamini-Hochberg adjusted p-values, in the input order, and which are rejected at level ``q``."""

    p_adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]
    q: float


def benjamini_hochberg(p_values, q: float = 0.05) -> FDRAdjustment:
    r"""Adjusted p-values :math:`\tilde p_{(i)} = \min_{j \ge i} \min(1, m p_{(j)} / j)` and rejections
    :math:`\tilde p \le q` (module docstring); false discovery rate at most ``q`` under independence or
    positive dependence.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.2], q=0.05).p_adjusted
    (0.04, 0.05333333333333334, 0.05333333333333334, 0.2)
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p_values must be one or more numbers in [0, 1], got {p_values!r}")
    if not 0 < q < 1:
        raise ValueError(f"q (the false discovery rate) must be in (0, 1), got {q!r}")
    order = np.argsort(p, kind="stable")
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return FDRAdjustment(p_adjusted=tuple(float(v) for v in adjusted),
                         rejected=tuple(bool(v <= q) for v in adjusted), q=float(q))


@dataclass(frozen=True)
class SteepestDrop:
    """The steepest phase's drop per e-fold: the estimate, its bootstrap bias and the bias-corrected value."""

    estimate: float
    corrected: float
    bias: float
    se: float
    phases: int
    n_resamples: int

    def as_dict(self) -> dict:
        """The fields, for a results file."""
        return asdict(self)


def steepest_drop(amounts, y, *, phases: int | None = None, n_resamples: int = 999, rng: np.random.Generator,
                  max_phases: int = 3, groups=None) -> SteepestDrop:
    r"""The largest drop per e-fold among the phases of the fit, bias-corrected by the bootstrap (module docstring).

    ``phases`` fixes the number of phases (None: the BIC choice up to ``max_phases``); ``se`` is the bootstrap
    standard deviation of the estimate.
    """
    n_resamples = _need_rng(n_resamples, rng)
    t, y = _check(amounts, y)
    p = phases if phases is not None else select_phases(amounts, y, max_phases=max_phases).phases
    _check_phases(t, p)
    model = _models(t, p)[-1]
    _, slopes, _, resid = model.fit(y[None, :])
    curves = (y - resid) + _resample(resid, [p], n_resamples, rng, _group_order(t, groups))[0]
    estimate, boot = float(-slopes[0].min()), (-model.fit(curves)[1]).max(axis=1)
    bias = float(boot.mean() - estimate)
    return SteepestDrop(estimate=estimate, corrected=estimate - bias, bias=bias, se=float(boot.std(ddof=1)),
                        phases=p, n_resamples=n_resamples)


def noise_sd(amounts, y) -> float:
    r"""Pooled standard deviation of the replicates (seeds) at each amount, :math:`\sqrt{\sum (y - \bar y_n)^2/(N - m)}`
    over :math:`N` points at :math:`m` distinct amounts: the noise level without any curve model."""
    n = np.asarray(amounts, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    levels, index = np.unique(n, return_inverse=True)
    if n.size != y.size or n.size <= levels.size:
        raise ValueError(f"noise_sd needs replicates: {y.size} values at {levels.size} distinct amounts")
    means = np.bincount(index, weights=y) / np.bincount(index)
    return math.sqrt(float(((y - means[index]) ** 2).sum()) / (n.size - levels.size))


@dataclass(frozen=True)
class OrderCalibration:
    """Size (a straight line) and power (a two-phase curve) of :func:`phase_order_test`, with 95% Wilson intervals."""

    size: float
    size_ci: tuple[float, float]
    power: float
    power_ci: tuple[float, float]
    alpha: float
    sigma: float
    contrast: float
    n_curves: int
    n_resamples: int

    def as_dict(self) -> dict:
        """The fields, for a results file."""
        return {**asdict(self), "size_ci": list(self.size_ci), "power_ci": list(self.power_ci)}


def _wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval of a binomial proportion :math:`k/n`:
    :math:`(k + z^2/2 \pm z\sqrt{k(n-k)/n + z^2/4}) / (n + z^2)`, :math:`z` the normal quantile of
    :math:`(1 + level)/2` (Wilson 1927)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + level) / 2)
    centre, half = k + z * z / 2, z * math.sqrt(k * (n - k) / n + z * z / 4)
    return (max(0.0, (centre - half) / (n + z * z)), min(1.0, (centre + half) / (n + z * z)))


def calibrate_order_test(amounts, *, seeds: int, sigma: float, contrast: float, slope: float = -0.1,
                         knot: float | None = None, alpha: float = 0.05, n_curves: int = 200,
                         n_resamples: int = 999, rng: np.random.Generator, max_phases: int = 3) -> OrderCalibration:
    r"""Size and power of :func:`phase_order_test` on ``n_curves`` simulated curves each (module docstring).

    The design: every amount of ``amounts`` (distinct, :math:`n \ge 0`) measured ``seeds`` times with Gaussian
    noise of standard deviation ``sigma``. (a) The line :math:`y = \text{slope}\cdot t`; (b) the two-phase curve
    with that mean slope around its knot and drops :math:`d \mp \text{contrast}/2` before and after it
    (:math:`d = -\text{slope}`): ``contrast`` > 0 is slow then fast, < 0 fast then slow. ``knot`` is in data
    units (default: the middle distinct amount). Power counts the curves whose claimed pattern is the true one.
    """
    n_curves = _need_rng(n_curves, rng, "n_curves")
    check_count(seeds, "seeds", 1)
    n_resamples = _need_rng(n_resamples, rng)
    levels = np.unique(_check(amounts, amounts)[0])  # in t = ln(1 + n)
    if not (sigma > 0 and math.isfinite(sigma) and contrast != 0 and 0 < alpha < 1):
        raise ValueError(f"need sigma > 0, contrast != 0 and alpha in (0, 1), got {sigma!r}, {contrast!r}, {alpha!r}")
    t = np.tile(levels, int(seeds))
    _check_phases(t, max_phases)
    k = levels[levels.size // 2] if knot is None else math.log1p(knot)
    d = -slope
    bent = (d - contrast / 2) * np.minimum(t - k, 0) + (d + contrast / 2) * np.maximum(t - k, 0)
    truth = "slow-fast" if contrast > 0 else "fast-slow"
    counts = []
    for mean, wanted in ((slope * t, None), (-bent, truth)):
        tests = _order_tests(t, mean + sigma * rng.standard_normal((n_curves, t.size)), n_resamples, rng, max_phases)
        counts.append(sum(x.p_value <= alpha and (wanted is None or x.pattern == wanted) for x in tests))
    return OrderCalibration(size=counts[0] / n_curves, size_ci=_wilson(counts[0], n_curves),
                            power=counts[1] / n_curves, power_ci=_wilson(counts[1], n_curves), alpha=float(alpha),
                            sigma=float(sigma), contrast=float(contrast), n_curves=n_curves, n_resamples=n_resamples)
