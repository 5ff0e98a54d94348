r"""The disjoint-support closed forms of THEORY §2.2: the derivatives per response, :math:`R(k, l, w_3)` and its
exact rational form, the sign threshold :math:`l^*`, the :math:`\Theta` constants, and the checks of their arguments."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction


from ..units import LN2


_LAM_NAME = "lam (end of the interval 0 <= l <= lam of the Theta constants)"


class SignClaimWarning(UserWarning):
    """l is at or beyond l* = w3/(1-w3): d gamma_p/dl >= 0, so the theorem's sign claim no longer holds."""


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


def closed_form_result(k: Real, l: Real, w3: Real, lam: Real | None = None) -> tuple[dict, list[str]]:
    """:func:`closed_form` at ``(k, l, w3)`` as a flat dict, with ``R_over_k`` and ``l_within_lam`` added, and the
    messages of the :class:`SignClaimWarning` s it raised (caught here, not re-raised).

    Arguments are floats or exact ``Fraction`` s. ``l_within_lam`` is decided in exact arithmetic: it is False for a
    ``lam`` below ``l``, whose Theta band on [0, lam] need not contain R(l)/k.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SignClaimWarning)
        cf = closed_form(k, l, w3, lam)
    result = asdict(cf)
    result["R_over_k"] = cf.R / cf.k
    messages = [str(w.message) for w in caught if issubclass(w.category, SignClaimWarning)]
    result["l_within_lam"] = bool(check_l(l) <= check_l(l if lam is None else lam))  # exact
    return result, messages
