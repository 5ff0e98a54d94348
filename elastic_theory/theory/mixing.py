"""The joint-training lemma: the size-weighted mixture of several token trees."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_positive_sizes
from .prefix_index import child_index, match_prefixes
from .tree import TokenTree

__all__ = ["mixture"]


def mixture(trees: Sequence[TokenTree], sizes: Sequence[float] | None = None) -> TokenTree:
    r"""The joint-training lemma: the size-weighted mixture :math:`p_D = \sum_i |D_i| P_i / \sum_i |D_i|`.

    ``sizes`` default to each tree's ``n_sequences`` (|D_i| in responses); pass token counts
    (``tree.n_tokens``) for the token-size variant. The result's node weights are
    :math:`\sum_i |D_i| \, w_i(u) / W_i` (so its total weight is :math:`\sum_i |D_i|`) and its
    ``n_sequences`` is :math:`\sum_i |D_i|`. For an unrestricted model this mixture is the
    maximum-likelihood estimate on the concatenated data.

    >>> a = TokenTree.from_sequences([[0], [0]], 2)
    >>> b = TokenTree.from_sequences([[1]], 2)
    >>> m = mixture([a, b])
    >>> m.n_sequences, [float(x) for x in m.leaves.prob]
    (3.0, [0.666..., 0.333...])
    """
    trees = list(trees)
    if not trees:
        raise ValueError("mixture needs at least one tree")
    V = trees[0].vocab_size
    if any(t.vocab_size != V for t in trees):
        raise ValueError(f"all trees must share one alphabet; got vocab sizes {[t.vocab_size for t in trees]}")
    s = check_positive_sizes([t.n_sequences for t in trees] if sizes is None else sizes, len(trees))
    first = trees[0]
    parent, token, depth = first.parent, first.token, first.depth
    scale = s[0] / first.total_weight
    weight, eos, cut = first.weight * scale, first.eos_weight * scale, first.cut_weight * scale
    for t, size in zip(trees[1:], s[1:]):
        m = match_prefixes(child_index(parent, token, V), V, t)
        missing = m < 0
        k = int(missing.sum())
        m[missing] = parent.size + np.arange(k)
        parent = np.concatenate([parent, m[t.parent[missing]]])
        token = np.concatenate([token, t.token[missing]])
        depth = np.concatenate([depth, t.depth[missing]])
        weight, eos, cut = (np.concatenate([x, np.zeros(k)]) for x in (weight, eos, cut))
        scale = size / t.total_weight
        weight[m] += t.weight * scale  # m is injective: each node of t lands on its own node
        eos[m] += t.eos_weight * scale
        cut[m] += t.cut_weight * scale
    return TokenTree(parent, token, weight, eos, cut, V, float(s.sum()), depth=depth)
