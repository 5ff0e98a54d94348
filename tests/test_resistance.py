"""Entropy-matched control targets for the resistance experiment."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from elastic_theory.resistance import entropy_bits, entropy_matched, temper


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


def test_entropy_outside_the_reachable_range_is_named():
    with pytest.raises(ValueError, match="outside what tempering"):
        entropy_matched([0.5, 0.25, 0.25], 1.6)
