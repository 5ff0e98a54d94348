r"""The Pareto mass assumption (paper Assumption A.7, THEORY §1) and a check of it on real token trees.

Leaf masses :math:`p_j = X_j / \sum_m X_m` with :math:`X_j` iid Pareto(:math:`x_m, \alpha`). For
:math:`\alpha > 1`, as :math:`M \to \infty` (nats),

.. math:: H = \ln M + \ln\frac{\alpha}{\alpha - 1} - \frac{1}{\alpha - 1} + o(1),

independent of :math:`x_m`: :math:`H = \ln S - T/S` with :math:`S = \sum X`, :math:`T = \sum X\ln X`,
and by the law of large numbers :math:`S/M \to \mu = \alpha x_m/(\alpha-1)`,
:math:`T/M \to \nu = E[X\ln X] = \mu(\ln x_m + 1/(\alpha-1))` (the size-biased law of a
Pareto(:math:`x_m,\alpha`) is Pareto(:math:`x_m,\alpha-1`)).

Layout: :mod:`.masses` (sampling, the offset, the rate), :mod:`.power_law` (the discrete power-law fit),
:mod:`.counts_test` (the bootstrap tests on leaf counts, their size and power, the verdict). Import the names from
here.

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

from .counts_test import (
    ALTERNATIVES,
    CountsVerdict,
    RejectionRate,
    counts_verdict,
    leaf_counts,
    matching_leaf_total,
    power_law_test,
    rejection_rate,
    tree_leaf_counts,
)
from .masses import (
    ConvergencePoint,
    EntropyConvergence,
    SeedSlopes,
    entropy_convergence,
    entropy_convergence_over_seeds,
    entropy_offset,
    predicted_exponent,
    predicted_log_power,
    predicted_slope,
    sample_masses,
)
from .power_law import (
    DiscretePowerLawFit,
    PowerLawTest,
    discrete_exponent_se,
    exponent_bootstrap_se,
    fit_discrete_power_law,
    sample_discrete_power_law,
)

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
    "discrete_exponent_se",
    "entropy_convergence",
    "entropy_convergence_over_seeds",
    "entropy_offset",
    "exponent_bootstrap_se",
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
