"""The §2.1 rates and the Hooke residuals at the points where float64 loses them: near a zero of d gamma/dl, at l
down to the smallest normal float, at k = 1e15, each against mpmath at 50 digits or more."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from elastic_theory.claims.cases import disjoint_example
from elastic_theory.theory import elasticity, highprec
from elastic_theory.theory.elasticity import PerturbationModel

SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)


def mp_rates(model: PerturbationModel, data, l: float, dps: int = 60) -> dict[str, mpmath.mpf]:
    """CE, its l-derivative (both nats per response) and KL of ``data`` under p_l, in mpmath at ``dps`` digits.

    From the stored leaf masses, each tree normalized by its exact total; N = |D_p| + |D_a| formed in mpmath. The
    derivative is the §2.1 formula |D_a|/(N + l|D_a|) (1 - E[P_t/p_l]) (proved by sympy, general_perturbation_formula),
    here with nothing rounded: the reference the float64 code's handling of cancellation and range is checked against.
    """
    with mpmath.workdps(dps):
        m = model.leaf_masses(data)
        mp = mpmath.mpf
        T = [mpmath.fsum(mp(x) for x in arr.tolist()) for arr in m.all_leaves]
        s_p, s_a, L = mp(model.size_pretrain), mp(model.size_align), mp(l)
        N = s_p + s_a
        ce = dce = kl = mp(0)
        for d, q, a, t in zip(m.data.tolist(), m.pretrain.tolist(), m.align.tolist(), m.perturb.tolist()):
            Pd, P, Pt = mp(d) / T[0], (s_p * mp(q) / T[1] + s_a * mp(a) / T[2]) / N, mp(t) / T[3]
            p_l = (N * P + L * s_a * Pt) / (N + L * s_a)
            ce -= Pd * mpmath.log(p_l)
            dce += Pd * s_a / (N + L * s_a) * (1 - Pt / p_l)
            kl += Pd * mpmath.log(Pd / p_l)
        return {"ce": ce, "dce": dce, "kl": kl}


def _rel(got: float, ref) -> float:
    return float(abs((mpmath.mpf(got) - ref) / ref))


def test_derivative_near_its_zero_with_N_not_a_float():
    """D_t inside D_p only, |D_p| = 0.001 |D_a| (N = 1.001 is no float), l within 60 ulps of the zero of d gamma_p/dl
    (l* = 1e-6): relative error <= 1e-12 and the right sign at all 120 floats against mpmath at 50 digits.

    Killed: N rounded to float64 before the high-precision sum (relative errors up to 1.75 here, one sign wrong), and
    the float64 1 - E[P_t/p_l] (no correct digit so close to the zero)."""
    w3 = 1e-6 / (1 + 1e-6)
    model = PerturbationModel.from_components(disjoint_example(), ((1 - w3) / 2, (1 - w3) / 2, w3), 0.001)
    centre = elasticity.sign_threshold(w3)
    ls = [centre + i * math.ulp(centre) for i in range(-60, 60)]
    signs = set()
    for l in ls:
        ref = mp_rates(model, model.pretrain, l, dps=50)["dce"] / mpmath.log(2)
        got = model.rates(model.pretrain, l).dcross_entropy_dl_bits
        assert _rel(got, ref) <= 1e-12, (l, got, ref)
        assert (got > 0) == (ref > 0)
        signs.add(ref > 0)
    assert signs == {True, False}  # the 120 floats straddle the zero


@pytest.mark.parametrize("k", [1e9, 1e15])
def test_perturbation_rates_at_l_1e_300(k):
    """D_t outside D_p (w3 = 0), l = 1e-300: CE ~ ln(k/l), d CE/dl ~ -1/l and the KL are finite and within 1e-12
    relative of mpmath (they came out as -inf and inf when P_t/p_l overflowed and p_l was subnormal)."""
    model = PerturbationModel.from_components(disjoint_example(), (0.5, 0.5, 0.0), k)
    r = model.rates(model.perturb, 1e-300)
    ref = mp_rates(model, model.perturb, 1e-300)
    for got, key in ((r.cross_entropy_bits, "ce"), (r.dcross_entropy_dl_bits, "dce"), (r.kl_bits, "kl")):
        assert math.isfinite(got) and _rel(got, ref[key] / mpmath.log(2)) <= 1e-12, (key, got, ref[key])


@pytest.mark.parametrize("l", [0.0, 1e-3, 0.5])
def test_tiny_kl_keeps_its_relative_precision(l):
    """KL(P_p || p_l) at k = 1e15 is about 1e-30 nats: within 1e-12 relative of mpmath (a float64 sum gave 2.6e-16
    for a true 2.6e-30). Killed: the float64 sum of P ln(P/p_l), whose rounding (eps) is 1e14 times the value."""
    model = PerturbationModel.from_components(disjoint_example(), (0.45, 0.45, 0.1), 1e15)
    ref = mp_rates(model, model.pretrain, l)["kl"] / mpmath.log(2)
    assert 0 < ref < 1e-20
    assert _rel(model.rates(model.pretrain, l).kl_bits, ref) <= 1e-12


@pytest.mark.parametrize("k", [0.1, 1.0, 1e3, 1e9, 1e15])
@pytest.mark.parametrize("w3", [1e-3, 0.5, 0.9])
@pytest.mark.parametrize("l", [1e-300, SMALLEST_NORMAL])
def test_hooke_invariant_down_to_the_smallest_normal_l(k, w3, l):
    """The relative Hooke residual at l = 1e-300 and the smallest normal l: within 32 eps of the mpmath integral
    (it was 0.0, and 6.4e-7 off at k = 1e15 where l/(k w3) is subnormal). Killed: any form through the residual
    itself (of order l^2: it underflows) or through the subnormal l/(k w3)."""
    ref = highprec.reference_hooke(k, l, w3)["relative_residual"]
    got = elasticity.hooke_invariant(k, l, w3).relative_residual
    assert ref > 0 and abs(got / ref - 1) <= 32 * np.finfo(np.float64).eps, (got, ref)


@pytest.mark.parametrize("k", [1.0, 1e15])
def test_model_hooke_residual_at_l_1e_300(k):
    """PerturbationModel.hooke_residual at l = 1e-300 (v = l/(1 + k) subnormal at k = 1e15) against differences of
    mpmath cross-entropies at 650 digits: within 1e-12 relative (it was 0.0, or 6.4e-7 off). Killed: the float64
    path, whose v and v^2 leave the float64 range."""
    model = PerturbationModel.from_components(disjoint_example(), (0.45, 0.45, 0.1), k)
    ref = highprec.mp_hooke_residual(model, 1e-300, dps=650)
    got = model.hooke_residual(1e-300)
    assert ref > 0 and abs(got / ref - 1) <= 1e-12, (got, ref)
