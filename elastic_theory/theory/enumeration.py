r"""Enumerating a model's depth-:math:`d` token tree from its next-token distribution.

:meth:`TokenTree.from_next_token_fn <elastic_theory.theory.tree.TokenTree.from_next_token_fn>` (whose docstring
states the conventions) builds its node arrays with :func:`enumerate_model_tree`: level by level, the frontier's
prefixes go to the model in batches, each returned distribution is checked, and every token with positive
probability becomes a child whose weight is its prefix probability :math:`\prod_s p(x_s \mid x_{<s})`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_count, check_depth, check_finite_nonnegative, check_vocab_size
from .tolerances import probability_sum_tolerance


def enumerate_model_tree(
    next_token_probs: Callable[[list[tuple[int, ...]]], np.ndarray],
    vocab_size: int,
    depth: int,
    *,
    eos_token: int | None,
    candidates: Sequence[int] | None,
    min_prob: float,
    max_nodes: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(parent, token, weight, eos_weight, cut_weight)``: the node arrays of the model's tree, root weight 1.

    The arguments, and their defaults, are those of
    :meth:`TokenTree.from_next_token_fn <elastic_theory.theory.tree.TokenTree.from_next_token_fn>`.
    """
    V = check_vocab_size(vocab_size)
    d = check_depth(depth)
    if eos_token is not None and not 0 <= eos_token < V:
        raise ValueError(f"eos_token {eos_token} is outside the alphabet 0..{V - 1}")
    if not (0.0 <= min_prob < 1.0):
        raise ValueError(f"min_prob must be in [0, 1), got {min_prob!r}")
    max_nodes, batch_size = check_count(max_nodes, "max_nodes", 1), check_count(batch_size, "batch_size", 1)
    cand = np.arange(V) if candidates is None else np.unique(np.asarray(candidates, dtype=np.int64))
    if cand.size == 0 or cand.min() < 0 or cand.max() >= V:
        raise ValueError(f"candidates must be non-empty token ids in 0..{V - 1}")
    child_tokens = cand[cand != eos_token] if eos_token is not None else cand
    nodes = _GrowingTree()
    frontier = [0]
    # Levels 0..d-1 expand children; level d is queried only for the EOS probability.
    last_level = d if eos_token is not None else d - 1
    for level in range(last_level + 1):
        next_frontier = []
        for b in range(0, len(frontier), batch_size):
            ids = frontier[b : b + batch_size]
            prefixes = [nodes.prefixes[i] for i in ids]
            probs = _checked_probs(next_token_probs(prefixes), prefixes, V)
            keep, p_eos, z = _candidate_mass(probs, child_tokens, eos_token, candidates is not None, prefixes)
            for r, u in enumerate(ids):
                wu = nodes.weight[u]
                nodes.eos[u] = wu * p_eos[r] / z[r]
                if level == d:
                    continue
                next_frontier += nodes.add_children(u, child_tokens, wu * keep[r] / z[r], min_prob)
                if len(nodes.parent) > max_nodes:
                    raise ValueError(
                        f"the enumeration passed max_nodes={max_nodes}; lower depth, restrict candidates or raise min_prob"
                    )
        frontier = next_frontier
    return nodes.arrays()


def _checked_probs(returned, prefixes: list[tuple[int, ...]], V: int) -> np.ndarray:
    """The model's answer for ``prefixes`` as float64, or a ``ValueError``: wrong shape, a negative or
    non-finite entry, or a row that does not sum to 1 within the tolerance of its dtype."""
    probs = np.asarray(returned)
    if probs.shape != (len(prefixes), V):
        raise ValueError(f"next_token_probs returned shape {probs.shape}, expected {(len(prefixes), V)}")
    tol = probability_sum_tolerance(V, probs.dtype if probs.dtype.kind == "f" else np.float64)
    probs = probs.astype(np.float64)
    check_finite_nonnegative(probs, "next-token probabilities")
    sums = probs.sum(axis=1)
    if (np.abs(sums - 1.0) > tol).any():
        r = int(np.flatnonzero(np.abs(sums - 1.0) > tol)[0])
        raise ValueError(
            f"next-token probabilities after prefix {prefixes[r]} sum to {sums[r]!r}, "
            f"not 1 within {tol:.2e}; pass a normalized distribution (softmax of the logits)"
        )
    return probs


def _candidate_mass(
    probs: np.ndarray, child_tokens: np.ndarray, eos_token: int | None, renormalize: bool, prefixes: list[tuple[int, ...]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keep, p_eos, z)`` per row: the child tokens' probabilities, the EOS probability (0 without an EOS token)
    and the normalizer (their total when ``renormalize``, that is over a candidate set; else 1)."""
    keep = probs[:, child_tokens]
    p_eos = probs[:, eos_token] if eos_token is not None else np.zeros(len(prefixes))
    z = keep.sum(axis=1) + p_eos if renormalize else np.ones(len(prefixes))
    if (z <= 0).any():
        r = int(np.flatnonzero(z <= 0)[0])
        raise ValueError(f"the model gives zero mass to every candidate after prefix {prefixes[r]}")
    return keep, p_eos, z


@dataclass
class _GrowingTree:
    """The tree enumerated so far, one Python list per node field (the root alone to start)."""

    parent: list[int] = field(default_factory=lambda: [-1])
    token: list[int] = field(default_factory=lambda: [-1])
    weight: list[float] = field(default_factory=lambda: [1.0])
    eos: list[float] = field(default_factory=lambda: [0.0])
    prefixes: list[tuple[int, ...]] = field(default_factory=lambda: [()])

    def add_children(self, u: int, child_tokens: np.ndarray, child_w: np.ndarray, min_prob: float) -> list[int]:
        """Add a child of node ``u`` for each token of positive weight; return the ids of those above ``min_prob``
        (the ones to expand at the next level)."""
        expand = []
        for t, cw in zip(child_tokens, child_w):
            if cw > 0:
                self.parent.append(u)
                self.token.append(int(t))
                self.weight.append(float(cw))
                self.eos.append(0.0)
                self.prefixes.append(self.prefixes[u] + (int(t),))
                if cw > min_prob:
                    expand.append(len(self.parent) - 1)
        return expand

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(parent, token, weight, eos_weight, cut_weight)``: each node's continuation mass becomes its cut leaf."""
        weight = np.array(self.weight)
        eos = np.array(self.eos)
        par = np.array(self.parent, dtype=np.int64)
        children = np.bincount(par[1:], weights=weight[1:], minlength=weight.size)
        # Clip the rounding residue (a few ulps) so the continuation mass is never negative.
        cut = np.maximum(weight - eos - children, 0.0)
        weight = eos + cut + children
        weight[0] = 1.0
        return par, np.array(self.token, dtype=np.int64), weight, eos, cut
