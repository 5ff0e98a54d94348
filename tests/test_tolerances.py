"""The float64 error bounds of elastic_theory.tolerances hold for the computations they are written for."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from elastic_theory.tolerances import EPS, closed_form_tolerance, probability_sum_tolerance, roundings, sum_tolerance
from elastic_theory.tree import TokenTree


def test_roundings_bounds_a_product_chain():
    """A product of n random float64 factors is within n eps of the exact product (Higham's gamma_n <= n eps)."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 10, 100):
        for _ in range(200):
            x = rng.uniform(0.5, 2.0, size=n)
            got = 1.0
            for v in x:
                got *= float(v)
            exact = Fraction(1)
            for v in x:
                exact *= Fraction(float(v))
            assert abs(Fraction(got) / exact - 1) <= Fraction(roundings(n))


@pytest.mark.parametrize("n", [1, 3, 50, 2000])
def test_sum_tolerance_bounds_tree_entropy(n):
    """TokenTree.entropy of n leaves with counts spanning six decades is within sum_tolerance(n, H) of the 50-digit value."""
    rng = np.random.default_rng(n)
    counts = np.floor(10.0 ** rng.uniform(0.0, 6.0, size=n)).astype(np.int64)
    tree = TokenTree.from_sequences([[int(t) for t in np.base_repr(i, 7)] for i in range(n)], 7, counts=counts)
    with mpmath.workdps(50):
        total = mpmath.mpf(int(counts.sum()))
        exact = -mpmath.fsum(mpmath.mpf(int(c)) / total * mpmath.log(mpmath.mpf(int(c)) / total, 2) for c in counts)
        err = abs(mpmath.mpf(tree.entropy()) - exact)
    assert err <= sum_tolerance(n, tree.entropy())


def test_probability_sum_tolerance_bounds_normalized_vectors():
    """Vectors normalized in float64 sum to 1 within max(8, n) eps, also when the entries span 15 decades."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 10, 1000, 100_000):
        w = 10.0 ** -rng.uniform(0.0, 15.0, size=n)
        p = w / w.sum()
        assert abs(float(np.sum(p)) - 1.0) <= probability_sum_tolerance(n)
        assert abs(sum(p.tolist()) - 1.0) <= probability_sum_tolerance(n)  # recursive (left-to-right) summation


def test_closed_form_tolerance_is_16_eps_away_from_the_threshold():
    """Far from l* (condition number 1) the closed-form bound is 16 eps; it grows like w3/(w3 - (1 - w3) l)."""
    assert closed_form_tolerance(Fraction(10), Fraction(0), Fraction(1, 2)) == 16 * EPS
    assert closed_form_tolerance(Fraction(10), Fraction(1, 2), Fraction(1, 2)) == 32 * EPS  # kappa = 2
    assert closed_form_tolerance(Fraction(10), Fraction(5), Fraction(0)) == 16 * EPS  # w3 = 0: no subtraction
