"""Claims of the elasticity theorem with disjoint components (Thm 4.2, THEORY §2.2): R, its signs, bounds, limit, Hooke."""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..theory import elasticity, highprec, symbolic
from ..theory.units import LN2
from ..theory.tolerances import closed_form_tolerance, disjoint_derivative_tolerance, roundings
from .cases import (
    exact_dgamma_dl, exact_grid, exact_margin, k_grid, l_of, random_setting, sign_warned, U_BEYOND, U_GRID, W3_GRID,
)
from .registry import Evidence, Worst, holds_or_fails, register


@register(
    "closed_form_ratio",
    "Disjoint P1, P2, P3: R = (d gamma_a/dl)/(-d gamma_p/dl) = (w3 k + l)/(w3 - (1 - w3) l), w2 not entering",
    "THEORY §2.2",
    "holds",
)
def _closed_form_ratio(rng: np.random.Generator) -> Evidence:
    """sympy, then R from random disjoint token trees (w1 and w2 swapped: w2 must not enter) against the closed form.

    Tolerance: :func:`~elastic_theory.theory.tolerances.disjoint_derivative_tolerance` for the two derivatives
    (each within the library's PRECISION of the stored trees' exact value, the stored trees within a few roundings
    of the exact mixture): relative to R and not growing with k, so the float64 ``1 - E[P_t/p_l]`` (k eps relative)
    leaves it at large k.
    """
    d = symbolic.derive()
    symbolic_ok = d.R_closed_form_difference == 0 and d.w2_dependence == 0
    worst = Worst()
    for comps, w, k in [random_setting(rng, disjoint=True) for _ in range(40)]:
        l = min(float(rng.uniform(0.0, 0.95)) * elasticity.sign_threshold(w[2]), 100.0)
        R = elasticity.ratio_R(k, l, w[2])
        tol = disjoint_derivative_tolerance(l, w[2], elasticity.PRECISION, n_derivatives=2)
        for ws in (w, np.array([w[1], w[0], w[2]])):
            model = elasticity.PerturbationModel.from_components(comps, ws, k)
            ra, rp = model.rates(model.align, l), model.rates(model.pretrain, l)
            R_tree = ra.dcross_entropy_dl_bits / -rp.dcross_entropy_dl_bits
            worst.record(abs(R_tree / R - 1.0), tol, lambda: {"k": k, "l": l, "w": ws.tolist(), "R_tree": R_tree, "R_closed_form": R})
    return worst.evidence(
        f"sympy: R - closed form = 0, dR/dw2 = 0: {symbolic_ok}; token trees vs closed form: relative error up to "
        f"{worst.error:.1e} ({worst.ratio:.2g} x its bound, which does not grow with k)",
        {"symbolic_ok": bool(symbolic_ok)}, verdict=holds_or_fails(worst.violated or not symbolic_ok),
    )


@register(
    "theorem_signs",
    "d gamma_p/dl < 0 < d gamma_a/dl for disjoint components, w3 > 0 and 0 <= l < l* = w3/(1 - w3)",
    "Thm 4.2 (signs), region of THEORY §2.2",
    "holds",
)
def _theorem_signs(rng: np.random.Generator) -> Evidence:
    """The library's sign verdicts and derivatives, below, at and beyond l*, against exact arithmetic.

    Exact grid (k in 0.1..1e9, w3 in 0 and 1e-3..1, l/l* in 0..0.999 and 1..10): ``closed_form``
    must give ``sign_valid`` exactly when w3 - (1 - w3) l > 0 (computed in Fractions of the float
    arguments), both derivatives within 4 roundings of their exact values (so their signs are
    right), R > 0 inside, inf at l*, negative beyond, and a SignClaimWarning exactly outside.
    Random disjoint token trees at l/l* in [0, 0.9] and [1.1, 10]: the §2.1 derivatives of
    ``PerturbationModel.rates`` must match the exact ones *relatively*, within
    :func:`~elastic_theory.theory.tolerances.disjoint_derivative_tolerance` (so their signs are right, and the
    float64 ``1 - E[P_t/p_l]``, k eps relative, is caught at large k).
    """
    worst, n_grid, n_beyond = Worst(), 0, 0
    points = [(k, l_of(u, w3), w3) for k in k_grid() for w3 in W3_GRID for u in U_GRID + U_BEYOND
              if w3 < 1 or u < 1]
    points += [(k, l, Fraction(0)) for k in k_grid() for l in (Fraction(0), Fraction(1, 1000), Fraction(1))]
    for K, L, W3 in points:
        k, l, w3 = float(K), float(L), float(W3)
        margin = exact_margin(l, w3)
        inside = w3 > 0 and margin > 0
        n_grid += 1
        n_beyond += not inside
        cf, warned = sign_warned(lambda: elasticity.closed_form(k, l, w3))
        da, dp = (float(x) for x in exact_dgamma_dl(k, l, w3))
        case = lambda quantity: {"quantity": quantity, "k": k, "l": l, "w3": w3, "sign_valid": cf.sign_valid,  # noqa: E731
                                 "dgamma_a_dl": cf.dgamma_a_dl_per_response, "dgamma_p_dl": cf.dgamma_p_dl_per_response, "R": cf.R, "warned": warned}
        r_sign_ok = cf.R > 0 and math.isfinite(cf.R) if inside else (cf.R == math.inf if margin == 0 and w3 > 0 else cf.R < 0)
        consistent = cf.sign_valid == inside and warned == (not inside) and r_sign_ok
        worst.record(0.0 if consistent else math.inf, 0.0, lambda: case("sign_valid, R's sign, SignClaimWarning"))
        for name, got, exact in (("dgamma_a_dl", cf.dgamma_a_dl_per_response, da), ("dgamma_p_dl", cf.dgamma_p_dl_per_response, dp)):
            err = abs(got * LN2 - exact) / abs(exact) if exact else abs(got)
            worst.record(err, roundings(4) if exact else 0.0, lambda: case(name))
    n_tree = 0
    for comps, w, k in (random_setting(rng, disjoint=True) for _ in range(40)):
        model = elasticity.PerturbationModel.from_components(comps, w, k)
        for u in (float(rng.uniform(0.0, 0.9)), float(rng.uniform(1.1, 10.0))):
            l = min(u * elasticity.sign_threshold(w[2]), 100.0)
            exact = [float(x) / LN2 for x in exact_dgamma_dl(k, l, w[2])]
            n_tree += 1
            tol = disjoint_derivative_tolerance(l, w[2], elasticity.PRECISION)
            for name, data, ex in (("align", model.align, exact[0]), ("pretrain", model.pretrain, exact[1])):
                r = model.rates(data, l)
                worst.record(abs(r.dcross_entropy_dl_bits / ex - 1.0), tol, lambda: {"quantity": f"token-tree d gamma_{name[0]}/dl", "k": k, "w": w.tolist(), "l": l,
                                      "tree": r.dcross_entropy_dl_bits, "exact": ex})
    return worst.evidence(
        f"library signs right at {n_grid} exact-grid points ({n_beyond} at or beyond l* or with w3 = 0: sign_valid "
        f"False, SignClaimWarning) and {n_tree} random disjoint token trees (half beyond l*); worst "
        f"{worst.ratio:.2g} x its rounding bound",
        {"grid_points": n_grid, "beyond_threshold_points": n_beyond, "token_tree_points": n_tree},
        cases=n_grid + n_tree,
    )


@register("ratio_lower_bound", "R(k, l, w3) >= k for 0 <= l < l* (lower Theta-constant 1)", "THEORY §2.2", "holds")
def _ratio_lower(rng: np.random.Generator) -> Evidence:
    worst, min_ratio = Worst(), None
    for k, l, w3 in exact_grid():
        R = elasticity.ratio_R_exact(k, l, w3)
        min_ratio = R / k if min_ratio is None else min(min_ratio, R / k)
        case = lambda quantity: {"quantity": quantity, "k": str(k), "l": str(l), "w3": str(w3), "R": str(R)}  # noqa: E731
        worst.record(float(max(Fraction(0), (k - R) / k)), 0.0, lambda: case("(k - R)/k, exact"))
        R_float = elasticity.ratio_R(float(k), float(l), float(w3))
        worst.record(abs(R_float / float(R) - 1.0), closed_form_tolerance(k, l, w3), lambda: case("float64 R, relative error"))
    return worst.evidence(
        f"R >= k exactly (Fractions) at {worst.cases // 2} grid points (min R/k = {float(min_ratio):.6g}); float64 R "
        f"within {worst.ratio:.2g} x its rounding bound",
        {"min_R_over_k": str(min_ratio)}, cases=worst.cases // 2,
    )


@register(
    "ratio_upper_bound",
    "R <= k (1 + lam/(w3 k)) / (1 - (1 - w3) lam / w3) for 0 <= l <= lam < l*",
    "THEORY §2.2 (upper Theta-constant)",
    "holds",
)
def _ratio_upper(rng: np.random.Generator) -> Evidence:
    worst, max_const = Worst(), Fraction(0)
    for k, lam, w3 in exact_grid():
        upper = k * elasticity.theta_upper_exact(k, w3, lam)
        max_const = max(max_const, upper / k)
        for v in (Fraction(0), Fraction(1, 3), Fraction(1)):
            l = v * lam
            R = elasticity.ratio_R_exact(k, l, w3)
            worst.record(float(max(Fraction(0), (R - upper) / upper)), 0.0,
                         lambda: {"k": str(k), "l": str(l), "lam": str(lam), "w3": str(w3), "R": str(R)})
    return worst.evidence(
        f"R <= k * upper at {worst.cases} exact points; upper constant up to {float(max_const):.3g} (as lam -> l*)",
        {"largest_upper_constant": float(max_const)},
    )


@register("ratio_limit", "R -> k as l -> 0: R/k - 1 = l (1 + k(1 - w3)) / (k (w3 - (1 - w3) l))", "THEORY §2.2", "holds")
def _ratio_limit(rng: np.random.Generator) -> Evidence:
    """Exact R/k - 1 against its closed form, and strictly decreasing as l = 10^-j min(1, l*/2) -> 0 (j = 1..12)."""
    d = symbolic.derive()
    sym_ok = d.limits["R as l->0"] == d.symbols["k"] and d.limits["R/k as k->oo, l=0"] == 1
    worst, n, last, last_at = Worst(), 0, 0.0, ""
    worst.record(0.0 if sym_ok else math.inf, 0.0, {"sympy limits": bool(sym_ok)})
    for k in k_grid():
        for w3 in W3_GRID:
            prev = None
            for j in range(1, 13):
                l = Fraction(1, 10**j) * min(Fraction(1), l_of(Fraction(1, 2), w3))
                gap = elasticity.ratio_R_exact(k, l, w3) / k - 1
                n += 1
                case = lambda quantity: {"quantity": quantity, "k": str(k), "w3": str(w3), "l": str(l), "gap": str(gap)}  # noqa: E731
                formula = l * (1 + k * (1 - w3)) / (k * (w3 - (1 - w3) * l))
                worst.record(float(abs(gap - formula)), 0.0, lambda: case("|R/k - 1 - closed form|, exact"))
                if prev is not None:
                    worst.record(float(max(Fraction(0), gap - prev)), 0.0, lambda: case("increase of R/k - 1 as l falls"))
                prev = gap
            if float(prev) > last:  # the gap at the smallest l of this (k, w3): l = 1e-12 min(1, l*/2)
                last, last_at = float(prev), f"k = {float(k):g}, w3 = {float(w3):g}, l = {float(l):.3g}"
    return worst.evidence(
        f"sympy lim_(l->0) R = k: {sym_ok}; exact R/k - 1 equals its closed form and falls monotonically to 0 as "
        f"l = 10^-j min(1, l*/2) -> 0; largest at j = 12: {last:.1e} ({last_at})",
        {"symbolic_limit_ok": bool(sym_ok), "largest_gap_at_smallest_l": last}, cases=n,
    )


@lru_cache(maxsize=None)
def _hooke_reference(k: float, l: float, w3: float) -> dict[str, float]:
    """:func:`~elastic_theory.theory.highprec.reference_hooke`, kept for the next run (it does not depend on the code checked)."""
    return highprec.reference_hooke(k, l, w3)


@register(
    "hooke_first_order",
    "|D_a| dgamma_a ≈ -|D_p| dgamma_p: relative residual in [0, l (1 + k(1 - w3)) / (k w3 + l)]",
    "Hooke analogy (Thm 4.2), THEORY §2.2",
    "holds",
)
def _hooke(rng: np.random.Generator) -> Evidence:
    """The library's relative residual against the 40-digit reference and inside [0, first-order bound].

    The reference (:func:`~elastic_theory.theory.highprec.reference_hooke`) integrates the §2.2 derivatives with
    ``mpmath.quad``, a route the library does not take; ``hooke_invariant`` promises every field within 32 eps
    relative of it (its docstring), so a residual set to 0, halved, or formed as a float difference leaves that.
    """
    worst, bound_excess = Worst(), 0.0
    for k in k_grid() + [Fraction(10) ** e for e in (10, 11, 12)]:
        for w3 in W3_GRID[:-1]:
            for u in U_GRID[1:]:  # l from 1e-9 l* to just below l*
                l = float(l_of(u, w3))
                h = elasticity.hooke_invariant(float(k), l, float(w3))
                ref = _hooke_reference(float(k), l, float(w3))
                case = lambda quantity: {"quantity": quantity, "k": float(k), "l": l, "w3": float(w3),  # noqa: E731
                                         "relative_residual": h.relative_residual, "reference": ref["relative_residual"],
                                         "bound": h.first_order_bound}
                for name in ("relative_residual", "residual"):
                    worst.record(abs(getattr(h, name) / ref[name] - 1.0), roundings(32), lambda: case(f"{name} vs mpmath"))
                # The first-order bound itself: 32 eps relative of it covers the rounding of both sides.
                excess = max(0.0, -h.relative_residual, h.relative_residual - h.first_order_bound)
                bound_excess = max(bound_excess, excess / h.first_order_bound)
                worst.record(excess, roundings(32) * h.first_order_bound, lambda: case("outside [0, first-order bound]"))
    return worst.evidence(
        f"relative Hooke residual within {worst.ratio:.2g} x 32 eps of the mpmath reference and inside [0, first-order "
        f"bound] at {worst.cases // 3} points (k <= 1e12, l >= 1e-9 l*)", {"largest_bound_excess": bound_excess},
        cases=worst.cases // 3)


@register(
    "symbolic_derivation",
    "From the mixture: d gamma_a/dl = 1/(1+k+l), d gamma_p/dl = -(w3-(1-w3)l)/((1+k+l)(kw3+l)), l* = w3/(1-w3)",
    "THEORY §2.2, derived by sympy",
    "holds",
)
def _symbolic(rng: np.random.Generator) -> Evidence:
    import sympy as sp

    d = symbolic.derive()
    k, l, w3 = d.symbols["k"], d.symbols["l"], d.symbols["w3"]
    ok = {
        "dgamma_a": sp.simplify(d.dgamma_a_dl - 1 / (1 + k + l)) == 0,
        "dgamma_p": sp.simplify(d.dgamma_p_dl + (w3 - (1 - w3) * l) / ((1 + k + l) * (k * w3 + l))) == 0,
        "l_star": len(d.l_star) == 1 and sp.simplify(d.l_star[0] - w3 / (1 - w3)) == 0,
        "limits": d.limits["(1+k) dgamma_a/dl as l->0"] == 1 and d.limits["k(k+1) dgamma_p/dl as l->0"] == -1,
    }
    worst = Worst()
    for name, v in ok.items():
        worst.record(0.0 if v else math.inf, 0.0, {"sympy identity": name})
    checks = symbolic.cross_check()
    for c in checks:
        worst.record(c.max_relative_error, c.tolerance, {"k": str(c.k), "l": str(c.l), "w3": str(c.w3)})
    return worst.evidence(
        f"sympy matches the closed forms; float64 vs exact Rationals at {len(checks)} points: "
        f"max error {max(c.max_relative_error / c.tolerance for c in checks):.2f} x its tolerance",
        {"limits": {name: str(v) for name, v in d.limits.items()}},
    )
