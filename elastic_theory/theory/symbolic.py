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
:func:`elastic_theory.theory.tolerances.closed_form_tolerance`. :func:`first_order_identity` proves THEORY §5.1 for
any parametric model: stationarity of the joint loss makes the first-order ratio of rate changes k along every
direction (k in responses for per-response cross-entropies, in tokens for per-token rates).

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

__all__ = ["RATIONAL_POINTS", "CrossCheck", "Derivation", "FirstOrderIdentity", "cross_check", "derive", "first_order_identity",
           "general_formula_residual"]

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


@dataclass(frozen=True)
class FirstOrderIdentity:
    r"""sympy residuals of the first-order identity (each simplifies to 0 when it holds) and the two expressions it gives.

    ``residuals`` maps a statement to its residual; ``stationary_g_p`` is the solved :math:`g_p` (a vector);
    ``step_along_align`` holds the first-order changes of :math:`CE_a` and :math:`CE_p` for the step
    :math:`u = -s\,g_a` (nats per response).
    """

    symbols: dict[str, Any]
    residuals: dict[str, Any]
    stationary_g_p: Any
    step_along_align: dict[str, Any]

    @property
    def holds(self) -> bool:
        """True when every residual is exactly 0."""
        return all(r == 0 for r in self.residuals.values())


@lru_cache(maxsize=1)
def first_order_identity(n_params: int = 3) -> FirstOrderIdentity:
    r"""Stationarity of :math:`|D_p| CE_p + |D_a| CE_a` gives :math:`g_p = -g_a/k` and the first-order ratio k along every u.

    Symbols: sizes :math:`N_p = |D_p|`, :math:`N_a = |D_a|` in responses, mean lengths :math:`L_p, L_a` in tokens,
    gradients :math:`g_p = \nabla CE_p`, :math:`g_a = \nabla CE_a` (nats per response) and a direction u, each a
    vector of ``n_params`` free components (the argument is componentwise, so any n gives the same algebra).
    Solving the stationarity equations :math:`N_p g_p + N_a g_a = 0` for :math:`g_p` gives
    :math:`g_p = -(N_a/N_p) g_a = -g_a/k` with :math:`k = N_p/N_a`; then:

    * per response: :math:`(g_a\cdot u)/(-g_p\cdot u) - k = 0`, and its derivative in every :math:`u_j` is 0;
    * per token: the rates are :math:`\gamma_i = CE_i/(L_i \ln 2)` (bits per token), so
      :math:`(\nabla\gamma_a\cdot u)/(-\nabla\gamma_p\cdot u) - k_{tok} = 0` with :math:`k_{tok} = N_p L_p/(N_a L_a)`,
      the ratio of token counts (``ln 2`` cancels: bits or nats give the same ratio);
    * the pooled per-token loss :math:`(N_p L_p CE_p/L_p + N_a L_a CE_a/L_a)/(N_p L_p + N_a L_a)` (the mean loss per
      token over the union, what training on the union minimizes) is the joint loss divided by a constant, so it
      has the same stationary points;
    * the step :math:`u = -s g_a` (gradient descent on :math:`D_a`): :math:`g_a\cdot u = -s|g_a|^2 < 0` and
      :math:`g_p\cdot u = s|g_a|^2/k > 0`: ratio k with both of the theorem's signs reversed.
    """
    import sympy as sp

    Np, Na, Lp, La, s, CEp, CEa = sp.symbols("N_p N_a L_p L_a s CE_p CE_a", positive=True)
    ga, gp, u = (sp.Matrix(sp.symbols(f"{name}1:{n_params + 1}", real=True)) for name in ("g_a", "g_p", "u"))
    solved = sp.solve(list(Np * gp + Na * ga), list(gp), dict=True)[0]
    gp_s = gp.subs(solved)
    k, k_tok = Np / Na, Np * Lp / (Na * La)
    ratio = ga.dot(u) / -gp_s.dot(u)
    ratio_tok = (ga.dot(u) / (La * sp.log(2))) / -(gp_s.dot(u) / (Lp * sp.log(2)))
    pooled = (Np * Lp * (CEp / Lp) + Na * La * (CEa / La)) / (Np * Lp + Na * La)
    step = -s * ga
    zero = lambda e: sp.cancel(sp.together(e))  # noqa: E731  (every residual is a rational function: cancel decides 0)
    residuals = {
        "g_p + g_a/k (stationarity solved)": zero((gp_s + ga / k).dot(gp_s + ga / k)),
        "ratio per response - k": zero(ratio - k),
        "d ratio/du_j (every j)": sum(zero(sp.diff(ratio, uj)) ** 2 for uj in u),
        "ratio per token - k_tokens": zero(ratio_tok - k_tok),
        "pooled per-token loss * tokens - joint loss": zero(pooled * (Np * Lp + Na * La) - (Np * CEp + Na * CEa)),
    }
    along = {"dCE_a": zero(ga.dot(step)), "dCE_p": zero(gp_s.dot(step))}
    residuals["dCE_a + s |g_a|^2 (step along D_a)"] = zero(along["dCE_a"] + s * ga.dot(ga))
    residuals["dCE_p - s |g_a|^2 / k (step along D_a)"] = zero(along["dCE_p"] - s * ga.dot(ga) / k)
    return FirstOrderIdentity({"N_p": Np, "N_a": Na, "L_p": Lp, "L_a": La, "s": s, "g_a": ga, "g_p": gp, "u": u},
                              residuals, gp_s, along)
