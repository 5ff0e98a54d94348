"""Compression rates (elastic_theory.theory.rates): exact small cases, the offset identities, bad input."""

import math
from fractions import Fraction

import pytest
from hypothesis import assume, given

from elastic_theory.theory.rates import OFFSETS, gamma, normalized_gamma, rate_offset
from elastic_theory.testing import tree_families
from elastic_theory.theory.tolerances import entropy_tolerance, roundings
from elastic_theory.theory.divergence import kl_divergence
from elastic_theory.theory.mixing import mixture
from elastic_theory.theory.tree import TokenTree

def test_gamma_of_the_data_model_is_its_entropy_rate():
    # two equally likely 2-token responses: H = 1 bit per response, 2 tokens -> 1/2 bit per token
    d = TokenTree.from_sequences([[0, 1], [1, 1]], 2)
    assert Fraction(gamma(data=d, model=d)) == Fraction(1, 2)
    assert Fraction(rate_offset(d, "entropy_rate")) == Fraction(1, 2)
    # log_leaves: log2(M) / d = log2(2) / 2
    assert Fraction(rate_offset(d, "log_leaves")) == Fraction(1, 2)
    assert normalized_gamma(data=d, model=d) == 0.0
    assert normalized_gamma(data=d, model=d, offset="log_leaves") == 0.0


def test_log_leaves_offset_divides_by_the_maximum_depth():
    """log_leaves = log2(M) / d with d the maximum depth, not the mean length: [0] and [1, 1, 1] give log2(2)/3, not 1/2."""
    d = TokenTree.from_sequences([[0], [1, 1, 1]], 2)
    assert (d.n_leaves, d.max_depth, d.mean_length) == (2, 3, 2.0)
    assert rate_offset(d, "log_leaves") == 1 / 3  # log2(2) = 1 exactly, one division
    assert normalized_gamma(data=d, model=d, offset="log_leaves") == gamma(data=d, model=d) - 1 / 3


def test_gamma_under_a_skewed_model_exactly():
    # data [0,1], [1,1] half/half; model 3/4 on [0,1], 1/4 on [1,1]: CE = (log2(4/3) + 2)/2 bits, / 2 tokens
    data = TokenTree.from_sequences([[0, 1], [1, 1]], 2)
    model = TokenTree.from_sequences([[0, 1], [1, 1]], 2, counts=[3, 1])
    want = (2 - math.log2(3) / 2) / 2
    assert abs(gamma(data=data, model=model) - want) <= roundings(4)  # log2(3), one subtraction, two halvings (exact)
    # normalized (entropy-rate offset) = KL / E|x| = (CE - 1) / 2
    assert abs(normalized_gamma(data=data, model=model) - (want - 0.5)) <= roundings(8)


@given(tree_families(2))
def test_normalized_rate_is_rate_minus_offset(family):
    data, other = family
    assume(data.mean_length > 0)  # all-empty data has no per-token rate (tested below)
    model = mixture([data, other])
    g = gamma(data=data, model=model)
    # both sides are sums over <= n_leaves terms of magnitude <= 64 bits: 128 n eps absolute
    tol = 2 * entropy_tolerance(data.n_leaves) / data.mean_length
    for offset in OFFSETS:
        assert abs(normalized_gamma(data=data, model=model, offset=offset) - (g - rate_offset(data, offset))) <= tol
    assert normalized_gamma(data=data, model=model) >= -tol
    assert abs(normalized_gamma(data=data, model=model) - kl_divergence(data=data, model=model) / data.mean_length) <= tol


def test_zero_support_and_bad_offsets():
    data = TokenTree.from_sequences([[0], [1]], 2)
    model = TokenTree.from_sequences([[0]], 2)
    with pytest.raises(ValueError, match="probability 0"):
        gamma(data=data, model=model)
    assert gamma(data=data, model=model, on_zero="inf") == math.inf
    assert normalized_gamma(data=data, model=model, on_zero="inf") == math.inf
    with pytest.raises(ValueError, match="offset must be one of"):
        rate_offset(data, "log_m")
    with pytest.raises(ValueError, match="offset must be one of"):
        normalized_gamma(data=data, model=data, offset="log_m")


def test_only_empty_responses_have_no_per_token_rate():
    empty = TokenTree.from_sequences([[], []], 2)
    with pytest.raises(ValueError, match="mean length 0"):
        gamma(data=empty, model=empty)
