r"""Token trees (Ji et al. 2025, Def. 3.1) as flat numpy arrays.

A dataset :math:`D` of responses over an alphabet of :math:`V` tokens defines a prefix tree
:math:`T_D`. Node :math:`u` stands for a prefix; it carries

* ``weight[u]``: the total mass of responses that start with that prefix,
* ``eos_weight[u]``: the mass of responses that *end* exactly there (the EOS leaf below ``u``),
* ``cut_weight[u]``: in a pruned tree, the mass of responses that go on past ``u`` but were cut
  off at the pruning depth (a "cut" leaf; zero everywhere in an unpruned tree).

so that ``weight[u] = eos_weight[u] + cut_weight[u] + sum(weight[children of u])``. The leaves of
the tree are the EOS leaves and the cut leaves; their masses sum to the root's weight, and
divided by it they are the leaf distribution whose entropy the paper's coding theorem uses.

Nodes are stored in arrays ``parent``, ``token``, ``depth`` (node 0 is the root, with
``parent = token = -1``), never one Python object per node, so a million sequences fit.
Every parent id is smaller than its children's ids.

Conventions (THEORY §1, decisions documented in ``docs/token_tree.md``):

* |D| counts responses: ``n_sequences`` is the number of rows, or the sum of integer counts.
  A token-count size is :attr:`TokenTree.n_tokens`; mixtures take sizes explicitly.
* Pruning to depth ``d`` keeps the top ``d`` layers; a depth-``d`` prefix that goes on becomes a
  cut leaf carrying its subtree's mass, so leaf masses still sum to the total.
* For coding, a response longer than ``d`` is split into ``max(1, ceil(|x|/d))`` chunks of at
  most ``d`` tokens (:meth:`TokenTree.chunked`); every chunk but the last is a cut leaf, the
  last one an EOS leaf, so a chunk sequence decodes unambiguously.

Beside this module: :mod:`~elastic_theory.theory.sequences` and :mod:`~elastic_theory.theory.enumeration` build
the node arrays (of a dataset, of a model), :mod:`~elastic_theory.theory.prefix_index` finds nodes by prefix,
:mod:`~elastic_theory.theory.mixing` mixes trees (the joint-training lemma) and
:mod:`~elastic_theory.theory.divergence` compares a data tree with a model tree (cross-entropy, KL).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .._validation import check_depth, check_finite_nonnegative, check_vocab_size, log_base_factor
from .enumeration import enumerate_model_tree
from .prefix_index import child_index, find_children, match_prefixes
from .sequences import dataset_rows, prefix_tree_arrays, split_chunks
from .tolerances import sum_tolerance

__all__ = ["LeafDistribution", "TokenTree"]


@dataclass(frozen=True)
class LeafDistribution:
    """The leaves of a token tree: ``node`` ids, ``is_eos`` (False for a cut leaf) and ``prob``."""

    node: np.ndarray
    is_eos: np.ndarray
    prob: np.ndarray


class TokenTree:
    """A weighted prefix tree over tokens ``0 .. vocab_size-1``; see the module docstring.

    Build one with :meth:`from_sequences` (a dataset) or :meth:`from_next_token_fn` (a model);
    the constructor takes the raw arrays and checks their consistency.
    """

    def __init__(
        self,
        parent: np.ndarray,
        token: np.ndarray,
        weight: np.ndarray,
        eos_weight: np.ndarray,
        cut_weight: np.ndarray,
        vocab_size: int,
        n_sequences: float,
        depth: np.ndarray | None = None,
    ):
        self.vocab_size = check_vocab_size(vocab_size)
        parent = np.asarray(parent, dtype=np.int64)
        token = np.asarray(token, dtype=np.int64)
        n = parent.shape[0]
        if n < 1 or parent[0] != -1 or token[0] != -1:
            raise ValueError("node 0 must be the root, with parent -1 and token -1")
        if n > 1:
            ids = np.arange(1, n)
            if (parent[1:] < 0).any() or (parent[1:] >= ids).any():
                raise ValueError("every non-root node needs a parent with a smaller id")
            if (token[1:] < 0).any() or (token[1:] >= self.vocab_size).any():
                bad = int(np.flatnonzero((token[1:] < 0) | (token[1:] >= self.vocab_size))[0]) + 1
                raise ValueError(f"node {bad} has token {token[bad]}, outside the alphabet 0..{self.vocab_size - 1}")
        if depth is None:
            depth = np.zeros(n, dtype=np.int64)
            for i in range(1, n):  # parents precede children
                depth[i] = depth[parent[i]] + 1
        depth = np.asarray(depth, dtype=np.int64)
        weight = check_finite_nonnegative(weight, "node weights")
        eos_weight = check_finite_nonnegative(eos_weight, "EOS weights")
        cut_weight = check_finite_nonnegative(cut_weight, "cut weights")
        for arr, name in ((token, "token"), (depth, "depth"), (weight, "weight"), (eos_weight, "eos_weight"), (cut_weight, "cut_weight")):
            if arr.shape != (n,):
                raise ValueError(f"{name} must have one entry per node ({n}), got shape {arr.shape}")
        if not weight[0] > 0:
            raise ValueError("the tree has zero total weight: an empty dataset has no distribution")
        # |weight - EOS - cut - children| in place: at 3e7 nodes every temporary costs 0.24 GB.
        balance = np.bincount(parent[1:], weights=weight[1:], minlength=n).astype(np.float64, copy=False)  # int64 when n == 1
        np.subtract(weight, balance, out=balance)
        balance -= eos_weight
        balance -= cut_weight
        np.abs(balance, out=balance)
        # Each weight is a sum of at most n_nodes float terms, each a few roundings from exact.
        balance -= sum_tolerance(n) * weight
        if (balance > 1e-300).any():
            i = int(np.flatnonzero(balance > 1e-300)[0])
            children = float(weight[1:][parent[1:] == i].sum())
            raise ValueError(
                f"node {i}: weight {weight[i]!r} != EOS {eos_weight[i]!r} + cut {cut_weight[i]!r} + children {children!r}"
            )
        self.parent, self.token, self.depth = parent, token, depth
        self.weight, self.eos_weight, self.cut_weight = weight, eos_weight, cut_weight
        for arr in (self.parent, self.token, self.depth, self.weight, self.eos_weight, self.cut_weight):
            arr.setflags(write=False)
        self.n_sequences = float(n_sequences)
        if not (self.n_sequences > 0 and math.isfinite(self.n_sequences)):
            raise ValueError(f"n_sequences must be finite and > 0, got {n_sequences!r}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_sequences(
        cls,
        sequences: Sequence[Sequence[int]] | np.ndarray,
        vocab_size: int,
        *,
        lengths: np.ndarray | None = None,
        counts: np.ndarray | Sequence[int] | None = None,
        weights: np.ndarray | Sequence[float] | None = None,
        ends: np.ndarray | Sequence[bool] | None = None,
    ) -> TokenTree:
        """Build the token tree of a dataset.

        ``sequences``: a list of token-id lists, or a padded 2-D integer array with ``lengths``.
        ``counts`` (integers) or ``weights`` (non-negative floats) give each row's multiplicity;
        at most one of them. ``ends[i] = False`` marks row ``i`` as cut off (its mass becomes a cut
        leaf instead of an EOS leaf); used for chunks and pruned data.

        ``n_sequences`` is the number of rows, or the sum of ``counts``.

        >>> t = TokenTree.from_sequences([[0], [0, 1], [1]], vocab_size=2)
        >>> t.n_nodes, t.n_leaves, round(t.entropy(), 6)
        (4, 3, 1.584963)
        """
        V = check_vocab_size(vocab_size)
        tokens, lens, w, end, n_seq = dataset_rows(sequences, V, lengths=lengths, counts=counts, weights=weights, ends=ends)
        parent, token, depth, weight, eos, cut = prefix_tree_arrays(tokens, lens, w, end, V)
        return cls(parent, token, weight, eos, cut, V, n_seq, depth=depth)

    @classmethod
    def from_next_token_fn(
        cls,
        next_token_probs: Callable[[list[tuple[int, ...]]], np.ndarray],
        vocab_size: int,
        depth: int,
        *,
        eos_token: int | None = None,
        candidates: Sequence[int] | None = None,
        min_prob: float = 0.0,
        max_nodes: int = 10_000_000,
        batch_size: int = 256,
    ) -> TokenTree:
        r"""Enumerate the depth-``depth`` token tree of a model.

        ``next_token_probs(prefixes)`` gets a list of prefixes (tuples of token ids, the empty
        tuple for the root) and returns an array of shape ``(len(prefixes), vocab_size)``: the
        model's next-token distribution after each prefix. Each row must sum to 1 within
        :func:`~elastic_theory.theory.tolerances.probability_sum_tolerance` of its dtype.

        ``eos_token``: the id whose probability ends the response (an EOS leaf); it never becomes
        a child. With ``candidates``, only those tokens (and ``eos_token``) are expanded and the
        distribution is renormalized over them: the tree is the model *conditioned on* staying in
        the candidate set. Nodes whose prefix probability is <= ``min_prob`` are not expanded
        (their mass stays as a cut leaf, so leaf masses still sum to 1). Nodes at ``depth`` are
        queried once more for their EOS probability (when ``eos_token`` is given) and carry the
        rest, their continuation mass, as a cut leaf: the tree is the model pruned to ``depth``. Node weights are prefix probabilities:
        :math:`w(x_{1:t}) = \prod_s p(x_s \mid x_{<s})`.

        ``batch_size`` prefixes go to ``next_token_probs`` per call; the enumeration raises
        ``ValueError`` once the tree has more than ``max_nodes`` nodes (both integers >= 1).
        """
        parent, token, weight, eos, cut = enumerate_model_tree(
            next_token_probs, vocab_size, depth, eos_token=eos_token, candidates=candidates, min_prob=min_prob,
            max_nodes=max_nodes, batch_size=batch_size,
        )
        return cls(parent, token, weight, eos, cut, vocab_size, 1.0)

    # ------------------------------------------------------------------ basic properties
    @property
    def n_nodes(self) -> int:
        """Number of nodes, the root included (EOS and cut leaves are not nodes)."""
        return int(self.parent.shape[0])

    @property
    def total_weight(self) -> float:
        """The root's weight: total mass of the dataset."""
        return float(self.weight[0])

    @property
    def max_depth(self) -> int:
        """Length of the longest prefix stored."""
        return int(self.depth.max())

    @property
    def is_pruned(self) -> bool:
        """True when some mass sits in cut leaves (the tree was pruned or built from cut rows)."""
        return bool((self.cut_weight > 0).any())

    @cached_property
    def leaves(self) -> LeafDistribution:
        """EOS leaves (in node order) then cut leaves, with their probabilities (mass / total)."""
        eos_nodes = np.flatnonzero(self.eos_weight > 0)
        cut_nodes = np.flatnonzero(self.cut_weight > 0)
        node = np.concatenate([eos_nodes, cut_nodes])
        is_eos = np.concatenate([np.ones(eos_nodes.size, bool), np.zeros(cut_nodes.size, bool)])
        mass = np.concatenate([self.eos_weight[eos_nodes], self.cut_weight[cut_nodes]])
        return LeafDistribution(node, is_eos, mass / mass.sum())

    @property
    def n_leaves(self) -> int:
        """M: the number of leaves with positive mass (the symbols of the compression protocol)."""
        return int(self.leaves.node.size)

    def entropy(self, base: float = 2.0) -> float:
        r"""Leaf entropy :math:`H = -\sum_{\text{leaves}} p \log p` (bits per response by default).

        For a tree pruned to depth d this is the paper's :math:`H_d`.
        """
        p = self.leaves.prob
        # 0.0 - sum, not -sum: a single leaf (p = 1) gives +0.0, not -0.0
        if base == 2:  # log2 directly: exact for dyadic probabilities (1/2, 1/4, 1/4 gives exactly 1.5)
            return float(0.0 - (p * np.log2(p)).sum())
        return float((0.0 - (p * np.log(p)).sum()) * log_base_factor(base))

    @property
    def mean_length(self) -> float:
        r""":math:`E[|x|]`, the mean number of tokens per leaf (cut leaves count their depth)."""
        lv = self.leaves
        return float((lv.prob * self.depth[lv.node]).sum())

    @property
    def n_tokens(self) -> float:
        """Token count of the dataset: ``n_sequences * mean_length`` (the token-size variant of |D|)."""
        return self.n_sequences * self.mean_length

    # ------------------------------------------------------------------ paths and lookup
    def sequence(self, node: int) -> tuple[int, ...]:
        """The prefix (token ids from the root) that node ``node`` stands for."""
        out = []
        u = int(node)
        while u > 0:
            out.append(int(self.token[u]))
            u = int(self.parent[u])
        return tuple(reversed(out))

    def paths(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens, lengths)``: the prefixes of ``nodes`` as a padded array (pad -1)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        lens = self.depth[nodes]
        width = int(lens.max()) if nodes.size else 0
        out = np.full((nodes.size, width), -1, dtype=np.int64)
        cur = nodes.copy()
        for pos in range(width - 1, -1, -1):
            active = lens > pos
            out[active, pos] = self.token[cur[active]]
            cur[active] = self.parent[cur[active]]
        return out, lens

    @cached_property
    def _child_index(self) -> tuple[np.ndarray, np.ndarray]:
        return child_index(self.parent, self.token, self.vocab_size)

    def child(self, parents: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Ids of the children ``(parent, token)``; -1 where there is none (or parent is -1)."""
        return find_children(self._child_index, self.vocab_size, parents, tokens)

    def match(self, other: TokenTree) -> np.ndarray:
        """For each node of ``other``, the id of the node of ``self`` with the same prefix, or -1."""
        return match_prefixes(self._child_index, self.vocab_size, other)

    # ------------------------------------------------------------------ transformations
    def prune(self, depth: int) -> TokenTree:
        """Keep the top ``depth`` layers; a depth-``depth`` prefix that goes on becomes a cut leaf."""
        d = check_depth(depth)
        keep = self.depth <= d
        new_id = np.cumsum(keep) - 1
        at_d = self.depth == d
        cut = np.where(at_d, self.weight - self.eos_weight, self.cut_weight)
        parent = np.where(self.parent[keep] >= 0, new_id[np.maximum(self.parent[keep], 0)], -1)
        return TokenTree(
            parent, self.token[keep], self.weight[keep], self.eos_weight[keep], np.maximum(cut[keep], 0.0),
            self.vocab_size, self.n_sequences, depth=self.depth[keep],
        )

    def responses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tokens, lengths, mass)``: each EOS leaf's full response, padded with -1, and its mass."""
        if self.is_pruned:
            raise ValueError("a pruned tree no longer knows its full responses; use the unpruned tree")
        nodes = np.flatnonzero(self.eos_weight > 0)
        tokens, lens = self.paths(nodes)
        return tokens, lens, self.eos_weight[nodes]

    def chunked(self, depth: int) -> TokenTree:
        """The tree of chunks: each response split into ``max(1, ceil(|x|/depth))`` chunks.

        Every chunk but the last is a cut leaf at depth ``depth``; the last is an EOS leaf. Each chunk
        carries its response's mass, so the root weight is ``E[#chunks] * total_weight`` and
        ``n_sequences`` is the (weighted) number of chunks.
        """
        tokens, lens, mass = self.responses()
        chunks, clen, is_last, rows = split_chunks(tokens, lens, depth)
        w = mass[rows] * (self.n_sequences / self.total_weight)
        return TokenTree.from_sequences(chunks, self.vocab_size, lengths=clen, weights=w, ends=is_last)._with_size(
            float(w.sum())
        )

    def mean_chunks(self, depth: int) -> float:
        r""":math:`E[\max(1, \lceil |x|/d \rceil)]` over responses (the chunk count of Thm 3.4)."""
        d = check_depth(depth)
        if self.is_pruned:
            raise ValueError("a pruned tree no longer knows response lengths; use the unpruned tree")
        nodes = np.flatnonzero(self.eos_weight > 0)
        mass = self.eos_weight[nodes]
        # divide once at the end: exact for integer counts whenever the mean is a binary fraction
        return float((mass * np.maximum(1, -(-self.depth[nodes] // d))).sum() / mass.sum())

    def relabel(self, permutation: Sequence[int] | np.ndarray) -> TokenTree:
        """The same tree with token ``t`` renamed ``permutation[t]`` (a bijection of the alphabet)."""
        perm = np.asarray(permutation, dtype=np.int64)
        if perm.shape != (self.vocab_size,) or not np.array_equal(np.sort(perm), np.arange(self.vocab_size)):
            raise ValueError(f"permutation must reorder 0..{self.vocab_size - 1} exactly once each")
        token = self.token.copy()
        token[1:] = perm[token[1:]]
        return TokenTree(
            self.parent, token, self.weight, self.eos_weight, self.cut_weight, self.vocab_size, self.n_sequences,
            depth=self.depth,
        )

    def _with_size(self, n_sequences: float) -> TokenTree:
        return TokenTree(
            self.parent, self.token, self.weight, self.eos_weight, self.cut_weight, self.vocab_size, n_sequences,
            depth=self.depth,
        )

    def __repr__(self) -> str:
        return (
            f"TokenTree(vocab_size={self.vocab_size}, n_sequences={self.n_sequences:g}, n_nodes={self.n_nodes}, "
            f"n_leaves={self.n_leaves}, max_depth={self.max_depth}, pruned={self.is_pruned})"
        )
