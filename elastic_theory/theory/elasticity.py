r"""The elasticity theorem (Ji et al. 2025, Thm. 4.2) as a perturbation model with exact derivatives.

Setting (THEORY §2). Pre-training set :math:`D_p`, alignment set :math:`D_a`, perturbation set
:math:`D_t` with :math:`|D_t| = l\,|D_a|`. A model of unrestricted capacity trained to optimum
on :math:`D_p \cup D_a \cup D_t` is the size-weighted mixture (the joint-training lemma,
:func:`elastic_theory.theory.tree.mixture`)

.. math:: p_l = \frac{N P + l |D_a| P_t}{N + l |D_a|}, \qquad N = |D_p| + |D_a|,
          \quad P = \frac{|D_p| P_p + |D_a| P_a}{N}.

**General formula (§2.1, exact, any supports).** For a dataset distribution :math:`P_i` whose
support :math:`p_l` covers,

.. math:: \frac{d}{dl} CE(P_i, p_l) = \frac{|D_a|}{N + l|D_a|}
          \Bigl(1 - E_{x \sim P_i}\Bigl[\frac{P_t(x)}{p_l(x)}\Bigr]\Bigr) \quad\text{nats per response},

since :math:`\frac{d}{dl}\ln p_l(x) = \frac{|D_a|}{N + l|D_a|}(P_t(x)/p_l(x) - 1)`.
:class:`PerturbationModel` evaluates it for real :class:`~elastic_theory.theory.tree.TokenTree` s and
converts to bits (divide by :math:`\ln 2`) and to bits per token (divide by :math:`E_{P_i}|x|`).

**Disjoint components (§2.2).** :math:`P_p = w_1 P_1 + w_2 P_2 + w_3 P_3`, :math:`P_a = P_2`,
:math:`P_t = P_3`, pairwise disjoint supports, :math:`k = |D_p|/|D_a|`. Then, per response,

.. math:: \frac{d\gamma_a}{dl} = \frac{1}{(1+k+l)\ln 2}, \qquad
          \frac{d\gamma_p}{dl} = \frac{1}{\ln 2}\Bigl(\frac{1}{1+k+l} - \frac{w_3}{k w_3 + l}\Bigr),

.. math:: R(k, l, w_3) = \frac{d\gamma_a/dl}{-d\gamma_p/dl} = \frac{w_3 k + l}{w_3 - (1-w_3) l}.

The sign claim :math:`d\gamma_p/dl < 0 < d\gamma_a/dl` holds iff :math:`l < l^* = w_3/(1-w_3)`;
on :math:`0 \le l \le \lambda < l^*`, :math:`1 \le R/k \le (1 + \lambda/(w_3 k))/(1 - (1-w_3)\lambda/w_3)`.
**Units.** :func:`elastic_theory.theory.rates.gamma` is bits *per token*; everything here is bits *per
response* unless its name says ``per_token``: the closed forms are named
:func:`dgamma_a_dl_per_response` / :func:`dgamma_p_dl_per_response` (divide by :math:`E|x|` of
that dataset for per token), :class:`DatasetRates` has ``dcross_entropy_dl_bits`` (per response)
next to ``dgamma_dl_bits_per_token``. A per-token :math:`R` is the per-response one times
:math:`E_{P_p}|x| / E_{P_a}|x|`. No derivative depends on the
normalizing offset of :func:`elastic_theory.theory.rates.normalized_gamma` (it is model-free).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Literal

import numpy as np

from .rates import gamma
from .tolerances import EPS, probability_sum_tolerance, roundings
from .tree import LeafDistribution, TokenTree, check_support, kl_divergence, mixture, model_leaf_mass

__all__ = [
    "LN2",
    "PRECISION",
    "LeafMasses",
    "ClosedForm",
    "DatasetRates",
    "HookeInvariant",
    "InverseAlignment",
    "PerturbationModel",
    "SignClaimWarning",
    "check_k",
    "check_l",
    "check_w3",
    "closed_form",
    "derivative_ratio",
    "dgamma_a_dl_per_response",
    "dgamma_p_dl_per_response",
    "hooke_invariant",
    "inverse_alignment",
    "ratio_R",
    "ratio_R_exact",
    "rho",
    "sign_threshold",
    "theta_constants",
    "theta_upper_exact",
]

LN2 = math.log(2.0)
_LAM_NAME = "lam (end of the interval 0 <= l <= lam of the Theta constants)"
SizeUnit = Literal["responses", "tokens"]
Rho = Literal["rate_gap", "kl", "kl_reverse"]


class SignClaimWarning(UserWarning):
    """l is at or beyond l* = w3/(1-w3): d gamma_p/dl >= 0, so the theorem's sign claim no longer holds."""


# ---------------------------------------------------------------------- validation
#: A closed-form argument: a float, or a ``Fraction`` kept exact (so that e.g. l = l* can be given exactly).
Real = float | Fraction


def _real(x: Real) -> Real:
    """``x`` as a float (-0.0 becomes 0.0, so that no "-0" is printed), or unchanged when it is a ``Fraction``."""
    return x if isinstance(x, Fraction) else float(x) + 0.0


def _finite(x: Real) -> bool:
    return isinstance(x, Fraction) or math.isfinite(x)


def check_k(k: Real) -> Real:
    """Return ``k`` = |D_p|/|D_a| as a float (a ``Fraction`` stays exact), or raise unless it is finite and > 0."""
    k = _real(k)
    if not (k > 0 and _finite(k)):
        raise ValueError(f"k = |D_p|/|D_a| must be finite and > 0, got {k!r}")
    return k


def check_l(l: Real, name: str = "l = |D_t|/|D_a|") -> Real:
    """Return ``l`` = |D_t|/|D_a| (or another l-value, ``name`` in the message) as a float (a ``Fraction`` stays
    exact); raise unless finite, >= 0."""
    l = _real(l)
    if not (l >= 0 and _finite(l)):
        raise ValueError(f"{name} must be finite and >= 0, got {l!r}")
    return l


def check_w3(w3: Real) -> Real:
    """Return ``w3`` (the perturbation component's weight in pre-training) as a float (a ``Fraction`` stays exact), or
    raise unless it is in [0, 1]."""
    w3 = _real(w3)
    if not 0 <= w3 <= 1:
        raise ValueError(f"w3 (weight of the perturbation distribution inside D_p) must be in [0, 1], got {w3!r}")
    return w3


# ---------------------------------------------------------------------- §2.2 closed forms
def sign_threshold(w3: float) -> float:
    r""":math:`l^* = w_3/(1-w_3)`: :math:`d\gamma_p/dl < 0` exactly for :math:`l < l^*` (``inf`` for w3 = 1)."""
    w3 = check_w3(w3)
    return math.inf if w3 == 1 else _to_float(Fraction(w3) / (1 - Fraction(w3)))  # rounded once


def _sign_margin(l: float, w3: float) -> Fraction:
    r""":math:`w_3 - (1-w_3) l` of the float arguments, exactly (a ``Fraction``).

    Its sign decides the theorem's sign claim (> 0 exactly for :math:`l < l^*`). Exact arithmetic
    keeps that sign right within an ulp of :math:`l^*`, where the float expression can round to the
    wrong side or underflow to 0, and keeps every digit when the two terms nearly cancel.
    """
    w3_exact = Fraction(w3)
    return w3_exact - (1 - w3_exact) * Fraction(l)


def _to_float(q: Fraction) -> float:
    """``q`` rounded once to float64; +-inf when its magnitude is beyond the float64 range."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _warn_beyond(l: float, w3: float, stacklevel: int = 3) -> None:
    if _sign_margin(l, w3) <= 0:
        warnings.warn(
            f"l = {float(l):g} >= l* = w3/(1-w3) = {sign_threshold(w3):g}: d gamma_p/dl >= 0 here, so the theorem's sign "
            "claim (pre-training rate falls while alignment rate rises) no longer holds; values are exact.",
            SignClaimWarning,
            stacklevel=stacklevel,
        )


def dgamma_a_dl_per_response(k: Real, l: Real) -> float:
    r""":math:`d\gamma_a/dl = 1/((1+k+l)\ln 2)` bits per response per unit l (disjoint supports, §2.2).

    Independent of :math:`w_1, w_2, w_3`: the alignment data shares no mass with the perturbation.
    """
    return 1.0 / ((1.0 + check_k(k) + check_l(l)) * LN2)


def dgamma_p_dl_per_response(k: Real, l: Real, w3: Real) -> float:
    r""":math:`d\gamma_p/dl = (1/(1+k+l) - w_3/(k w_3 + l))/\ln 2` bits per response per unit l (§2.2).

    Evaluated as :math:`-(w_3 - (1-w_3)l)/((1+k+l)(k w_3 + l))` in exact rational arithmetic of the
    float arguments, rounded once, then divided by :math:`\ln 2`: full float64 precision for large k
    (the two terms of the difference are ~1/k, their difference ~1/k^2) and no spurious 0 or
    division by zero when :math:`k w_3` underflows; beyond the float64 range it is +-inf.
    For :math:`w_3 = 0` the second term is absent (D_p has no perturbation-type data), so the
    derivative is :math:`+1/((1+k+l)\ln 2)`. Warns (:class:`SignClaimWarning`) when :math:`l \ge l^*`.
    """
    k, l, w3 = check_k(k), check_l(l), check_w3(w3)
    _warn_beyond(l, w3)
    if w3 == 0.0:
        return 1.0 / ((1.0 + k + l) * LN2)
    K, L, W3 = Fraction(k), Fraction(l), Fraction(w3)
    return _to_float(-_sign_margin(l, w3) / ((1 + K + L) * (K * W3 + L))) / LN2


#: The older names of the two functions above (their values are per response, not per token), kept while code
#: written against them moves to the names that say the unit.
dgamma_a_dl = dgamma_a_dl_per_response
dgamma_p_dl = dgamma_p_dl_per_response


def ratio_R(k: Real, l: Real, w3: Real) -> float:
    r""":math:`R(k, l, w_3) = (d\gamma_a/dl)/(-d\gamma_p/dl) = (w_3 k + l)/(w_3 - (1-w_3) l)` (§2.2).

    Exactly :math:`-1` for :math:`w_3 = 0` (both rates rise equally: no asymmetry), ``inf`` at
    :math:`l = l^*`, negative beyond (with a :class:`SignClaimWarning`). Dimensionless; base-free.
    Exact rational arithmetic of the float arguments, rounded once (+-inf beyond the float64 range).
    """
    k, l, w3 = check_k(k), check_l(l), check_w3(w3)
    _warn_beyond(l, w3)
    if w3 == 0.0:
        return -1.0
    margin = _sign_margin(l, w3)
    return math.inf if margin == 0 else _to_float(ratio_R_exact(Fraction(k), Fraction(l), Fraction(w3)))


def ratio_R_exact(k, l, w3):
    r""":math:`(w_3 k + l)/(w_3 - (1-w_3) l)` in the arithmetic of the arguments (``Fraction`` in, ``Fraction`` out).

    No validation: for exact checks at rational points (:mod:`elastic_theory.claims`); needs
    :math:`w_3 > 0` and :math:`l \ne l^*`. Use :func:`ratio_R` for floats.
    """
    return (w3 * k + l) / (w3 - (1 - w3) * l)


def theta_upper_exact(k, w3, lam):
    r""":math:`(1 + \lambda/(w_3 k))/(1 - (1-w_3)\lambda/w_3)` in the arithmetic of the arguments (see :func:`theta_constants`)."""
    return (1 + lam / (w3 * k)) / (1 - (1 - w3) * lam / w3)


def theta_constants(k: float, w3: float, lam: float) -> tuple[float, float]:
    r"""``(lower, upper)`` with :math:`\text{lower} \le R(k,l,w_3)/k \le \text{upper}` for all :math:`0 \le l \le \lambda`.

    lower = 1 (R is increasing in l and R(k, 0, w3) = k); upper = R(k, lam, w3)/k =
    :math:`(1 + \lambda/(w_3 k)) / (1 - (1-w_3)\lambda/w_3)`. Needs :math:`0 < w_3` and :math:`\lambda < l^*`.
    """
    k, w3, lam = check_k(k), check_w3(w3), check_l(lam, _LAM_NAME)
    if w3 == 0.0:
        raise ValueError("w3 = 0: R = -1 for every l, there is no Theta(k) band; give w3 > 0")
    if _sign_margin(lam, w3) <= 0:
        raise ValueError(f"lam = {float(lam):g} must be < l* = w3/(1-w3) = {sign_threshold(w3):g} for a finite upper constant")
    return 1.0, _to_float(theta_upper_exact(Fraction(k), Fraction(w3), Fraction(lam)))


@dataclass(frozen=True)
class ClosedForm:
    """The §2.2 quantities at one point; derivatives in bits per response per unit l (divide by E|x| for per token)."""

    k: float
    l: float
    w3: float
    R: float
    dgamma_a_dl_per_response: float
    dgamma_p_dl_per_response: float
    l_star: float
    sign_valid: bool
    lam: float | None
    theta_lower: float | None
    theta_upper: float | None


def closed_form(k: float, l: float, w3: float, lam: float | None = None) -> ClosedForm:
    """All §2.2 closed forms at ``(k, l, w3)``; Theta constants on ``[0, lam]`` (default lam = l) when they exist.

    ``sign_valid`` is True when :math:`d\\gamma_p/dl < 0 < d\\gamma_a/dl`, i.e. :math:`w_3 > 0` and
    :math:`l < l^*`. Warns like :func:`ratio_R` beyond the threshold.
    """
    k, l, w3 = check_k(k), check_l(l), check_w3(w3)
    lam = l if lam is None else check_l(lam, _LAM_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignClaimWarning)
        R, da, dp = ratio_R(k, l, w3), dgamma_a_dl_per_response(k, l), dgamma_p_dl_per_response(k, l, w3)
    _warn_beyond(l, w3)
    l_star = sign_threshold(w3)
    has_band = w3 > 0 and _sign_margin(lam, w3) > 0
    lo, hi = theta_constants(k, w3, lam) if has_band else (None, None)
    # From the exact sign of w3 - (1 - w3) l, not from dp's float sign, which underflows to -0 for huge k.
    sign_valid = w3 > 0 and _sign_margin(l, w3) > 0
    return ClosedForm(float(k), float(l), float(w3), R, da, dp, l_star, sign_valid, float(lam), lo, hi)


@dataclass(frozen=True)
class HookeInvariant:
    r"""Finite changes from l = 0 to l (bits per response) and the spring invariant.

    ``residual`` = :math:`|D_a|\Delta\gamma_a + |D_p|\Delta\gamma_p` in units of |D_a| bits;
    ``relative_residual`` = residual / :math:`(|D_a|\Delta\gamma_a)`;
    ``first_order_bound`` = :math:`1 - k/R(l) = l(1 + k(1-w_3))/(k w_3 + l)` bounds it (§2.2).
    """

    k: float
    l: float
    w3: float
    delta_gamma_a: float
    delta_gamma_p: float
    residual: float
    relative_residual: float
    first_order_bound: float


def hooke_invariant(k: float, l: float, w3: float) -> HookeInvariant:
    r"""Hooke's law for datasets: :math:`|D_a|\Delta\gamma_a \approx -|D_p|\Delta\gamma_p` (disjoint supports).

    Exact finite changes (nats, then bits), :math:`x_1 = k w_3`, :math:`x_2 = 1 + k`:
    :math:`\Delta CE_a = \ln(1 + l/x_2)`, :math:`\Delta CE_p = \ln(1 + l/x_2) - w_3 \ln(1 + l/x_1)`, and
    the residual :math:`r = \Delta CE_a + k\,\Delta CE_p = x_2 \ln(1 + l/x_2) - x_1 \ln(1 + l/x_1) = g(x_1) - g(x_2)`
    with :math:`g(x) = x\,(u - \ln(1+u))`, :math:`u = l/x`. Since :math:`|D_a|\gamma_a' + |D_p|\gamma_p'
    = \gamma_a'(1 - k/R)` with :math:`1 - k/R \ge 0` increasing on :math:`[0, l^*)`, the relative
    residual lies in :math:`[0, 1 - k/R(l)]`: the invariant holds to first order in l.
    Needs :math:`w_3 > 0`, :math:`0 < l < l^*`.

    **Precision.** :math:`r` is second order in l while both terms of the difference are first
    order, so it is never formed as a difference: for :math:`u_1 = l/x_1 \le 1/4` (always the case
    when :math:`k(1-w_3) \ge 4`) by the series
    :math:`r = x_1 \frac{x_2 - x_1}{x_2} \sum_{n \ge 2} (-1)^n \frac{u_1^n}{n} \sum_{j<n-1} \rho^j`,
    :math:`\rho = x_1/x_2`, :math:`x_2 - x_1 = 1 + k(1-w_3)`, whose terms shrink at least threefold
    and alternate (relative error a few eps); otherwise (small :math:`k(1-w_3)`) in mpmath at
    :math:`30 + \log_{10}(1+k)` digits. :math:`\Delta CE_p = (r - \Delta CE_a)/k`. Every field is
    within 32 eps relative of a 40-digit evaluation (:func:`elastic_theory.theory.highprec.reference_hooke`) for k
    from 1e-3 to 1e12 and l from 1e-9 l* to 0.999 l* (tests/theory/test_elasticity.py; measured worst 3 eps).
    """
    k, l, w3 = check_k(k), check_l(l), check_w3(w3)
    if w3 == 0.0 or l == 0.0 or _sign_margin(l, w3) <= 0:
        raise ValueError(f"the Hooke invariant needs w3 > 0 and 0 < l < l* = {sign_threshold(w3):g}; got w3={w3}, l={l}")
    k, l, w3 = float(k), float(l), float(w3)
    x1, x2 = k * w3, 1.0 + k
    u1 = l / x1 if x1 > 0 else math.inf
    if u1 <= 0.25:
        d_a = math.log1p(l / x2)
        residual = x1 * ((1.0 + k * (1.0 - w3)) / x2) * _hooke_series(u1, x1 / x2)
        d_p = (residual - d_a) / k
    else:
        d_a, d_p, residual = _hooke_mp(k, l, w3)
    return HookeInvariant(
        k, l, w3, d_a / LN2, d_p / LN2, residual / LN2, residual / d_a, l * (1.0 + k * (1.0 - w3)) / (k * w3 + l)
    )


def _hooke_series(u: float, rho: float) -> float:
    r""":math:`\sum_{n \ge 2} (-1)^n \frac{u^n}{n} G_{n-1}(\rho)`, :math:`G_m = \sum_{j<m} \rho^j`, for :math:`0 < u \le 1/4`, :math:`0 \le \rho < 1`.

    Consecutive terms shrink by :math:`u\,\frac{n}{n+1}\frac{G_n}{G_{n-1}} \le 2u \le 1/2` and alternate, so the sum is
    at least 2/3 of its first term and the loop stops once a term is below eps/4 of it.
    """
    total, power, geometric, n = 0.0, u, 1.0, 1
    while True:
        n += 1
        power *= u
        term = power / n * geometric
        total += term if n % 2 == 0 else -term
        if term <= 0.25 * EPS * total:
            return total
        geometric = 1.0 + rho * geometric


def _hooke_mp(k: float, l: float, w3: float) -> tuple[float, float, float]:
    r"""``(dCE_a, dCE_p, residual)`` in nats by mpmath, for the region ``l > k w3 / 4`` (small ``k (1 - w3)``).

    The difference :math:`x_2 \ln(1 + l/x_2) - x_1 \ln(1 + l/x_1)` loses up to :math:`\log_{10}(x_1)` digits, so the
    working precision is 30 digits plus that; the inputs are the exact binary values of the floats.
    """
    import mpmath

    with mpmath.workdps(30 + max(0, math.ceil(math.log10(1.0 + k)))):
        K, L, W3 = mpmath.mpf(k), mpmath.mpf(l), mpmath.mpf(w3)
        x1, x2 = K * W3, 1 + K
        d_a = mpmath.log1p(L / x2)
        d_p = d_a - W3 * mpmath.log1p(L / x1)
        residual = x2 * d_a - x1 * mpmath.log1p(L / x1)
        return float(d_a), float(d_p), float(residual)


# ---------------------------------------------------------------------- §2.1 general model
#: Relative accuracy that every cancelling sum of the §2.1 model is computed to (before the final rounding).
#: A float64 sum of terms that each carry at most 16 eps relative error of their magnitude is within
#: 16 eps * sum(|magnitude|) of the exact sum, so float64 is kept while that is <= PRECISION * |sum| (a
#: condition number up to PRECISION / (16 eps) ~ 280); beyond, the sum is redone in mpmath from the trees'
#: stored weights at 20 + log10(condition number) digits, doubling the digits until the same bound holds.
PRECISION = 1e-12
_MAX_DPS = 640


@dataclass(frozen=True)
class _Backend:
    """Arithmetic for :meth:`PerturbationModel` sums: float64 arrays, or object arrays of ``mpmath.mpf``."""

    array: Callable[[np.ndarray], np.ndarray]
    scalar: Callable[[float], object]
    log1p: Callable[[np.ndarray], np.ndarray]
    scalar_log1p: Callable[[object], object]
    fsum: Callable[[np.ndarray], object]


_FLOAT = _Backend(lambda x: np.asarray(x, dtype=np.float64), float, np.log1p, math.log1p, lambda x: math.fsum(x.tolist()))


def _mp_backend() -> _Backend:
    import mpmath

    return _Backend(
        lambda x: np.array([mpmath.mpf(v) for v in np.asarray(x, dtype=np.float64).tolist()], dtype=object),
        mpmath.mpf, np.frompyfunc(mpmath.log1p, 1, 1), mpmath.log1p, lambda x: mpmath.fsum(x.tolist()),
    )


def _accurate_sum(evaluate: Callable[[_Backend], tuple[object, object]]) -> float:
    """``sum(terms)`` to :data:`PRECISION` relative, from ``evaluate(backend) -> (sum, sum of |terms'| magnitudes)``.

    ``evaluate`` computes the terms in the given arithmetic; each term's error must be at most a few (16) roundings
    of its magnitude. Float64 first; mpmath with more digits while the error bound exceeds PRECISION * |sum|.
    """
    value, magnitude = evaluate(_FLOAT)
    if roundings(16) * magnitude <= PRECISION * abs(value):
        return float(value)
    import mpmath

    cond = magnitude / abs(value) if value else 1.0 / EPS
    dps, zeros = 20 + math.ceil(math.log10(max(cond, 1.0))), int(value == 0)
    while True:
        with mpmath.workdps(dps):
            value, magnitude = evaluate(_mp_backend())
            # An exact 0 at two precisions (float64 counts) is the terms cancelling exactly (e.g. P = P_t everywhere).
            zeros = zeros + 1 if value == 0 else 0
            if 16.0 * mpmath.mpf(10) ** (1 - dps) * magnitude <= PRECISION * abs(value) or zeros == 2 or dps >= _MAX_DPS:
                return float(value)
        dps *= 2


@dataclass(frozen=True)
class LeafMasses:
    r"""Everything :math:`p_l` needs at the leaves of one dataset, as stored in the trees (no rounding yet).

    ``data``: the dataset's own leaf masses; ``pretrain``, ``align``, ``perturb``: each tree's mass of those leaves
    (:func:`~elastic_theory.theory.tree.model_leaf_mass`); ``all_leaves``: every leaf mass of the data tree and of the three
    trees, in that order, whose sums :math:`T` normalize them: :math:`P_i = \text{data}/T_i` and
    :math:`P = (|D_p|\,\text{pretrain}/T_p + |D_a|\,\text{align}/T_a)/N`. (The sums are formed in the arithmetic of
    the evaluation: a total rounded to float64 is an error of eps in :math:`E[P_t/p_l]`, k eps relative in its
    complement.)
    """

    leaves: LeafDistribution
    data: np.ndarray
    pretrain: np.ndarray
    align: np.ndarray
    perturb: np.ndarray
    all_leaves: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _leaf_mass_array(tree: TokenTree) -> np.ndarray:
    mass = np.concatenate([tree.eos_weight, tree.cut_weight])
    return mass[mass > 0]


@dataclass(frozen=True)
class DatasetRates:
    r"""Rates of one dataset under :math:`p_l` and their exact l-derivatives (§2.1).

    ``cross_entropy_bits``: :math:`CE(P_i, p_l)` bits per response; ``dcross_entropy_dl_bits`` its
    derivative per unit of ``l`` (in the model's ``size_unit``); ``gamma_bits_per_token`` = CE / E|x| and its derivative; ``kl_bits``:
    :math:`KL(P_i \| p_l)` bits per response (the default normalized rate times E|x|);
    ``shared_mass`` = :math:`E_{P_i}[P_t/p_l]` (the derivative's sign is that of 1 - shared_mass).
    """

    l: float
    cross_entropy_bits: float
    dcross_entropy_dl_bits: float
    mean_length: float
    kl_bits: float
    shared_mass: float

    def _per_token(self, value: float) -> float:
        if not self.mean_length > 0:
            raise ValueError("the dataset has only empty responses (mean length 0): a per-token rate is undefined")
        return value / self.mean_length

    @property
    def gamma_bits_per_token(self) -> float:
        r""":math:`\gamma = CE/E|x|` bits per token (raises for a dataset of empty responses)."""
        return self._per_token(self.cross_entropy_bits)

    @property
    def dgamma_dl_bits_per_token(self) -> float:
        r""":math:`d\gamma/dl` bits per token per unit l (raises for a dataset of empty responses)."""
        return self._per_token(self.dcross_entropy_dl_bits)


@dataclass(frozen=True)
class PerturbationModel:
    r"""The joint optimum on :math:`D_p \cup D_a \cup D_t` as a function of :math:`l = |D_t|/|D_a|`.

    Build it with :meth:`from_trees`. ``size_pretrain`` = |D_p| and ``size_align`` = |D_a| are
    response counts: they weight the mixture, which is the maximum-likelihood model of all
    responses together however |D| is measured. The perturbation set's own size never enters
    (|D_t| = l |D_a| by definition). The trees may have any supports; they are the finite datasets
    an experiment trains on.

    ``size_unit`` only says how k and l are expressed. ``"responses"`` (default):
    :math:`k = |D_p|/|D_a|`, :math:`l = |D_t|/|D_a|` in responses. ``"tokens"``: both in tokens,
    :math:`k = |D_p|_{tok}/|D_a|_{tok}` and :math:`|D_t|_{tok} = l\,|D_a|_{tok}`, i.e.
    :math:`|D_t| = l\,|D_a|_{tok}/E_t|x|` responses: every method taking ``l`` reads it so, and
    derivatives are per unit of that l (:attr:`l_scale` converts). The model itself is the same.
    """

    pretrain: TokenTree
    align: TokenTree
    perturb: TokenTree
    size_pretrain: float
    size_align: float
    size_unit: SizeUnit = "responses"

    @classmethod
    def from_trees(
        cls,
        pretrain: TokenTree,
        align: TokenTree,
        perturb: TokenTree,
        size_unit: SizeUnit = "responses",
        sizes: tuple[float, float] | None = None,
    ) -> PerturbationModel:
        """The model with |D_p|, |D_a| in responses read from the trees (``n_sequences``) or given as ``sizes``.

        ``size_unit`` (how k and l are expressed, see the class docstring) does not change the model;
        ``"tokens"`` needs D_p, D_a and D_t to have tokens (mean length > 0).
        """
        if size_unit not in ("responses", "tokens"):
            raise ValueError(f"size_unit must be 'responses' or 'tokens', got {size_unit!r}")
        if sizes is None:
            sizes = (pretrain.n_sequences, align.n_sequences)
        s_p, s_a = (float(s) for s in sizes)
        for name, s in (("|D_p|", s_p), ("|D_a|", s_a)):
            if not (s > 0 and math.isfinite(s)):
                raise ValueError(f"{name} must be finite and > 0 responses, got {s!r}")
        V = {t.vocab_size for t in (pretrain, align, perturb)}
        if len(V) != 1:
            raise ValueError(f"the three datasets must share one alphabet, got vocab sizes {sorted(V)}")
        if size_unit == "tokens":
            for name, t in (("D_p", pretrain), ("D_a", align), ("D_t", perturb)):
                if not t.mean_length > 0:
                    raise ValueError(f"size_unit='tokens' needs tokens in every dataset, but {name} has only empty "
                                     "responses; use size_unit='responses'")
        return cls(pretrain, align, perturb, s_p, s_a, size_unit)

    @classmethod
    def from_components(
        cls, components: tuple[TokenTree, TokenTree, TokenTree], w: tuple[float, float, float], k: float
    ) -> PerturbationModel:
        r"""The theorem's setting: :math:`D_p = w_1 P_1 + w_2 P_2 + w_3 P_3`, :math:`D_a = P_2`, :math:`D_t = P_3`.

        Sizes :math:`|D_p| = k`, :math:`|D_a| = 1` (only ratios matter). Components with zero
        weight are left out of :math:`D_p`; the supports may overlap (then §2.2 does not apply).
        """
        k = float(check_k(k))
        w_arr = np.asarray(w, dtype=np.float64)
        if w_arr.shape != (3,) or (w_arr < 0).any() or abs(w_arr.sum() - 1.0) > probability_sum_tolerance(3):
            raise ValueError(f"w must be three non-negative weights summing to 1, got {w!r}")
        keep = [j for j in range(3) if w_arr[j] > 0]
        pretrain = mixture([components[j] for j in keep], [k * w_arr[j] for j in keep])
        return cls.from_trees(pretrain, components[1], components[2], sizes=(k, 1.0))

    @property
    def k(self) -> float:
        """:math:`k = |D_p|/|D_a|` in ``size_unit`` (tokens: :math:`k_{responses} E_p|x| / E_a|x|`)."""
        if self.size_unit == "tokens":
            return self.size_pretrain * self.pretrain.mean_length / (self.size_align * self.align.mean_length)
        return self.k_responses

    @property
    def k_responses(self) -> float:
        """:math:`|D_p|/|D_a|` in responses: the ratio of the mixture weights."""
        return self.size_pretrain / self.size_align

    @property
    def l_scale(self) -> float:
        """:math:`dl_{responses}/dl`: 1, or :math:`E_a|x|/E_t|x|` when l is in tokens."""
        return self.align.mean_length / self.perturb.mean_length if self.size_unit == "tokens" else 1.0

    def l_responses(self, l: float) -> float:
        """:math:`|D_t|/|D_a|` in responses for ``l`` in ``size_unit``: the perturbation's weight in the mixture."""
        return float(check_l(l)) * self.l_scale

    @cached_property
    def base_model(self) -> TokenTree:
        """:math:`P = (|D_p| P_p + |D_a| P_a)/N`: the model before perturbation (l = 0)."""
        return mixture([self.pretrain, self.align], [self.size_pretrain, self.size_align])

    def model(self, l: float) -> TokenTree:
        """:math:`p_l` as a token tree (the mixture of the three datasets with |D_p|, |D_a|, l|D_a| responses)."""
        l = self.l_responses(l)
        if l == 0.0:
            return self.base_model
        return mixture([self.pretrain, self.align, self.perturb], [self.size_pretrain, self.size_align, l * self.size_align])

    def leaf_masses(self, data: TokenTree) -> LeafMasses:
        """The stored masses of ``data``'s leaves in ``data`` and in each of the three trees, with the trees' totals."""
        lv, m_p = model_leaf_mass(data=data, model=self.pretrain)
        _, m_a = model_leaf_mass(data=data, model=self.align)
        _, m_t = model_leaf_mass(data=data, model=self.perturb)
        own = np.where(lv.is_eos, data.eos_weight[lv.node], data.cut_weight[lv.node])
        every = tuple(_leaf_mass_array(t) for t in (data, self.pretrain, self.align, self.perturb))
        return LeafMasses(lv, own, m_p, m_a, m_t, every)

    def _probs(self, m: LeafMasses, B: _Backend) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(P_i, P, P_t)`` at the leaves in arithmetic ``B``."""
        T_d, T_p, T_a, T_t = (B.fsum(B.array(x)) for x in m.all_leaves)
        s_p, s_a = B.scalar(self.size_pretrain), B.scalar(self.size_align)
        P = (s_p * B.array(m.pretrain) / T_p + s_a * B.array(m.align) / T_a) / (s_p + s_a)
        return B.array(m.data) / T_d, P, B.array(m.perturb) / T_t

    def leaf_probs(self, data: TokenTree) -> tuple[LeafDistribution, np.ndarray, np.ndarray]:
        r"""``(leaves, P, P_t)``: ``data``'s leaves and their probabilities under the base model :math:`P` and :math:`P_t`.

        Everything :math:`p_l` needs for ``data``: :math:`p_l = (N P + l|D_a| P_t)/(N + l|D_a|)` leaf by leaf.
        """
        m = self.leaf_masses(data)
        _, P, Pt = self._probs(m, _FLOAT)
        return m.leaves, P, Pt

    def rates(self, data: TokenTree, l: float) -> DatasetRates:
        r"""CE, gamma, KL of ``data`` under :math:`p_l` and their exact derivatives by the §2.1 formula.

        :math:`1 - E_{P_i}[P_t/p_l]` is summed leaf by leaf as
        :math:`\sum_x P_i(x)\,\frac{N (P(x) - P_t(x))}{N P(x) + l|D_a| P_t(x)}` (no "1 minus a sum near 1"), to
        :data:`PRECISION` (1e-12) relative: in float64 while its condition number allows, else in mpmath from the
        trees' stored weights. The derivative is therefore within about 1e-12 relative of the exact value for the
        stored trees at every k (the float64 form ``1 - shared`` lost k eps: 4e-4 at k = 1e12). The cross-entropy
        and KL are float64 sums (the cross-entropy's terms all have one sign). Raises ``ValueError`` when
        :math:`p_l` gives probability 0 to a leaf of ``data`` (infinite rate), naming the leaf.
        """
        l_given, l = float(check_l(l)), self.l_responses(l)
        m = self.leaf_masses(data)
        Pd, P, Pt = self._probs(m, _FLOAT)
        N, a = self.size_pretrain + self.size_align, self.size_align
        p_l = (N * P + l * a * Pt) / (N + l * a)
        check_support(data, m.leaves, p_l, "raise")
        shared = float((Pd * Pt / p_l).sum())

        def one_minus_shared(B: _Backend):
            Pd, P, Pt = self._probs(m, B)
            N_, la = B.scalar(N), B.scalar(l) * B.scalar(a)
            den = N_ * P + la * Pt
            return B.fsum(Pd * N_ * (P - Pt) / den), B.fsum(Pd * N_ * (P + Pt) / den)

        ce = float(0.0 - (Pd * np.log(p_l)).sum()) / LN2  # 0.0 - sum: never -0.0
        dce = (a / (N + l * a)) * _accurate_sum(one_minus_shared) / LN2 * self.l_scale
        kl = float((Pd * np.log(Pd / p_l)).sum()) / LN2
        return DatasetRates(l_given, ce, dce, data.mean_length, kl, shared)

    def ratio(self, l: float, per_token: bool = False) -> float:
        r""":math:`R = (dCE_a/dl)/(-dCE_p/dl)` at l (per response; ``per_token``: of the per-token rates)."""
        ra, rp = self.rates(self.align, l), self.rates(self.pretrain, l)
        num, den = (ra.dgamma_dl_bits_per_token, rp.dgamma_dl_bits_per_token) if per_token else (
            ra.dcross_entropy_dl_bits, rp.dcross_entropy_dl_bits)
        return derivative_ratio(num, den)

    def hooke_residual(self, l: float) -> float:
        r""":math:`(|D_a|\Delta CE_a + |D_p|\Delta CE_p)/(|D_a| |\Delta CE_a|)` from 0 to l > 0 (per response).

        With :math:`v = l|D_a|/N` and :math:`q = P_t/P` at each leaf, :math:`\Delta CE_i = E_{P_i}[\ln(1+v) - \ln(1+vq)]`
        exactly; the numerator's first-order parts cancel between the two datasets (it is second order in l),
        so both sums go through the same :data:`PRECISION` (1e-12 relative) control as :meth:`rates` instead of
        subtracting float cross-entropies (which gave 7.2e-4 for 4.5e-4 at k = 1e4 and 1.0 at k = 1e6).
        """
        l = self.l_responses(l)
        if l == 0.0:
            raise ValueError("hooke_residual needs l > 0: at l = 0 both changes are 0 and their ratio is undefined")
        # (|D_p|/|D_a|, leaf masses) of the two datasets; the numerator is in units of |D_a|.
        parts = [(self.size_align, self.leaf_masses(self.align)), (self.size_pretrain, self.leaf_masses(self.pretrain))]

        def change(B: _Backend, parts) -> tuple[object, object]:
            s_a = B.scalar(self.size_align)
            v = B.scalar(l) * s_a / (B.scalar(self.size_pretrain) + s_a)
            total, magnitude = B.scalar(0), B.scalar(0)
            for size, m in parts:
                Pd, P, Pt = self._probs(m, B)
                base, moved = B.scalar_log1p(v), B.log1p(v * Pt / P)
                total += B.scalar(size) / s_a * B.fsum(Pd * (base - moved))
                magnitude += B.scalar(size) / s_a * B.fsum(Pd * (base + moved))
            return total, magnitude

        numerator = _accurate_sum(lambda B: change(B, parts))
        d_a = _accurate_sum(lambda B: change(B, parts[:1]))
        return numerator / abs(d_a)


def derivative_ratio(d_align: float, d_pretrain: float) -> float:
    r""":math:`R = (d\gamma_a/dl)/(-d\gamma_p/dl)` from the two derivatives (any common unit).

    ``inf`` (signed like ``d_align``) when only ``d_pretrain`` is 0, ``nan`` when both are 0 (e.g.
    datasets of empty responses only, whose rates do not move: R is undefined, not infinite).
    """
    if d_pretrain == 0.0:
        return math.nan if d_align == 0.0 else math.copysign(math.inf, d_align)
    return d_align / -d_pretrain


# ---------------------------------------------------------------------- Def. 3.6
def rho(*, p0: TokenTree, p0_prime: TokenTree, kind: Rho = "rate_gap", data: TokenTree | None = None) -> float:
    r"""Discrepancy :math:`\rho(p_0', p_0)` of Def. 3.6 (THEORY §4.6: a parameter, documented default).

    * ``"rate_gap"`` (default): :math:`|\gamma(p_0', D) - \gamma(p_0, D)|` bits per token on ``data``;
    * ``"kl"``: :math:`KL(p_0' \| p_0)` bits per response (the paper's "KL(model, base)");
    * ``"kl_reverse"``: :math:`KL(p_0 \| p_0')`.
    """
    if kind == "rate_gap":
        if data is None:
            raise ValueError("rho='rate_gap' compares rates on a dataset: pass data=")
        return abs(gamma(data=data, model=p0_prime) - gamma(data=data, model=p0))
    if kind == "kl":
        return kl_divergence(data=p0_prime, model=p0)
    if kind == "kl_reverse":
        return kl_divergence(data=p0, model=p0_prime)
    raise ValueError(f"rho must be 'rate_gap', 'kl' or 'kl_reverse', got {kind!r}")


@dataclass(frozen=True)
class InverseAlignment:
    """Outcome of Def. 3.6: ``elastic`` iff ``distance <= eps0`` and ``size_ratio <= max_size_ratio``."""

    distance: float
    eps0: float
    size_ratio: float
    max_size_ratio: float
    kind: str
    elastic: bool


def inverse_alignment(
    *,
    p0: TokenTree,
    p0_prime: TokenTree,
    eps0: float,
    size_b: float,
    size_a: float,
    kind: Rho = "rate_gap",
    data: TokenTree | None = None,
    max_size_ratio: float = 0.1,
) -> InverseAlignment:
    r"""Def. 3.6: :math:`(p_0, D_a)` is elastic if an operation with :math:`|D_b| \ll |D_a|` gives
    :math:`p_0'` with :math:`\rho(p_0', p_0) \le \varepsilon_0`.

    ":math:`\ll`" is made explicit as :math:`|D_b|/|D_a| \le` ``max_size_ratio`` (default 0.1).
    """
    if not (eps0 >= 0 and math.isfinite(eps0)):
        raise ValueError(f"eps0 must be finite and >= 0, got {eps0!r}")
    if not (size_b > 0 and size_a > 0):
        raise ValueError(f"dataset sizes must be > 0, got |D_b|={size_b!r}, |D_a|={size_a!r}")
    if not 0 < max_size_ratio <= 1:
        raise ValueError(f"max_size_ratio must be in (0, 1], got {max_size_ratio!r}")
    dist = rho(p0=p0, p0_prime=p0_prime, kind=kind, data=data)
    ratio = size_b / size_a
    return InverseAlignment(dist, float(eps0), ratio, max_size_ratio, kind, bool(dist <= eps0 and ratio <= max_size_ratio))
