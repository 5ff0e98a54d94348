r"""Float64 error bounds, each derived once: claims, library and tests import them from here.

Every bound is a rounding-error model (Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed.): a computation of :math:`n` floating-point operations, each rounding with relative
error at most :math:`u = \varepsilon/2` (:math:`\varepsilon` = :data:`EPS` = 2^-52), has relative
error at most :math:`\gamma_n = n u/(1 - n u) \le n\varepsilon` while :math:`n u \le 1/2`; a
subtraction :math:`a - b` multiplies the relative error of its inputs by its condition number
:math:`\kappa = (|a| + |b|)/|a - b|`. The functions below only put these two facts together for the
computations this package does; each docstring names the computation and the count.

A bound is used as a *tolerance*: a result off by more than its bound is a defect of the code,
not rounding. Loosening one to make a check pass is not allowed; when a check fails, the bound
or the code is wrong, and either is a finding.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EPS",
    "closed_form_tolerance",
    "entropy_tolerance",
    "perturbation_derivative_tolerance",
    "probability_sum_tolerance",
    "roundings",
    "sum_tolerance",
]

#: float64 machine epsilon, 2^-52 (twice the unit roundoff u).
EPS = float(np.finfo(np.float64).eps)


def roundings(n_ops: int, condition: float = 1.0) -> float:
    r"""Relative error bound :math:`n\varepsilon\max(1, \kappa)` of ``n_ops`` roundings, amplified by ``condition``.

    :math:`\gamma_n = n u/(1 - nu) \le n\varepsilon` (``n_ops`` counts every +, -, *, /, log and
    the rounding of each input; a count that is too small is a bug the tests will show). A
    subtraction with condition number :math:`\kappa` turns the relative error of its inputs into
    :math:`\kappa` times as much in its output, so ``condition`` multiplies the bound when > 1.
    """
    return float(n_ops) * max(1.0, float(condition)) * EPS


def sum_tolerance(n_terms: int, magnitude: float = 1.0, ulps_per_term: float = 4.0) -> float:
    r"""Absolute error bound of a float64 sum of ``n_terms`` non-negative terms, each a few roundings from exact.

    Recursive summation adds at most :math:`(n-1)u` relative to the sum (Higham eq. 4.4); each term
    carries ``ulps_per_term`` (default 4: a division to form a probability, a log, a product)
    roundings of its own; the 8 extra covers the handful of operations around the sum
    (normalization, a base change, a final product). Relative to ``max(1, |magnitude|)``, the size
    of the result, so a sum near 0 is judged in absolute terms:
    :math:`\text{ulps}\cdot(n + 8)\,\varepsilon \max(1, |\text{magnitude}|)`.

    Used for entropies, cross-entropies and Huffman expected lengths of ``n_terms`` leaves
    (:mod:`elastic_theory.claims`, :func:`elastic_theory.coding.code_length_report`), and for
    normalized leaf probabilities (magnitude 1).
    """
    return float(ulps_per_term) * (max(int(n_terms), 0) + 8) * EPS * max(1.0, abs(float(magnitude)))


def probability_sum_tolerance(n_terms: int, dtype=np.float64) -> float:
    """Tolerance for ``|sum(p) - 1|`` of ``n_terms`` probabilities stored in ``dtype``.

    Recursive summation of n non-negative terms that add up to 1 has absolute error at most
    (n - 1) u, u = eps/2 the unit roundoff (Higham, *Accuracy and Stability*, eq. 4.4); each
    stored probability may itself carry a relative rounding error of u. So n * eps bounds both,
    with a floor of 8 eps for tiny n. For float32 softmax outputs over 50k tokens this is 6e-3;
    for float64 and 50k tokens 1.1e-11.
    """
    eps = float(np.finfo(dtype).eps)
    return max(8.0, float(n_terms)) * eps


def entropy_tolerance(n_terms: int) -> float:
    r"""Absolute error bound (bits) of a float64 sum of ``n_terms`` terms :math:`-p\log_2 p` with :math:`p \ge 2^{-63}`.

    Each term carries a few ulps relative error on :math:`|\log_2 p| \le 63` (p from a division of
    integer counts :math:`\le 2^{63}`), so each is off by at most 64 eps absolute and the sum by
    :math:`64\, n\, \varepsilon` bits (64 eps for n = 0 or 1). Looser than :func:`sum_tolerance`
    because it holds without knowing the entropy's size: for tests over arbitrary trees.
    """
    return 64.0 * max(int(n_terms), 1) * EPS


def perturbation_derivative_tolerance(n_leaves: int, shared: float, condition: float = 1.0) -> float:
    r"""Bound on the float64 error of the §2.1 derivative, in units of its scale :math:`|D_a|/((N + l|D_a|)\ln 2)`.

    The derivative is :math:`\text{scale}\cdot(1 - s)` with :math:`s = E_{P_i}[P_t/p_l]` a sum of
    ``n_leaves`` terms, each a few roundings from exact: absolute error
    :math:`\le (n + 8)\varepsilon s`; ``1 - s`` adds :math:`\varepsilon`; a factor 8 covers the leaf
    probabilities' own rounding (each a normalized sum of tree weights), so
    :math:`8 (n + 8)\varepsilon (1 + s)`. When a *ratio* of two such derivatives is compared
    (:math:`R`), the relative error of :math:`1 - s` is the absolute one times
    :math:`\kappa = s/|1 - s|`: pass it as ``condition``.
    """
    return 8.0 * (max(int(n_leaves), 0) + 8) * EPS * (1.0 + abs(float(shared))) * max(1.0, float(condition))


def closed_form_tolerance(k, l, w3, n_ops: int = 16) -> float:
    r"""Relative error bound of the float64 §2.2 closed forms (:math:`d\gamma/dl`, R) at ``(k, l, w3)``.

    Each closed form takes at most ``n_ops`` = 16 roundings of well-conditioned terms, so
    16 eps; the one subtraction :math:`w_3 - (1-w_3)l` amplifies the rounding of its inputs by its
    condition number :math:`\kappa = w_3/(w_3 - (1-w_3)l)` (large near :math:`l^*`). Exact
    arguments (``Fraction``) or floats; needs :math:`l < l^*` when :math:`w_3 > 0`.
    """
    kappa = float(w3 / (w3 - (1 - w3) * l)) if w3 > 0 else 1.0
    return roundings(n_ops, kappa)
