"""The hypothesis strategies of elastic_theory.testing deliver what their docstrings promise."""

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from elastic_theory.theory.tolerances import probability_sum_tolerance, roundings
from elastic_theory.testing import (
    MAX_DECADES,
    SMALL_VOCAB_MAX,
    datasets,
    mixtures,
    probability_vectors,
    token_trees,
    tree_families,
    weighted_datasets,
)

# Leaf probabilities are masses divided by their float64 sum: n_leaves * eps bounds the error
# of the sum (probability_sum_tolerance); the trees drawn here have at most 20 leaves.
LEAF_SUM_TOL = probability_sum_tolerance(20)


@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.floats(0.0, 1.0 / n))).flatmap(
    lambda nm: st.tuples(st.just(nm), probability_vectors(*nm))
))
def test_probability_vectors_guarantees(case):
    (n, min_prob), p = case
    assert p.shape == (n,)
    assert np.isfinite(p).all() and (p > 0).all() and (p >= min_prob).all()
    assert abs(p.sum() - 1.0) <= probability_sum_tolerance(n)


@given(probability_vectors(6))
def test_probability_vectors_span_at_most_max_decades(p):
    """Entries span at most MAX_DECADES powers of ten: max/min <= 10^MAX_DECADES (up to the 10**-e and normalization roundings)."""
    assert p.max() / p.min() <= 10.0**MAX_DECADES * (1 + roundings(8))


def test_probability_vectors_reach_both_ends_of_their_range():
    """The whole stated range is reachable: an entry below 10^-(MAX_DECADES - 1), and one above 1 - 10^-(MAX_DECADES - 1).

    A derandomized search (same examples every run); it fails if the construction cannot reach the
    ends it promises (a narrower exponent range, or exponents not reaching MAX_DECADES).
    """
    edge = 10.0 ** -(MAX_DECADES - 1)
    search = settings(database=None, derandomize=True, max_examples=2000)
    assert find(probability_vectors(2), lambda p: p.min() < edge, settings=search).min() < edge
    assert find(probability_vectors(2), lambda p: p.max() > 1 - edge, settings=search).max() > 1 - edge


@given(weighted_datasets(vocab_size=7, min_size=2, max_size=9, max_len=4, max_count=50))
def test_weighted_datasets_guarantees(data):
    seqs, counts = data
    assert 2 <= len(seqs) <= 9 and counts.shape == (len(seqs),) and counts.dtype == np.int64
    assert ((counts >= 1) & (counts <= 50)).all()
    assert all(len(s) <= 4 and all(0 <= t < 7 for t in s) for s in seqs)


@given(datasets(vocab_size=50_000, max_size=5, max_len=3))
def test_datasets_large_alphabet(seqs):
    assert 1 <= len(seqs) <= 5 and all(0 <= t < 50_000 for s in seqs for t in s)


@given(token_trees(max_len=5, pruned_depth=3))
def test_token_trees_guarantees(tree):
    assert 2 <= tree.vocab_size <= SMALL_VOCAB_MAX
    assert tree.max_depth <= 3
    assert (tree.leaves.prob > 0).all() and abs(tree.leaves.prob.sum() - 1.0) <= LEAF_SUM_TOL
    assert tree.n_sequences == round(tree.n_sequences) >= 1


@given(tree_families(3, vocab_size=3))
def test_tree_families_share_alphabet(trees):
    assert len(trees) == 3 and {t.vocab_size for t in trees} == {3}


@given(mixtures(4, max_decades=6))
def test_mixtures_guarantees(drawn):
    trees, sizes = drawn
    assert len(trees) == sizes.size == 4
    assert ((sizes >= 1) & (sizes <= 1e6)).all()


@pytest.mark.parametrize(
    "make",
    [lambda: probability_vectors(0), lambda: probability_vectors(4, 0.3), lambda: token_trees(pruned_depth=0),
     lambda: mixtures(0), lambda: datasets(vocab_size=1)],
    ids=["n=0", "min_prob>1/n", "pruned_depth=0", "mixture of none", "vocab 1"],
)
def test_bad_parameters_raise(make):
    with pytest.raises(ValueError):

        @given(make())
        def draw(_):
            pass

        draw()
