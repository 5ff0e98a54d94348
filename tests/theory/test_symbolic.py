"""Symbolic-numeric cross-validation: sympy's derivation from the mixture vs the closed forms, at exact Rational points."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp

from elastic_theory.theory import elasticity as el
from elastic_theory.theory import symbolic
from elastic_theory.theory.tolerances import closed_form_tolerance


@pytest.fixture(scope="module")
def derivation():
    return symbolic.derive()


def test_ratio_equals_closed_form(derivation):
    """sympy: R derived from the mixture minus (w3 k + l)/(w3 - (1 - w3) l) simplifies to 0."""
    assert derivation.R_closed_form_difference == 0


def test_w2_does_not_enter(derivation):
    """dR/dw2 = 0."""
    assert derivation.w2_dependence == 0


def test_derivatives(derivation):
    """d gamma_a/dl = 1/(1+k+l) and d gamma_p/dl = -(w3 - (1-w3) l)/((1+k+l)(k w3 + l)) (nats per response)."""
    s = derivation.symbols
    k, l, w3 = s["k"], s["l"], s["w3"]
    assert sp.simplify(derivation.dgamma_a_dl - 1 / (1 + k + l)) == 0
    assert sp.simplify(derivation.dgamma_p_dl + (w3 - (1 - w3) * l) / ((1 + k + l) * (k * w3 + l))) == 0


def test_limits(derivation):
    """lim_{l->0} R = k; lim_{k->oo} R/k = w3/(w3 - (1-w3) l), = 1 at l = 0; leading orders of both derivatives."""
    s = derivation.symbols
    k, l, w3 = s["k"], s["l"], s["w3"]
    lim = derivation.limits
    assert lim["R as l->0"] == k
    assert sp.simplify(lim["R/k as k->oo"] - w3 / (w3 - (1 - w3) * l)) == 0
    assert lim["R/k as k->oo, l=0"] == 1
    assert lim["(1+k) dgamma_a/dl as l->0"] == 1
    assert lim["k(k+1) dgamma_p/dl as l->0"] == -1
    assert lim["k dgamma_a/dl as k->oo, l=0"] == 1
    assert lim["k^2 dgamma_p/dl as k->oo, l=0"] == -1


def test_sign_threshold(derivation):
    """The only root of d gamma_p/dl = 0 in l is l* = w3/(1 - w3)."""
    w3 = derivation.symbols["w3"]
    assert len(derivation.l_star) == 1
    assert sp.simplify(derivation.l_star[0] - w3 / (1 - w3)) == 0


def test_general_formula_symbolically():
    """For arbitrary distributions on 3 shared leaves, d/dl CE(P_i, p_l) - |D_a|/(N+l|D_a|)(1 - E[P_t/p_l]) = 0."""
    assert symbolic.general_formula_residual(3) == 0
    with pytest.raises(ValueError, match="n_leaves must be >= 2, got 1"):
        symbolic.general_formula_residual(1)


@pytest.mark.parametrize("point", symbolic.RATIONAL_POINTS, ids=lambda p: "k={},l={},w3={}".format(*p))
def test_exact_rational_points(derivation, point):
    """At exact Rational points sympy's R equals ratio_R_exact in Fractions, and float64 agrees within its bound."""
    k, l, w3 = point
    s = derivation.symbols
    subs = {s["k"]: sp.Rational(k), s["l"]: sp.Rational(l), s["w3"]: sp.Rational(w3), s["w2"]: sp.Rational(1 - w3, 2)}
    assert Fraction(str(derivation.R.subs(subs))) == el.ratio_R_exact(k, l, w3)
    (check,) = symbolic.cross_check([point])
    assert check.R_exact == el.ratio_R_exact(k, l, w3)
    assert check.max_relative_error <= check.tolerance


def test_closed_form_tolerance_grows_near_threshold():
    """The cross-check tolerance is 16 eps times the condition number of w3 - (1 - w3) l."""
    far = closed_form_tolerance(Fraction(10), Fraction(0), Fraction(1, 2))
    near = closed_form_tolerance(Fraction(10), Fraction(99, 100), Fraction(1, 2))
    assert near == 100 * far  # kappa = (1/2)/(1/2 - 99/200) = 100 exactly; 16 eps * 100 has no rounding


def test_first_order_identity():
    """Stationarity N_p g_p + N_a g_a = 0 solved: g_p = -(N_a/N_p) g_a; ratio k per response and k_tokens per token
    along every u (no u_j enters); the step u = -s g_a changes CE_a by -s|g_a|^2 and CE_p by +s|g_a|^2/k."""
    proof = symbolic.first_order_identity()
    assert proof.holds and len(proof.residuals) == 7
    s = proof.symbols
    assert sp.simplify(proof.stationary_g_p + s["N_a"] / s["N_p"] * s["g_a"]) == sp.zeros(3, 1)
    ga2 = s["g_a"].dot(s["g_a"])
    assert sp.simplify(proof.step_along_align["dCE_a"] + s["s"] * ga2) == 0
    assert sp.simplify(proof.step_along_align["dCE_p"] - s["s"] * ga2 * s["N_a"] / s["N_p"]) == 0


def test_first_order_ratio_depends_on_the_normalization():
    """What the identity is not: the per-response ratio is not k_tokens unless L_p = L_a, and a balanced loss
    CE_p + CE_a (each dataset's mean weighted equally) makes the ratio 1, not k."""
    proof = symbolic.first_order_identity()
    s = proof.symbols
    Np, Na, Lp, La, ga, u = (s[n] for n in ("N_p", "N_a", "L_p", "L_a", "g_a", "u"))
    ratio = ga.dot(u) / -proof.stationary_g_p.dot(u)
    assert sp.simplify(ratio - Np * Lp / (Na * La)) != 0
    assert sp.simplify(ratio - Np * Lp / (Na * La)).subs(Lp, La) == 0
    assert sp.simplify(ga.dot(u) / -(-ga).dot(u)) == 1  # g_p = -g_a: stationarity of CE_p + CE_a
