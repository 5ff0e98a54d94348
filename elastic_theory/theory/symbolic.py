r"""The §2 derivation redone by sympy, from the mixture definition rather than from the closed form.

:func:`derive` builds the joint-training model leaf by leaf,

.. math:: p_l(x) = \frac{k P_p(x) + P_a(x) + l P_t(x)}{k + 1 + l} \qquad (|D_a| = 1),

with :math:`P_p = w_1 P_1 + w_2 P_2 + w_3 P_3`, :math:`P_a = P_2`, :math:`P_t = P_3` and each
:math:`P_j` a two-leaf distribution :math:`(q_j, 1-q_j)` on its own support. It then
differentiates :math:`CE(P_i, p_l) = -\sum_x P_i(x)\ln p_l(x)` (nats per response) in l, forms
:math:`R`, takes limits and solves for the sign threshold; nothing of §2.2 is typed in except
to compare with. :func:`general_formula_residual` checks the §2.1 formula for three arbitrary
(overlapping) three-leaf distributions. :func:`cross_check` evaluates every symbolic result at
exact ``Rational`` points and compares with :mod:`elastic_theory.theory.elasticity` (float64) within
:func:`elastic_theory.theory.tolerances.closed_form_tolerance`.

sympy is imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any


from . import elasticity
from .units import LN2
from .tolerances import closed_form_tolerance

__all__ = ["RATIONAL_POINTS", "CrossCheck", "Derivation", "cross_check", "derive", "general_formula_residual"]

#: Exact evaluation points (k, l, w3) inside the sign region l < w3/(1-w3): small and large k,
#: l from tiny to near the threshold, w3 = 1 included. Chosen by hand to cover those corners.
RATIONAL_POINTS: tuple[tuple[Fraction, Fraction, Fraction], ...] = (
    (Fraction(1), Fraction(0), Fraction(1, 2)),
    (Fraction(10), Fraction(1, 10), Fraction(1, 3)),
    (Fraction(1000), Fraction(1, 1000), Fraction(1, 10)),
    (Fraction(10**6), Fraction(1, 10**6), Fraction(3, 4)),
    (Fraction(7, 2), Fraction(49, 100), Fraction(1, 3)),
    (Fraction(100), Fraction(5), Fraction(1)),
)


@dataclass(frozen=True)
class Derivation:
    """sympy expressions in symbols ``k, l, w2, w3`` (all derivatives in nats per response per unit l).

    ``R_closed_form_difference`` and ``general_formula_residual`` simplify to 0 when the
    derivation reproduces §2.2 and §2.1.
    """

    symbols: dict[str, Any]
    dgamma_a_dl: Any
    dgamma_p_dl: Any
    R: Any
    limits: dict[str, Any]
    l_star: tuple[Any, ...]
    R_closed_form_difference: Any
    w2_dependence: Any


@lru_cache(maxsize=1)
def derive() -> Derivation:
    r"""Derive :math:`d\gamma_a/dl`, :math:`d\gamma_p/dl`, :math:`R`, their limits and :math:`l^*` from the mixture.

    ``limits`` holds: R as l -> 0; R/k as k -> oo (fixed l) and then at l = 0; :math:`(1+k)\,d\gamma_a/dl`
    and :math:`k(k+1)\,d\gamma_p/dl` as l -> 0 (the leading orders; :math:`d\gamma_p/dl = -1/(k(k+1))` at l = 0);
    :math:`k\,d\gamma_a/dl` and :math:`k^2 d\gamma_p/dl` as k -> oo at l = 0.
    ``l_star``: the solutions of :math:`d\gamma_p/dl = 0` in l.
    """
    import sympy as sp

    k, l, w2, w3 = sp.symbols("k l w2 w3", positive=True)
    q = sp.symbols("q1:4", positive=True)
    w = (1 - w2 - w3, w2, w3)
    leaves = [(j, m) for j in range(3) for m in range(2)]

    def comp(j: int, leaf: tuple[int, int]) -> Any:  # P_j(x) for leaf x = (component, index)
        return (q[j] if leaf[1] == 0 else 1 - q[j]) if leaf[0] == j else sp.Integer(0)

    def P_p(x):
        return sum(w[j] * comp(j, x) for j in range(3))

    def p_l(x):
        return (k * P_p(x) + comp(1, x) + l * comp(2, x)) / (k + 1 + l)

    def ce(P) -> Any:
        return -sum(P(x) * sp.log(p_l(x)) for x in leaves if P(x) != 0)

    da = sp.factor(sp.simplify(sp.diff(ce(lambda x: comp(1, x)), l)))
    dp = sp.factor(sp.simplify(sp.diff(ce(P_p), l)))
    R = sp.factor(sp.simplify(da / -dp))
    limits = {
        "R as l->0": sp.limit(R, l, 0),
        "R/k as k->oo": sp.limit(R / k, k, sp.oo),
        "R/k as k->oo, l=0": sp.limit(sp.limit(R / k, k, sp.oo), l, 0),
        "(1+k) dgamma_a/dl as l->0": sp.simplify(sp.limit((1 + k) * da, l, 0)),
        "k(k+1) dgamma_p/dl as l->0": sp.simplify(sp.limit(k * (k + 1) * dp, l, 0)),
        "k dgamma_a/dl as k->oo, l=0": sp.limit(k * da.subs(l, 0), k, sp.oo),
        "k^2 dgamma_p/dl as k->oo, l=0": sp.limit(k**2 * dp.subs(l, 0), k, sp.oo),
    }
    w3_free = sp.Symbol("w3_free", positive=True)  # w3 < 1 so the threshold is finite
    l_star = tuple(sp.solve(sp.numer(sp.together(dp.subs(w3, w3_free))), l))
    l_star = tuple(sp.simplify(s.subs(w3_free, w3)) for s in l_star)
    closed = (w3 * k + l) / (w3 - (1 - w3) * l)
    return Derivation(
        {"k": k, "l": l, "w2": w2, "w3": w3, "q": q},
        da,
        dp,
        R,
        limits,
        l_star,
        sp.simplify(R - closed),
        sp.simplify(sp.diff(R, w2)),
    )


def general_formula_residual(n_leaves: int = 3) -> Any:
    r"""sympy residual of the §2.1 formula for arbitrary distributions on ``n_leaves`` common leaves.

    With :math:`p_l = (N P + l A P_t)/(N + l A)`, returns the simplified
    :math:`\frac{d}{dl}CE(P_i, p_l) - \frac{A}{N + lA}\bigl(1 - \sum_x P_i(x) P_t(x)/p_l(x)\bigr)`,
    which is 0 when the formula holds (supports overlap arbitrarily here).
    """
    import sympy as sp

    if n_leaves < 2:
        raise ValueError(f"n_leaves must be >= 2, got {n_leaves}")
    N, A, l = sp.symbols("N A l", positive=True)
    P, Pt, Pi = (list(sp.symbols(f"{name}1:{n_leaves + 1}", positive=True)) for name in ("P", "Pt", "Pi"))
    Pi[-1] = 1 - sum(Pi[:-1])  # the formula uses only that P_i sums to 1; P and P_t are arbitrary
    p_l = [(N * P[j] + l * A * Pt[j]) / (N + l * A) for j in range(n_leaves)]
    ce = -sum(Pi[j] * sp.log(p_l[j]) for j in range(n_leaves))
    formula = A / (N + l * A) * (1 - sum(Pi[j] * Pt[j] / p_l[j] for j in range(n_leaves)))
    return sp.simplify(sp.diff(ce, l) - formula)


@dataclass(frozen=True)
class CrossCheck:
    """At one exact point: the symbolic values (exact, nats) and the float64 implementation's relative errors."""

    k: Fraction
    l: Fraction
    w3: Fraction
    R_exact: Fraction
    dgamma_a_dl_exact: Fraction
    dgamma_p_dl_exact: Fraction
    max_relative_error: float
    tolerance: float


def cross_check(points=RATIONAL_POINTS) -> list[CrossCheck]:
    r"""Evaluate :func:`derive`'s results at exact ``Rational`` points and compare with :mod:`~elastic_theory.theory.elasticity`.

    The symbolic derivatives are rational functions (nats per response), so they evaluate to
    exact fractions; :mod:`elasticity` returns bits, converted back with :math:`\ln 2`.
    ``w2`` is set to :math:`(1-w_3)/2` (it cancels; :attr:`Derivation.w2_dependence` is 0).
    """
    import sympy as sp

    d = derive()
    s = d.symbols
    out = []
    for k, l, w3 in points:
        subs = {s["k"]: sp.Rational(k), s["l"]: sp.Rational(l), s["w3"]: sp.Rational(w3), s["w2"]: sp.Rational((1 - w3) / 2)}
        exact = [Fraction(str(sp.nsimplify(e.subs(subs)))) for e in (d.R, d.dgamma_a_dl, d.dgamma_p_dl)]
        numeric = [
            elasticity.ratio_R(float(k), float(l), float(w3)),
            elasticity.dgamma_a_dl_per_response(float(k), float(l)) * LN2,
            elasticity.dgamma_p_dl_per_response(float(k), float(l), float(w3)) * LN2,
        ]
        err = max(abs(x - float(e)) / abs(float(e)) for x, e in zip(numeric, exact))
        out.append(CrossCheck(k, l, w3, exact[0], exact[1], exact[2], float(err), closed_form_tolerance(k, l, w3)))
    return out
