r"""High-precision derivatives of the §2.2 rates, where float64 finite differences fail (THEORY §2 "Numerics").

The reference path builds the per-response cross-entropies from the mixture definition
(disjoint components, :math:`|D_a| = 1`, :math:`N_l = 1 + k + l`, component masses
:math:`c = (k w_1,\ k w_2 + 1,\ k w_3 + l)`):

.. math:: CE_a(l) = H_2 - \ln c_2 + \ln N_l, \qquad
          CE_p(l) = \sum_j w_j (H_j - \ln c_j + \ln N_l) \quad\text{(nats per response)},

and differentiates them numerically with ``mpmath.diff`` at ``dps`` decimal digits; the
entropies :math:`H_j` are constants and drop out. It never uses the closed forms, so agreement
with :func:`elastic_theory.theory.elasticity.dgamma_a_dl_per_response` / :func:`~elastic_theory.theory.elasticity.dgamma_p_dl_per_response`
is a real check. Next to it, a float64 central difference with the textbook step
:math:`h = \epsilon^{1/3}\max(1, l)` shows what plain floating point gives: for
:math:`k \ge 10^6` the change of :math:`CE_p` over the step (~:math:`h/k^2`) is below the
rounding of :math:`CE_p` itself (~:math:`\epsilon`), so no digit survives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import elasticity
from .units import LN2
from .tree import TokenTree

__all__ = [
    "DEFAULT_POINTS",
    "PrecisionRow",
    "agreeing_digits",
    "mp_dcross_entropy_dl",
    "mp_hooke_residual",
    "precision_table",
    "reference_derivatives",
    "reference_hooke",
]

#: (k, l, w3): k up to 1e9 and l down to 1e-9 (the ranges of THEORY §2 "Numerics"), w3 = 0.1.
DEFAULT_POINTS: tuple[tuple[float, float, float], ...] = tuple(
    (k, l, 0.1) for k in (1e3, 1e6, 1e9) for l in (1e-3, 1e-6, 1e-9)
)
QUANTITIES = ("dgamma_a_dl", "dgamma_p_dl")


def _ce(k, l, w3, which: str, log, w2: float = 0.5):
    """CE_a or CE_p (nats per response, entropy constants dropped) from the mixture, with ``log`` = math.log or mpmath.log."""
    w = (1 - w2 * (1 - w3) - w3, w2 * (1 - w3), w3)
    c = (k * w[0], k * w[1] + 1, k * w[2] + l)
    n_l = 1 + k + l
    if which == "dgamma_a_dl":
        return log(n_l) - log(c[1])
    return sum(wj * (log(n_l) - log(cj)) for wj, cj in zip(w, c) if wj)


def reference_derivatives(k: float, l: float, w3: float, dps: int = 50) -> dict[str, str]:
    r"""``{"dgamma_a_dl": ..., "dgamma_p_dl": ...}`` in bits per response, as 30-significant-digit strings.

    ``mpmath.diff`` of the mixture-defined cross-entropies at ``dps`` digits (its default step
    is tuned to the working precision), divided by :math:`\ln 2`. The inputs are taken as the
    exact binary values of the given floats. Needs :math:`w_3 > 0` and :math:`l \ge 0`.
    """
    import mpmath

    k, l, w3 = (float(x) for x in (elasticity.check_k(k), elasticity.check_l(l), elasticity.check_w3(w3)))
    if w3 == 0.0:
        raise ValueError("the reference path needs w3 > 0 (for w3 = 0 the derivatives are the trivial 1/N_l)")
    with mpmath.workdps(dps):
        K, L, W3 = mpmath.mpf(k), mpmath.mpf(l), mpmath.mpf(w3)
        return {
            q: mpmath.nstr(mpmath.diff(lambda x: _ce(K, x, W3, q, mpmath.log), L) / mpmath.log(2), 30)
            for q in QUANTITIES
        }


def reference_hooke(k: float, l: float, w3: float, dps: int = 40) -> dict[str, float]:
    r"""The fields of :func:`elastic_theory.theory.elasticity.hooke_invariant` at ``dps`` digits, by a route it does not use.

    The residual is the integral of the §2.2 derivatives,
    :math:`r = \int_0^l \bigl(\frac{x_2}{x_2+s} - \frac{x_1}{x_1+s}\bigr) ds
    = \int_0^l \frac{s\,(1 + k(1-w_3))}{(x_2+s)(x_1+s)}\,ds` (:math:`x_1 = k w_3`, :math:`x_2 = 1 + k`, a positive
    integrand: nothing cancels), by ``mpmath.quad`` over :math:`t = s/l \in [0, 1]` split at :math:`x_1/l`; :math:`\Delta CE_a = \ln(1 + l/x_2)` and
    :math:`\Delta CE_p = (r - \Delta CE_a)/k`. Bits per response; the inputs are the exact binary values of the floats.
    """
    import mpmath

    with mpmath.workdps(dps):
        K, L, W3 = mpmath.mpf(k), mpmath.mpf(l), mpmath.mpf(w3)
        x1, x2 = K * W3, 1 + K
        # s = l t: the integral over t in [0, 1] (split at x1/l), so that a tiny l does not shrink quad's interval
        # (integrating over [0, 1e-300] directly was 4e-14 relative off)
        c = 1 + K * (1 - W3)
        r = L * L * mpmath.quad(lambda t: t * c / ((x2 + L * t) * (x1 + L * t)), [0, x1 / L, 1] if x1 < L else [0, 1])
        d_a = mpmath.log1p(L / x2)
        ln2 = mpmath.log(2)
        return {
            "delta_gamma_a": float(d_a / ln2), "delta_gamma_p": float((r - d_a) / K / ln2),
            "residual": float(r / ln2), "relative_residual": float(r / d_a),
        }


def agreeing_digits(value: float, reference: float) -> float:
    """Significant digits on which ``value`` agrees with ``reference``: ``-log10(|v - r| / |r|)`` (17 when equal)."""
    if value == reference:
        return 17.0
    if not math.isfinite(value):
        return 0.0
    return max(0.0, -math.log10(abs(value - reference) / abs(reference)))


@dataclass(frozen=True)
class PrecisionRow:
    """One derivative at one point: the mpmath reference and how many digits float64 methods get right."""

    k: float
    l: float
    w3: float
    quantity: str
    reference: str
    closed_form: float
    closed_form_digits: float
    finite_difference: float
    finite_difference_digits: float
    step: float


def _float64_central_difference(k: float, l: float, w3: float, quantity: str) -> tuple[float, float]:
    h = float(np.finfo(np.float64).eps) ** (1.0 / 3.0) * max(1.0, l)
    f = lambda x: _ce(k, x, w3, quantity, math.log)  # noqa: E731
    return (f(l + h) - f(l - h)) / (2.0 * h) / LN2, h


def precision_table(points=DEFAULT_POINTS, dps: int = 50) -> list[PrecisionRow]:
    """For each point and both derivatives: mpmath reference, float64 closed form, float64 central difference.

    Digits are :func:`agreeing_digits` against the reference. The closed forms are expected to
    agree to >= 10 digits everywhere; the finite differences lose them as k grows.
    """
    rows = []
    for k, l, w3 in points:
        ref = reference_derivatives(k, l, w3, dps)
        closed = {"dgamma_a_dl": elasticity.dgamma_a_dl_per_response(k, l),
                  "dgamma_p_dl": elasticity.dgamma_p_dl_per_response(k, l, w3)}
        for q in QUANTITIES:
            r = float(ref[q])
            fd, h = _float64_central_difference(k, l, w3, q)
            rows.append(
                PrecisionRow(k, l, w3, q, ref[q], closed[q], agreeing_digits(closed[q], r), fd, agreeing_digits(fd, r), h)
            )
    return rows


def _mp_cross_entropy(model: elasticity.PerturbationModel, data: TokenTree, mpmath):
    r""":math:`l \mapsto CE(P_i, p_l)` in nats at the current mpmath precision, from the trees' stored masses
    (l in the model's ``size_unit``).

    :math:`P_i`, :math:`P = (|D_p| P_p + |D_a| P_a)/N` and :math:`P_t` are formed in mpmath from the exact binary
    values of the stored leaf masses and each tree's exact leaf-mass total, so nothing is rounded to float64 on the way.
    """
    m = model.leaf_masses(data)
    mp = mpmath.mpf
    totals = [mpmath.fsum(mp(x) for x in t.eos_weight.tolist() + t.cut_weight.tolist())
              for t in (data, model.pretrain, model.align, model.perturb)]
    s_p, s_a = mp(model.size_pretrain), mp(model.size_align)
    N = s_p + s_a
    leaves = [
        (mp(d) / totals[0], (s_p * mp(q) / totals[1] + s_a * mp(a) / totals[2]) / N, mp(t) / totals[3])
        for d, q, a, t in zip(m.data.tolist(), m.pretrain.tolist(), m.align.tolist(), m.perturb.tolist())
    ]

    scale = mp(model.l_scale)  # l in the model's size_unit -> responses

    def ce(x):
        return -mpmath.fsum(w * mpmath.log((N * p + x * scale * s_a * t) / (N + x * scale * s_a)) for w, p, t in leaves)

    return ce


def mp_dcross_entropy_dl(*, data: TokenTree, model: elasticity.PerturbationModel, l: float, dps: int = 30) -> float:
    r""":math:`\frac{d}{dl} CE(P_i, p_l)` in bits per response by ``mpmath.diff`` at ``dps`` digits, without the §2.1 formula.

    Builds :math:`CE(l) = -\sum_x P_i(x) \ln\frac{N P(x) + l|D_a| P_t(x)}{N + l|D_a|}` in mpmath from the trees'
    stored masses (no float64 rounding of the leaf probabilities) and differentiates it numerically. The
    reference for testing :meth:`~elastic_theory.theory.elasticity.PerturbationModel.rates` on any supports; needs
    :math:`l > 0` when ``data`` has leaves outside the base model. For large k the derivative of the
    pre-training rate is ~1/k^2 of the rate itself, so ``dps`` must exceed 2 log10(k) + 20.
    """
    import mpmath

    with mpmath.workdps(dps):
        return float(mpmath.diff(_mp_cross_entropy(model, data, mpmath), mpmath.mpf(l)) / mpmath.log(2))


def mp_hooke_residual(model: elasticity.PerturbationModel, l: float, dps: int = 60) -> float:
    r""":math:`(|D_a|\Delta CE_a + |D_p|\Delta CE_p)/(|D_a||\Delta CE_a|)` from 0 to l by differences of mpmath
    cross-entropies (:func:`_mp_cross_entropy`) at ``dps`` digits: the reference for
    :meth:`~elastic_theory.theory.elasticity.PerturbationModel.hooke_residual`. The differences cancel about
    :math:`\log_{10}(N/(l|D_a|))` digits each and the numerator's first-order parts as many again, so ``dps``
    must exceed twice that plus 20.
    """
    import mpmath

    with mpmath.workdps(dps):
        L = mpmath.mpf(l)
        ce_a, ce_p = _mp_cross_entropy(model, model.align, mpmath), _mp_cross_entropy(model, model.pretrain, mpmath)
        d_a, d_p = ce_a(L) - ce_a(0), ce_p(L) - ce_p(0)
        return float((d_a + mpmath.mpf(model.size_pretrain) / mpmath.mpf(model.size_align) * d_p) / abs(d_a))
