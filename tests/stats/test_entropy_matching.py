"""Entropy-matched control targets for the resistance experiment."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from elastic_theory.stats.entropy_matching import entropy_bits, entropy_matched, temper


def test_entropy_is_in_bits():
    """By hand: H(1/2, 1/4, 1/4) = 1.5 bits (1.04 nats: a natural log would fail), a zero adds nothing."""
    assert entropy_bits([0.5, 0.25, 0.25, 0.0]) == 1.5
    assert entropy_bits([1.0]) == 0.0 and entropy_bits(np.full(8, 0.125)) == 3.0


def test_temper_at_one_is_identity_and_sharpens_below_one():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    assert np.allclose(temper(p, 1.0), p, rtol=0, atol=1e-15)
    assert entropy_bits(temper(p, 0.5)) < entropy_bits(p) < entropy_bits(temper(p, 2.0)) < math.log2(3)
    assert temper(p, 0.5)[3] == 0.0


@given(st.lists(st.floats(0.01, 1.0), min_size=3, max_size=12), st.floats(0.05, 0.95))
def test_entropy_matched_hits_the_target(weights, frac):
    """Any target strictly between the argmax entropy and log2(support) is reached to 1e-9 bits."""
    p = np.asarray(weights) / sum(weights)
    lo = math.log2(np.count_nonzero(p >= p.max() * (1 - 1e-15)))
    hi = math.log2(p.size)
    if hi - lo < 1e-6 or np.ptp(p) < 1e-9:
        return
    target = lo + frac * (hi - lo)
    q, t = entropy_matched(p, target)
    assert entropy_bits(q) == pytest.approx(target, abs=1e-9)
    assert q.sum() == pytest.approx(1.0, abs=1e-12) and t > 0
    # q is p^(1/t) normalized: ln q - ln(p)/t is one constant (kills a target met by another family, e.g. mixing with uniform)
    # (over the masses that did not underflow to 0 at a tiny t)
    kept = q > 1e-300
    offset = np.log(q[kept]) - np.log(p[kept]) / t
    assert np.ptp(offset) == pytest.approx(0.0, abs=1e-9 * (1 + np.abs(np.log(p)).max() / t))


def test_entropy_matched_with_nearly_tied_maxima():
    """p proportional to (1, 1, 0.99999) (found by Hypothesis): at T = e^-12 it still has 1.35 bits, so a
    root bracket fixed at ln T in [-12, 12] missed a 1.29-bit target; the root is at T = 5.2e-6."""
    p = np.array([1.0, 1.0, 0.99999]) / 2.99999
    target = 1 + 0.5 * (math.log2(3) - 1)
    q, t = entropy_matched(p, target)
    assert entropy_bits(q) == pytest.approx(target, abs=1e-9) and t < math.exp(-12)


def test_entropy_outside_the_reachable_range_is_named():
    with pytest.raises(ValueError, match="outside what tempering"):
        entropy_matched([0.5, 0.25, 0.25], 1.6)
