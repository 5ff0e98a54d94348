"""Tests of the perturbation model (THEORY §2.1), the §2.2 closed forms and Def. 3.6."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from elastic_theory.theory import elasticity as el
from elastic_theory.theory.highprec import mp_dcross_entropy_dl
from elastic_theory.testing import theorem_settings
from elastic_theory.theory.tolerances import disjoint_derivative_tolerance, roundings, sum_tolerance
from elastic_theory.theory.divergence import cross_entropy, kl_divergence
from elastic_theory.theory.tree import TokenTree
from elastic_theory.theory.units import LN2



def _small_model() -> el.PerturbationModel:
    """D_p = {[0], [2]}, D_a = {[1]}, D_t = {[2]}: k = 2, w3 = 1/2, disjoint components, l* = 1."""
    return el.PerturbationModel.from_trees(
        TokenTree.from_sequences([[0], [2]], 3), TokenTree.from_sequences([[1]], 3), TokenTree.from_sequences([[2]], 3)
    )


def test_exact_small_case():
    """At l = 1/2 (hand computation): p_l = (1, 1, 3/2)/(7/2), dCE_a/dl = 2/7 nats, dCE_p/dl = -1/21 nats, R = 6."""
    m = _small_model()
    ra, rp = m.rates(m.align, 0.5), m.rates(m.pretrain, 0.5)
    # A handful of float operations on O(1) numbers: 8 eps relative.
    assert ra.dcross_entropy_dl_bits * LN2 == pytest.approx(2 / 7, rel=roundings(8), abs=0)
    assert rp.dcross_entropy_dl_bits * LN2 == pytest.approx(-1 / 21, rel=roundings(8), abs=0)
    assert el.ratio_R_exact(Fraction(2), Fraction(1, 2), Fraction(1, 2)) == 6
    assert m.ratio(0.5) == pytest.approx(6, rel=roundings(16), abs=0)
    assert m.k == 2.0


def test_threshold_exactly_zero():
    """At l = l* = 1 the small case has E_{P_p}[P_t/p_l] = 1, so dCE_p/dl = 0 exactly and R = inf."""
    m = _small_model()
    assert m.rates(m.pretrain, 1.0).dcross_entropy_dl_bits == 0.0
    assert m.ratio(1.0) == math.inf
    with pytest.warns(el.SignClaimWarning):
        assert el.ratio_R(2, 1, 0.5) == math.inf


@given(theorem_settings(disjoint=False), st.floats(1e-3, 2.0))
def test_cross_entropy_matches_mixture_tree(setting, l):
    """CE(P_i, p_l) from the formula equals cross_entropy against the explicit mixture tree of the three datasets."""
    model = el.PerturbationModel.from_components(*setting)
    joint = model.model(l)
    for data in (model.pretrain, model.align, model.perturb):
        ce = model.rates(data, l).cross_entropy_bits
        # Both sum the same <= n_leaves log terms from probabilities rounded in different orders.
        tol = sum_tolerance(data.n_leaves, ce, ulps_per_term=8)
        assert abs(ce - cross_entropy(data=data, model=joint)) <= tol
        assert model.rates(data, l).kl_bits == pytest.approx(kl_divergence(data=data, model=joint), abs=tol)


@given(theorem_settings(disjoint=False), st.floats(1e-3, 2.0))
def test_general_formula_against_mpmath(setting, l):
    """d/dl CE(P_i, p_l) = |D_a|/(N + l|D_a|) (1 - E_{P_i}[P_t/p_l]) against mpmath.diff, any supports, relatively.

    rates promises PRECISION (1e-12) relative of the stored trees' exact derivative plus 8 roundings of its final
    products; the reference differentiates the mpmath cross-entropy at 40 + 2 log10(1 + k) digits. Killed: the
    float64 1 - E[P_t/p_l] (k eps relative, which an absolute bound in units of the derivative's scale let pass).
    """
    model = el.PerturbationModel.from_components(*setting)
    dps = 40 + 2 * math.ceil(math.log10(1.0 + model.k))
    for data in (model.pretrain, model.align, model.perturb):
        got = model.rates(data, l).dcross_entropy_dl_bits
        ref = mp_dcross_entropy_dl(data=data, model=model, l=l, dps=dps)
        assert abs(got - ref) <= (el.PRECISION + roundings(8)) * abs(ref)


_DISJOINT = (TokenTree.from_sequences([[0, 0], [0, 1, 1], [0]], 3), TokenTree.from_sequences([[1], [1, 2], [1, 2, 2]], 3),
             TokenTree.from_sequences([[2, 0], [2, 1]], 3))


@given(theorem_settings(disjoint=True), st.floats(0.0, 0.9))
@example((_DISJOINT, np.array([0.45, 0.45, 0.1]), 1e9), 0.5)  # k eps = 2e-7 relative: the float64 complement shows
def test_disjoint_trees_reproduce_closed_forms(setting, u):
    """Disjoint components: the §2.1 formula on token trees gives d gamma_a/dl = 1/((1+k+l) ln 2) and R(k, l, w3).

    Relative, within disjoint_derivative_tolerance (the library's precision and the stored mixture's rounding; it
    does not grow with k). Killed: the float64 1 - E[P_t/p_l], whose relative error grows like k eps."""
    comps, w, k = setting
    l = u * el.sign_threshold(w[2])
    model = el.PerturbationModel.from_components(comps, w, k)
    ra, rp = model.rates(model.align, l), model.rates(model.pretrain, l)
    tol = disjoint_derivative_tolerance(l, w[2], el.PRECISION)
    # abs=0: pytest.approx's default absolute 1e-12 would pass any d gamma_p/dl at k >= 1e6 (about 1/k^2)
    assert ra.dcross_entropy_dl_bits == pytest.approx(el.dgamma_a_dl_per_response(k, l), rel=tol, abs=0)
    assert rp.dcross_entropy_dl_bits == pytest.approx(el.dgamma_p_dl_per_response(k, l, w[2]), rel=tol, abs=0)
    assert ra.shared_mass == 0.0


def test_dgamma_p_keeps_digits_at_large_k():
    """d gamma_p/dl at k = 1e9, l = 1e-9 equals the exact rational value to 16 eps (no cancellation)."""
    k, l, w3 = Fraction(10**9), Fraction(1, 10**9), Fraction(1, 10)
    exact = -(w3 - (1 - w3) * l) / ((1 + k + l) * (k * w3 + l))  # nats, the §2.2 formula in Fractions
    got = el.dgamma_p_dl_per_response(float(k), float(l), float(w3)) * LN2
    # ~10 roundings plus the inputs' own rounding (1e-9 and 0.1 are not binary): 16 eps.
    assert got == pytest.approx(float(exact), rel=roundings(16), abs=0)


def test_w3_zero_gives_minus_one():
    """w3 = 0: d gamma_p/dl = d gamma_a/dl, so R = -1 (with a SignClaimWarning: l >= l* = 0)."""
    with pytest.warns(el.SignClaimWarning):
        assert el.ratio_R(1000, 0.1, 0.0) == -1.0
    with pytest.warns(el.SignClaimWarning):
        assert el.dgamma_p_dl_per_response(1000, 0.1, 0.0) == el.dgamma_a_dl_per_response(1000, 0.1)


def test_w3_one_has_no_threshold():
    """w3 = 1: l* = inf and R = k + l exactly."""
    assert el.sign_threshold(1.0) == math.inf
    assert el.ratio_R(100, 5, 1.0) == 105.0
    assert el.ratio_R_exact(Fraction(100), Fraction(5), Fraction(1)) == 105


def test_beyond_threshold_warns_and_returns_values():
    """l > l*: a SignClaimWarning, and the exact (negative) R and positive d gamma_p/dl still come back."""
    with pytest.warns(el.SignClaimWarning, match="no longer holds"):
        cf = el.closed_form(1000, 0.5, 0.1)
    assert cf.R < 0 and cf.dgamma_p_dl_per_response > 0 and not cf.sign_valid
    assert cf.theta_upper is None
    # 0.1 is not binary: its rounding (eps/2) enters through w3 - (1 - w3) l with condition number
    # |w3/(w3 - (1 - w3) l)| = 2/7 < 1, plus ~4 roundings of the formula: 16 eps is a safe bound.
    assert cf.R == pytest.approx(float(el.ratio_R_exact(Fraction(1000), Fraction(1, 2), Fraction(1, 10))), rel=roundings(16))


def test_no_warning_inside_region():
    """Inside 0 <= l < l* nothing is warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf = el.closed_form(1000, 0.01, 0.1)
    assert cf.sign_valid and cf.theta_lower == 1.0


def test_closed_form_result_is_the_flat_dict_with_the_sign_warnings_caught():
    """closed_form_result: closed_form's fields, then R/k and whether l lies in [0, lam] (decided exactly), and the
    SignClaimWarning messages returned instead of raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result, messages = el.closed_form_result(1000, 0.5, 0.1)
    assert list(result)[-2:] == ["R_over_k", "l_within_lam"] and result["R_over_k"] == result["R"] / 1000
    assert not result["sign_valid"] and len(messages) == 1 and "no longer holds" in messages[0]
    inside, none = el.closed_form_result(Fraction(10), Fraction(1, 3), Fraction(1, 2), lam=Fraction(1, 3))
    assert inside["l_within_lam"] and none == []
    # 1/3 + 1/10**20 rounds to the float of 1/3: only exact arithmetic sees lam < l
    below, _ = el.closed_form_result(Fraction(10), Fraction(1, 3) + Fraction(1, 10**20), Fraction(1, 2), lam=Fraction(1, 3))
    assert not below["l_within_lam"] and below["l"] == below["lam"]


def test_theta_upper_equals_ratio_at_lam():
    """The upper Theta-constant is R(k, lam, w3)/k exactly (R increases in l)."""
    k, w3, lam = Fraction(1000), Fraction(1, 10), Fraction(1, 20)
    assert el.theta_upper_exact(k, w3, lam) == el.ratio_R_exact(k, lam, w3) / k
    lo, hi = el.theta_constants(1000, 0.1, 0.05)
    # Inputs 0.1 and 0.05 are not binary (eps/2 each, condition number w3/(w3 - (1 - w3) lam) = 1.8),
    # plus ~4 roundings of the formula: 16 eps.
    assert lo == 1.0 and hi == pytest.approx(float(el.theta_upper_exact(k, w3, lam)), rel=roundings(16))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: el.ratio_R(0, 0.1, 0.5), r"k = \|D_p\|/\|D_a\| must be finite and > 0, got 0.0"),
        (lambda: el.ratio_R(-1, 0.1, 0.5), r"k = .* got -1.0"),
        (lambda: el.ratio_R(10, -0.1, 0.5), r"l = \|D_t\|/\|D_a\| must be finite and >= 0, got -0.1"),
        (lambda: el.ratio_R(10, 0.1, 1.5), r"w3 .* must be in \[0, 1\], got 1.5"),
        (lambda: el.ratio_R(10, 0.1, -0.1), r"w3 .* must be in \[0, 1\], got -0.1"),
        (lambda: el.ratio_R(float("nan"), 0.1, 0.5), r"k = .* got nan"),
        (lambda: el.dgamma_a_dl_per_response(10, float("inf")), r"l = .* got inf"),
        (lambda: el.theta_constants(10, 0.0, 0.1), "w3 = 0: R = -1 for every l"),
        (lambda: el.theta_constants(10, 0.5, 1.0), r"lam = 1 must be < l\*"),
        (lambda: el.hooke_invariant(10, 0.0, 0.5), r"needs w3 > 0 and 0 < l < l\* = 1; got w3=0.5, l=0.0"),
        (lambda: el.hooke_invariant(10, 2.0, 0.5), r"needs w3 > 0 and 0 < l < l\* = 1; got w3=0.5, l=2.0"),
    ],
)
def test_bad_input_raises(call, message):
    """k <= 0, l < 0, w3 outside [0, 1], non-finite input, lam >= l*, and Hooke outside 0 < l < l* raise ValueError."""
    with pytest.raises(ValueError, match=message):
        call()


def test_token_size_unit():
    """size_unit='tokens' expresses k in tokens (n_tokens of D_p over D_a); responses is the default."""
    p, a, t = (TokenTree.from_sequences(s, 3) for s in ([[0, 0, 0], [2]], [[1]], [[2]]))
    assert el.PerturbationModel.from_trees(p, a, t).k == 2.0
    assert el.PerturbationModel.from_trees(p, a, t, size_unit="tokens").k == 4.0
    with pytest.raises(ValueError, match="size_unit must be 'responses' or 'tokens', got 'bytes'"):
        el.PerturbationModel.from_trees(p, a, t, size_unit="bytes")


def test_token_size_unit_does_not_change_the_model():
    """The joint optimum is the empirical distribution of all responses together, however |D| is measured.

    D_p = {0000, 0111, 2222}, D_a = {1, 12}: each of the 5 responses gets 1/5 in both units (the old tokens mode
    weighted the mixture by token counts: 4/15, 4/15, 1/10, 1/10, 4/15). Tokens mode only rescales l:
    |D_t|_tok = l |D_a|_tok means l E_a|x| / E_t|x| = l * 1.5 / 3 in responses, and derivatives per unit of that l."""
    p, a, t = (TokenTree.from_sequences(s, 4) for s in ([[0, 0, 0, 0], [0, 1, 1, 1], [2, 2, 2, 2]],
                                                         [[1], [1, 2]], [[3, 3, 3]]))
    by_resp = el.PerturbationModel.from_trees(p, a, t)
    by_tok = el.PerturbationModel.from_trees(p, a, t, size_unit="tokens")
    for m in (by_resp, by_tok):
        assert m.base_model.leaves.prob.tolist() == [0.2] * 5
    assert (by_resp.k, by_tok.k, by_tok.k_responses) == (1.5, 4.0, 1.5)  # 12 tokens over 3
    assert by_tok.l_scale == 0.5 and by_tok.l_responses(0.4) == 0.2
    assert by_tok.model(0.4).leaves.prob.tolist() == by_resp.model(0.2).leaves.prob.tolist()
    for data in (p, a, t):
        rt, rr = by_tok.rates(data, 0.4), by_resp.rates(data, 0.2)
        assert rt.cross_entropy_bits == rr.cross_entropy_bits
        assert rt.dcross_entropy_dl_bits == pytest.approx(0.5 * rr.dcross_entropy_dl_bits, rel=roundings(4), abs=0)
    assert by_tok.ratio(0.4) == pytest.approx(by_resp.ratio(0.2), rel=roundings(8), abs=0)
    assert by_tok.hooke_residual(0.4) == by_resp.hooke_residual(0.2)


def test_token_size_unit_needs_tokens():
    p, e = TokenTree.from_sequences([[0]], 2), TokenTree.from_sequences([[]], 2)
    with pytest.raises(ValueError, match="size_unit='tokens' needs tokens in every dataset, but D_t has only empty"):
        el.PerturbationModel.from_trees(p, p, e, size_unit="tokens")


def test_hooke_invariant_first_order():
    """0 <= (|D_a| d gamma_a + |D_p| d gamma_p)/(|D_a| d gamma_a) <= l (1 + k(1-w3))/(k w3 + l), and -> 0 with l."""
    prev = None
    for l in (1e-1, 1e-2, 1e-3, 1e-4):
        h = el.hooke_invariant(100, l, 0.5)
        # 32 eps relative: hooke_invariant's stated precision (test_hooke_invariant_matches_mpmath).
        assert 0 <= h.relative_residual <= h.first_order_bound * (1 + roundings(32))
        if prev is not None:
            assert h.relative_residual < prev
        prev = h.relative_residual


HOOKE_FIELDS = ("delta_gamma_a", "delta_gamma_p", "residual", "relative_residual")


@pytest.mark.parametrize("k", [1e-3, 1.0, 10.0, 1e4, 1e6, 1e7, 1e8, 1e10, 1e12])
def test_hooke_invariant_matches_mpmath(k):
    """Every field of hooke_invariant within 32 eps relative of a 40-digit evaluation that integrates the derivatives
    (no difference of logs), for l from 1e-9 l* to just below l*.

    32 eps: the series has a few eps relative error (alternating, terms shrinking threefold), its prefactor six
    roundings, delta_gamma_p = (r - d_a)/k loses at most a factor 2 near l* (measured worst over a wider grid:
    3 eps). The old difference d_a + k d_p gave -2.3e-9 at (1e7, 1.1e-10, 0.1) (exact +4.95e-10) and 3.2e-4 at
    (1e12, 1e-3, 0.5) (exact 5.0e-4); both points are on this grid (l = 1e-9 l* for w3 = 0.1, 1e-3 l* for 0.5)."""
    from elastic_theory.theory.highprec import reference_hooke

    for w3 in (0.01, 0.1, 0.5, 0.9, 0.999):
        for u in (1e-9, 1e-6, 1e-3, 0.5, 0.999):
            l = u * el.sign_threshold(w3)
            h, ref = el.hooke_invariant(k, l, w3), reference_hooke(k, l, w3)
            for field in HOOKE_FIELDS:
                assert getattr(h, field) == pytest.approx(ref[field], rel=roundings(32), abs=0), (k, l, w3, field)


@pytest.mark.parametrize(("k", "l", "w3"), [(1e7, 1.1e-10, 0.1), (1e12, 1e-3, 0.5)])
def test_hooke_invariant_at_the_reported_points(k, l, w3):
    """The issue's two points, by value: 40-digit relative residuals 4.95000055e-10 and 5.000000000009992e-4."""
    want = {(1e7, 1.1e-10, 0.1): 4.950000549999999e-10, (1e12, 1e-3, 0.5): 5.000000000009992e-4}[(k, l, w3)]
    assert el.hooke_invariant(k, l, w3).relative_residual == pytest.approx(want, rel=roundings(32), abs=0)


@pytest.mark.parametrize("k", [Fraction(1, 10), Fraction(1), Fraction(10), Fraction(10**6), Fraction(10**12)])
@pytest.mark.parametrize("w3", [Fraction(1, 10), Fraction(1, 2), Fraction(9, 10)])
@pytest.mark.parametrize("u", [Fraction(1, 10**9), Fraction(1, 10), Fraction(999, 1000)])
def test_first_order_bound_is_exactly_one_minus_k_over_R(k, w3, u):
    """first_order_bound = 1 - k/R(l) exactly (R in exact rationals of the float inputs), within 8 eps: five
    roundings in l (1 + k (1 - w3)) / (k w3 + l). The looser l (1 + k)/(k w3 + l) is off by k w3 / (1 + k(1 - w3))
    relative, at least 1/111 on this grid, so it fails here while still bounding the residual."""
    l = float(u * w3 / (1 - w3))
    kf, wf = float(k), float(w3)
    exact = 1 - Fraction(kf) / el.ratio_R_exact(Fraction(kf), Fraction(l), Fraction(wf))
    assert el.hooke_invariant(kf, l, wf).first_order_bound == pytest.approx(float(exact), rel=roundings(8), abs=0)


def _disjoint_components(odd: bool = False) -> tuple[TokenTree, TokenTree, TokenTree]:
    """Three disjoint components. Their counts sum to powers of two (so w = (1/2, 1/4, 1/4) mixtures are stored
    exactly and the §2.2 closed forms are the exact values for the stored trees), or with ``odd`` to 5, 3 and 7
    (every normalization rounds: a rounded total of D_t alone shifts E[P_t/p_l] by eps, k eps relative)."""
    V = 6
    counts = ([2, 1, 2], [1, 2], [1, 3, 3]) if odd else ([2, 1, 1], [1, 1], [1, 2, 1])
    return (
        TokenTree.from_sequences([[0], [0, 1], [0, 0]], V, counts=counts[0]),
        TokenTree.from_sequences([[2], [2, 3]], V, counts=counts[1]),
        TokenTree.from_sequences([[4], [4, 5], [5]], V, counts=counts[2]),
    )


LARGE_K = [1e4, 1e6, 1e7, 1e8, 1e10, 1e12, 1e14]
WEIGHTS = [(0.5, 0.25, 0.25), (0.45, 0.45, 0.1)]


@pytest.mark.parametrize("k", LARGE_K)
@pytest.mark.parametrize("w", WEIGHTS)
@pytest.mark.parametrize("odd", [False, True])
def test_rates_derivative_keeps_its_digits_at_large_k(k, w, odd):
    """d CE_p/dl of the token-tree model within PRECISION (1e-12) + 16 eps relative of mpmath.diff of the mpmath
    cross-entropy of the stored trees, at l = 1e-4 and l*/2; for the dyadic weights also of the exact closed form.

    1 - E[P_t/p_l] is ~1/k: the old float64 form '1 - shared' lost k eps (measured 7e-9 at k = 1e8, 1.6e-6 at 1e10,
    4e-4 at 1e12, 3% at 1e14). dps = 2 log10 k + 40: the derivative is ~1/k^2 of the cross-entropy it differentiates.
    """
    from elastic_theory.theory.highprec import mp_dcross_entropy_dl

    m = el.PerturbationModel.from_components(_disjoint_components(odd), w, k)
    for l in (1e-4, 0.5 * el.sign_threshold(w[2])):
        got = m.rates(m.pretrain, l).dcross_entropy_dl_bits
        ref = mp_dcross_entropy_dl(data=m.pretrain, model=m, l=l, dps=int(2 * math.log10(k)) + 40)
        assert got == pytest.approx(ref, rel=el.PRECISION + roundings(16), abs=0), (k, l)
        if w[2] == 0.25 and not odd:
            assert got == pytest.approx(el.dgamma_p_dl_per_response(k, l, w[2]), rel=el.PRECISION + roundings(16), abs=0), (k, l)


@pytest.mark.parametrize("k", [2.0] + LARGE_K)
@pytest.mark.parametrize("w", WEIGHTS)
@pytest.mark.parametrize("odd", [False, True])
def test_model_hooke_residual_matches_mpmath(k, w, odd):
    """PerturbationModel.hooke_residual within 2 PRECISION + 16 eps (a ratio of two controlled sums) of the ratio of
    differences of 60-digit mpmath cross-entropies of the stored trees, and of the closed form (disjoint components).

    The old difference of float cross-entropies gave 7.2e-4 for 4.5e-4 at k = 1e4 (w3 = 0.1, l = 1e-4) and 1.0 at
    k = 1e6."""
    from elastic_theory.theory.highprec import mp_hooke_residual

    m = el.PerturbationModel.from_components(_disjoint_components(odd), w, k)
    tol = 2 * el.PRECISION + roundings(16)
    for l in (1e-4, 0.5 * el.sign_threshold(w[2])):
        got = m.hooke_residual(l)
        assert got == pytest.approx(mp_hooke_residual(m, l, dps=80), rel=tol, abs=0), (k, l)
        if not odd:
            assert got == pytest.approx(el.hooke_invariant(k, l, w[2]).relative_residual, rel=tol, abs=0), (k, l)


def test_closed_form_derivatives_are_per_response():
    """The closed forms' names say their unit: on disjoint token trees whose responses average 5/3 (D_a) and 3 (D_p)
    tokens, dgamma_a_dl_per_response equals the per-response derivative and E_a|x| times the per-token one; a
    per-token slope compared with it directly would be off by that factor."""
    V = 6
    comps = (
        TokenTree.from_sequences([[0, 0, 0], [0, 1, 0]], V),
        TokenTree.from_sequences([[2], [2, 3], [3, 3]], V),
        TokenTree.from_sequences([[4, 4, 4, 4], [5, 5]], V),
    )
    m = el.PerturbationModel.from_components(comps, WEIGHTS[0], 10.0)
    ra, rp = m.rates(m.align, 0.1), m.rates(m.pretrain, 0.1)
    da, dp = el.dgamma_a_dl_per_response(10.0, 0.1), el.dgamma_p_dl_per_response(10.0, 0.1, 0.25)
    assert ra.dcross_entropy_dl_bits == pytest.approx(da, rel=roundings(16), abs=0)
    assert ra.dgamma_dl_bits_per_token * m.align.mean_length == pytest.approx(da, rel=roundings(16), abs=0)
    assert rp.dgamma_dl_bits_per_token * m.pretrain.mean_length == pytest.approx(dp, rel=el.PRECISION, abs=0)
    assert m.align.mean_length == pytest.approx(5 / 3) and not ra.dgamma_dl_bits_per_token == pytest.approx(da)


def test_model_hooke_residual_needs_positive_l():
    m = el.PerturbationModel.from_components(_disjoint_components(), WEIGHTS[0], 2.0)
    with pytest.raises(ValueError, match="hooke_residual needs l > 0"):
        m.hooke_residual(0.0)


def test_model_hooke_residual_matches_closed_form():
    """PerturbationModel.hooke_residual on disjoint trees equals the closed-form relative residual."""
    m = _small_model()
    h = el.hooke_invariant(2, 0.1, 0.5)
    # Numerator d_a + k d_p (k = 2) from four cross-entropies of ~1.6 bits, each a 3-term sum with ~4 eps
    # absolute error: about (2 + 2 * 2) * 4 eps = 24 eps, plus the closed form's log1p roundings: 32 eps,
    # divided by |delta gamma_a| = 0.047 (measured error: 3.3 eps / delta).
    assert m.hooke_residual(0.1) == pytest.approx(h.relative_residual, abs=roundings(32) / h.delta_gamma_a)


def test_inverse_alignment_predicate():
    """Def. 3.6: elastic iff rho(p0', p0) <= eps0 and |D_b|/|D_a| <= max_size_ratio; rho = rate gap or KL."""
    p0 = TokenTree.from_sequences([[0], [1]], 2)
    p0p = TokenTree.from_sequences([[0], [0], [1]], 2)
    data = TokenTree.from_sequences([[0], [1], [1]], 2)
    gap = el.rho(p0=p0, p0_prime=p0p, kind="rate_gap", data=data)
    # gamma(p0, data) = 1 bit/token; gamma(p0', data) = (log2(3/2) + 2 log2 3)/3 (hand computation).
    assert gap == pytest.approx(abs((math.log2(1.5) + 2 * math.log2(3)) / 3 - 1), rel=roundings(8))
    assert el.rho(p0=p0, p0_prime=p0p, kind="kl") == pytest.approx(kl_divergence(data=p0p, model=p0), rel=roundings(8), abs=0)
    assert el.rho(p0=p0, p0_prime=p0p, kind="kl_reverse") == pytest.approx(kl_divergence(data=p0, model=p0p), rel=roundings(8), abs=0)
    # gap = 0.2516...: eps0 = 0.3 admits it, eps0 = 0.2 does not; |D_b|/|D_a| = 0.5 is not << 1.
    assert el.inverse_alignment(p0=p0, p0_prime=p0p, eps0=0.3, size_b=10, size_a=1000, data=data).elastic
    assert not el.inverse_alignment(p0=p0, p0_prime=p0p, eps0=0.3, size_b=500, size_a=1000, data=data).elastic
    assert not el.inverse_alignment(p0=p0, p0_prime=p0p, eps0=0.2, size_b=10, size_a=1000, data=data).elastic
    with pytest.raises(ValueError, match="compares rates on a dataset: pass data="):
        el.rho(p0=p0, p0_prime=p0p, kind="rate_gap")
    with pytest.raises(ValueError, match="rho must be 'rate_gap', 'kl' or 'kl_reverse', got 'l2'"):
        el.rho(p0=p0, p0_prime=p0p, kind="l2")
    with pytest.raises(ValueError, match="eps0 must be finite and >= 0, got -1.0"):
        el.inverse_alignment(p0=p0, p0_prime=p0p, eps0=-1.0, size_b=1, size_a=1, data=data)
    for size_b, size_a in ((1, 0), (0, 1), (-1, 5)):  # either size alone being bad is an error
        with pytest.raises(ValueError, match="dataset sizes must be > 0"):
            el.inverse_alignment(p0=p0, p0_prime=p0p, eps0=0.3, size_b=size_b, size_a=size_a, data=data)


@given(theorem_settings(disjoint=True))
def test_disjoint_components_share_no_leaf(setting):
    """The disjoint strategy's components have pairwise disjoint supports, w3 >= 1e-3 and sum(w) = 1."""
    comps, w, k = setting
    for i in range(3):
        for j in range(i + 1, 3):
            lv = comps[i].leaves
            matched = comps[j].match(comps[i])[lv.node]
            assert (matched < 0).all() or (comps[j].eos_weight[np.maximum(matched, 0)][lv.is_eos] == 0).all()
    assert w[2] >= 1e-3 * (1 - roundings(8)) and abs(w.sum() - 1) <= roundings(4) and k >= 1


@given(st.floats(min_value=1e-6, max_value=1 - 1e-6), st.integers(min_value=-4, max_value=4))
@example(w3=0.5, ulps=0)  # l = l* = 1 exactly: margin 0, R = inf
@example(w3=0.1, ulps=0)  # fl(0.1/0.9) lies on the other side of the exact threshold
def test_sign_claim_exact_within_an_ulp_of_threshold(w3, ulps):
    """Within a few ulps of l* = w3/(1-w3), sign_valid, the warning and the signs of d gamma_p/dl and R all
    follow the exact sign of w3 - (1 - w3) l for the binary floats given (a float evaluation of that
    expression, or the comparison l < fl(l*), lands on the wrong side for about 1 in 25 such points)."""
    l = float(el.sign_threshold(w3))
    for _ in range(abs(ulps)):
        l = float(np.nextafter(l, math.inf if ulps > 0 else 0.0))
    margin = Fraction(w3) - (1 - Fraction(w3)) * Fraction(l)
    below = margin > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", el.SignClaimWarning)
        cf = el.closed_form(10.0, l, w3)
    assert cf.sign_valid == below
    assert bool(caught) == (not below)
    assert (cf.dgamma_p_dl_per_response < 0) == below
    assert (0 < cf.R < math.inf) == below
    assert (cf.R == math.inf) == (margin == 0)  # exactly at l = l* (e.g. w3 = 1/2, l = 1)


def test_sign_valid_survives_underflow_of_the_derivative():
    """k = 1e300, l = 1/2, w3 = 4/5 (l < l* = 4): d gamma_p/dl ~ -1/k^2 underflows to -0.0 in float64, yet
    the sign claim holds (sign_valid from the exact sign of w3 - (1 - w3) l) and nothing is warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf = el.closed_form(1e300, 0.5, 0.8)
    assert cf.dgamma_p_dl_per_response == 0.0 and cf.sign_valid


def test_derivative_ratio_when_rates_do_not_move():
    """R = d_a/(-d_p): +-inf when only d_p = 0, nan (undefined, not infinite) when both are 0; the model's
    ratio on datasets of empty responses only (every rate is 0 for every l) is that nan."""
    assert el.derivative_ratio(0.5, -0.25) == 2.0  # 0.5/0.25, exact in binary
    assert el.derivative_ratio(0.5, 0.0) == math.inf and el.derivative_ratio(-0.5, 0.0) == -math.inf
    assert math.isnan(el.derivative_ratio(0.0, 0.0))
    empty = TokenTree.from_sequences([[]], 2)
    assert math.isnan(el.PerturbationModel.from_trees(empty, empty, empty).ratio(0.5))


def test_closed_forms_at_the_edges_of_float64():
    """Inputs whose intermediate products leave float64: the closed forms are the exact values rounded once.

    k = 1e-300, l = w3 = 1e-300: w3 - (1 - w3) l = 1e-600 > 0 exactly (it underflows in float64), so the
    sign claim holds and R = (w3 k + l)/1e-600 ~ 1e300. k = 5e-324 (the smallest float), l = 0, w3 = 1e-300:
    k w3 underflows, the true d gamma_p/dl = -1/((1 + k) k ln 2) ~ -2.9e323 is beyond float64 (-inf)."""
    k, l, w3 = 1e-300, 1e-300, 1e-300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf = el.closed_form(k, l, w3)
    assert cf.sign_valid
    assert cf.R == float(el.ratio_R_exact(Fraction(k), Fraction(l), Fraction(w3)))
    assert cf.dgamma_p_dl_per_response < 0
    cf = el.closed_form(5e-324, 0.0, 1e-300)
    assert cf.dgamma_p_dl_per_response == -math.inf and cf.R == 5e-324 and cf.sign_valid


def test_derivative_with_alignment_size_not_one():
    """|D_a| = 3 responses, |D_p| = 2 (every other test has |D_a| = 1, where l |D_a| and l / |D_a| coincide).

    D_p = {[0], [2]}, D_a = {[1]} x 3, D_t = {[2]}: p_l has masses (1, 3, 1 + 3l) / (5 + 3l). At l = 1/3, by
    hand: dCE_a/dl = 3/(5 + 3l) = 1/2 nats, dCE_p/dl = 3/(5 + 3l) - (1/2) 3/(1 + 3l) = -1/4 nats.
    """
    m = el.PerturbationModel.from_trees(
        TokenTree.from_sequences([[0], [2]], 3), TokenTree.from_sequences([[1]] * 3, 3), TokenTree.from_sequences([[2]], 3)
    )
    assert (m.size_pretrain, m.size_align) == (2.0, 3.0)
    ra, rp = m.rates(m.align, 1 / 3), m.rates(m.pretrain, 1 / 3)
    assert ra.dcross_entropy_dl_bits * LN2 == pytest.approx(1 / 2, rel=roundings(8), abs=0)
    assert rp.dcross_entropy_dl_bits * LN2 == pytest.approx(-1 / 4, rel=roundings(8), abs=0)


@pytest.mark.parametrize("w", [(0.5, 0.5, 0.5), (0.2, 0.2, 0.2), (1.2, -0.1, -0.1), (0.5, 0.5)])
def test_components_weights_must_sum_to_one(w):
    """w must be three non-negative weights summing to 1 (within the rounding of a 3-term sum)."""
    comps = tuple(TokenTree.from_sequences([[j]], 3) for j in range(3))
    with pytest.raises(ValueError, match="w must be three non-negative weights summing to 1"):
        el.PerturbationModel.from_components(comps, w, 10.0)
    el.PerturbationModel.from_components(comps, (0.1, 0.2, 0.7), 10.0)  # 0.1 + 0.2 + 0.7 = 1 within one rounding


def test_hooke_invariant_at_w3_one():
    """w3 = 1 (D_p is all perturbation-type data, l* = inf) is inside the Hooke invariant's domain.

    The relative residual lies in [0, first-order bound], and the bound is l (1 + k(1 - w3))/(k w3 + l) = l/(k + l).
    """
    h = el.hooke_invariant(10.0, 0.5, 1.0)
    assert h.first_order_bound == pytest.approx(0.5 / 10.5, rel=roundings(8), abs=0)
    assert 0.0 < h.relative_residual <= h.first_order_bound
