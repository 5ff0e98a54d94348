r"""Hypothesis strategies for token trees, datasets and mixtures: valid by construction.

Each strategy *builds* a valid object (it never draws and then filters), so it is cheap to
use in property tests and in searches for counterexamples to the theory. Every docstring
states what a drawn value guarantees; the tests in ``tests/test_strategies.py`` keep those
statements honest.

Sizes are kept small by default (trees of a few dozen nodes) so that hundreds of examples
run in seconds; raise ``max_size``/``max_len`` for a wider search.

>>> from hypothesis import given
>>> @given(token_trees(vocab_size=2, max_size=5, max_len=3))
... def check(tree):
...     assert abs(tree.leaves.prob.sum() - 1.0) < 1e-12
>>> check()
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ._validation import check_count, check_depth, check_positive_sizes, check_vocab_size
from .theory.tree import TokenTree

__all__ = [
    "MAX_DECADES",
    "SMALL_VOCAB_MAX",
    "datasets",
    "disjoint_components",
    "mixtures",
    "probability_vectors",
    "theorem_settings",
    "token_sequences",
    "token_trees",
    "tree_families",
    "weighted_datasets",
]

#: Probabilities drawn by :func:`probability_vectors` span up to this many powers of ten
#: (1e-15 relative to the largest entry is where float64 sums of 1 stop seeing the entry).
MAX_DECADES = 15
#: Alphabet sizes drawn when a strategy gets ``vocab_size=None``: 2 .. SMALL_VOCAB_MAX.
SMALL_VOCAB_MAX = 5


@st.composite
def probability_vectors(draw, n: int, min_prob: float = 0.0) -> np.ndarray:
    r"""A float64 probability vector of length ``n`` whose entries span orders of magnitude.

    Construction: unnormalized weights :math:`w_i = 10^{-e_i}` with exponents
    :math:`e_i \in [0, \text{MAX\_DECADES}]` (so some entries are near 0 and, when the others are
    small, one is near 1), normalized, then mixed with the uniform floor:
    :math:`p_i = m + (1 - n m)\, w_i / \sum_j w_j`, :math:`m` = ``min_prob``.

    Guarantees: shape ``(n,)``; every entry finite, ``> 0`` and ``>= min_prob``;
    :math:`|\sum_i p_i - 1| \le` :func:`~elastic_theory.theory.tolerances.probability_sum_tolerance` ``(n)``.
    Requires ``n >= 1`` and ``0 <= min_prob <= 1/n``.
    """
    n = check_count(n, "n", 1)
    if not (0.0 <= min_prob <= 1.0 / n):
        raise ValueError(f"min_prob must be in [0, 1/n] = [0, {1.0 / n!r}] so the entries can sum to 1, got {min_prob!r}")
    exps = draw(
        st.lists(st.floats(0.0, float(MAX_DECADES), allow_nan=False, allow_infinity=False), min_size=n, max_size=n)
    )
    w = 10.0 ** -np.asarray(exps, dtype=np.float64)
    # max(0, .): n * min_prob may round to just above 1 when min_prob == 1/n.
    return min_prob + max(0.0, 1.0 - n * min_prob) * (w / w.sum())


def token_sequences(vocab_size: int, max_len: int, min_len: int = 0) -> st.SearchStrategy[list[int]]:
    """One response: a list of ``min_len .. max_len`` token ids, each in ``0 .. vocab_size - 1``.

    The empty response (length 0) is allowed unless ``min_len >= 1``.
    """
    V = check_vocab_size(vocab_size)
    max_len = check_count(max_len, "max_len", 0)
    min_len = check_count(min_len, "min_len", 0)
    if min_len > max_len:
        raise ValueError(f"min_len ({min_len}) must be <= max_len ({max_len})")
    return st.lists(st.integers(0, V - 1), min_size=min_len, max_size=max_len)


def datasets(
    vocab_size: int = 2, min_size: int = 1, max_size: int = 20, max_len: int = 6
) -> st.SearchStrategy[list[list[int]]]:
    """A dataset: ``min_size .. max_size`` responses (repeats allowed), each a :func:`token_sequences`.

    Guarantees: at least ``max(min_size, 1)`` responses (a dataset is never empty), every token in
    ``0 .. vocab_size - 1``, every length ``<= max_len``.
    """
    min_size = check_count(min_size, "min_size", 1)
    max_size = check_count(max_size, "max_size", min_size)
    return st.lists(token_sequences(vocab_size, max_len), min_size=min_size, max_size=max_size)


@st.composite
def weighted_datasets(
    draw, vocab_size: int = 2, min_size: int = 1, max_size: int = 20, max_len: int = 6, max_count: int = 10**6
) -> tuple[list[list[int]], np.ndarray]:
    """``(sequences, counts)``: a :func:`datasets` draw plus one integer count per sequence.

    Guarantees: ``counts`` is an int64 array with one entry per sequence, each in
    ``1 .. max_count`` (so every row has mass; repeated rows are allowed and add up).
    With the default ``max_count`` leaf probabilities go down to about 1e-6 / ``max_size``.
    """
    max_count = check_count(max_count, "max_count", 1)
    seqs = draw(datasets(vocab_size, min_size, max_size, max_len))
    counts = draw(st.lists(st.integers(1, max_count), min_size=len(seqs), max_size=len(seqs)))
    return seqs, np.asarray(counts, dtype=np.int64)


def _vocab(vocab_size: int | None) -> st.SearchStrategy[int]:
    if vocab_size is None:
        return st.integers(2, SMALL_VOCAB_MAX)
    return st.just(check_vocab_size(vocab_size))


def _maybe_prune(tree: TokenTree, pruned_depth: int | None) -> TokenTree:
    return tree if pruned_depth is None else tree.prune(pruned_depth)


@st.composite
def token_trees(
    draw,
    vocab_size: int | None = None,
    max_size: int = 20,
    max_len: int = 6,
    pruned_depth: int | None = None,
    max_count: int = 10**6,
) -> TokenTree:
    """A :class:`~elastic_theory.theory.tree.TokenTree` built from a :func:`weighted_datasets` draw.

    ``vocab_size=None`` draws the alphabet size from ``2 .. SMALL_VOCAB_MAX``. With
    ``pruned_depth`` the tree is pruned to that depth (:meth:`TokenTree.prune`; its cut leaves
    carry the mass of longer responses).

    Guarantees: a valid tree (the constructor's checks passed) with ``1 .. max_size`` integer-count
    responses of length ``<= max_len``; ``n_sequences`` is the sum of the counts; leaf
    probabilities are all > 0 and sum to 1 up to rounding; ``max_depth <= min(max_len,
    pruned_depth)``.
    """
    if pruned_depth is not None:
        check_depth(pruned_depth, "pruned_depth")
    V = draw(_vocab(vocab_size))
    seqs, counts = draw(weighted_datasets(V, 1, max_size, max_len, max_count))
    return _maybe_prune(TokenTree.from_sequences(seqs, V, counts=counts), pruned_depth)


@st.composite
def tree_families(
    draw,
    n: int,
    vocab_size: int | None = None,
    max_size: int = 20,
    max_len: int = 6,
    pruned_depth: int | None = None,
    max_count: int = 10**6,
) -> list[TokenTree]:
    """``n`` token trees on one alphabet whose supports may overlap, nest or be disjoint.

    Construction: one pool of responses (a :func:`datasets` draw); each tree takes a non-empty
    list of pool indices (repeats allowed) with integer counts in ``1 .. max_count``. So two trees
    share a leaf exactly when they picked the same pool response.

    Guarantees: ``len(result) == n``; all trees share ``vocab_size`` (drawn from
    ``2 .. SMALL_VOCAB_MAX`` when None); each is valid with positive leaf masses; with
    ``pruned_depth`` each is pruned to that depth.
    """
    n = check_count(n, "n", 1)
    if pruned_depth is not None:
        check_depth(pruned_depth, "pruned_depth")
    V = draw(_vocab(vocab_size))
    pool = draw(datasets(V, 1, max_size, max_len))
    trees = []
    for _ in range(n):
        picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=max_size))
        counts = draw(st.lists(st.integers(1, max_count), min_size=len(picks), max_size=len(picks)))
        tree = TokenTree.from_sequences([pool[i] for i in picks], V, counts=np.asarray(counts, dtype=np.int64))
        trees.append(_maybe_prune(tree, pruned_depth))
    return trees


@st.composite
def mixtures(
    draw,
    n: int,
    vocab_size: int | None = None,
    max_size: int = 20,
    max_len: int = 6,
    pruned_depth: int | None = None,
    max_decades: int = 6,
) -> tuple[list[TokenTree], np.ndarray]:
    r"""``(trees, sizes)``: a :func:`tree_families` draw plus positive dataset sizes :math:`|D_i|`.

    Sizes are :math:`10^{e_i}` with :math:`e_i \in [0, \text{max\_decades}]`, so they span up to
    ``max_decades`` orders of magnitude (the paper's :math:`k = |D_p|/|D_a|` is 1e3..1e6).

    Guarantees: ``len(trees) == len(sizes) == n``; ``sizes`` is a float64 array of finite values
    in ``[1, 10**max_decades]``, accepted by :func:`~elastic_theory.theory.mixing.mixture`.
    """
    n = check_count(n, "n", 1)
    max_decades = check_count(max_decades, "max_decades", 0)
    trees = draw(tree_families(n, vocab_size, max_size, max_len, pruned_depth))
    exps = draw(st.lists(st.floats(0.0, float(max_decades), allow_nan=False), min_size=n, max_size=n))
    sizes = check_positive_sizes(10.0 ** np.asarray(exps, dtype=np.float64), n)
    return trees, sizes


# ---------------------------------------------------------------------- elasticity theorem (THEORY §2)
@st.composite
def disjoint_components(
    draw, vocab_size: int | None = None, max_size: int = 8, max_len: int = 4, max_count: int = 10**3
) -> tuple[TokenTree, TokenTree, TokenTree]:
    """``(P1, P2, P3)``: three token trees with pairwise disjoint supports (the setting of THEORY §2.2).

    Construction: three :func:`weighted_datasets` draws; every response of component ``j`` gets
    token ``j`` prepended, so no leaf (and no prefix below the root) is shared.

    Guarantees: one alphabet of size ``>= 3`` (drawn from ``3 .. max(3, SMALL_VOCAB_MAX)`` when
    None); every response has length ``1 .. max_len + 1`` and starts with its component's token.
    """
    if vocab_size is not None and check_vocab_size(vocab_size) < 3:
        raise ValueError(f"disjoint components need vocab_size >= 3 (one first token each), got {vocab_size}")
    V = draw(st.integers(3, max(3, SMALL_VOCAB_MAX))) if vocab_size is None else vocab_size
    out = []
    for j in range(3):
        seqs, counts = draw(weighted_datasets(V, 1, max_size, max_len, max_count))
        out.append(TokenTree.from_sequences([[j, *s] for s in seqs], V, counts=counts))
    return tuple(out)


@st.composite
def theorem_settings(
    draw, disjoint: bool = True, max_decades: int = 6, min_w3: float = 1e-3
) -> tuple[tuple[TokenTree, TokenTree, TokenTree], np.ndarray, float]:
    r"""``(components, w, k)`` for :meth:`elastic_theory.theory.elasticity.PerturbationModel.from_components`.

    ``components``: :func:`disjoint_components` (``disjoint=True``) or a :func:`tree_families`
    draw of 3 trees whose supports may overlap; ``w``: a :func:`probability_vectors` draw of
    length 3 floored at ``min_w3`` (so :math:`w_3 \ge` ``min_w3`` and :math:`l^* > 0`);
    ``k`` = :math:`10^e`, :math:`e \in [0,` ``max_decades`` :math:`]`.
    """
    comps = draw(disjoint_components()) if disjoint else tuple(draw(tree_families(3, max_size=8, max_len=4)))
    w = draw(probability_vectors(3, min_prob=min_w3))
    w = w / w.sum()
    k = 10.0 ** draw(st.floats(0.0, float(max_decades), allow_nan=False))
    return comps, w, k
