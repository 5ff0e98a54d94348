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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .._validation import (
    check_count,
    check_depth,
    check_finite_nonnegative,
    check_positive_sizes,
    check_vocab_size,
    log_base_factor,
)
from .tolerances import probability_sum_tolerance, sum_tolerance

__all__ = [
    "LeafDistribution",
    "TokenTree",
    "check_support",
    "check_token_range",
    "cross_entropy",
    "kl_divergence",
    "mixture",
    "model_leaf_mass",
    "model_leaf_probs",
    "pad_sequences",
    "split_chunks",
]


def pad_sequences(sequences: Sequence[Sequence[int]] | np.ndarray, lengths=None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(tokens, lengths)``: a padded int64 array (pad value -1) and the row lengths.

    ``sequences`` is either a list of token-id sequences, or a 2-D integer array whose first
    ``lengths[i]`` entries of row ``i`` are the sequence (all of each row when ``lengths`` is None).
    """
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        if sequences.dtype.kind not in "iu":
            raise ValueError(f"a padded token array must have an integer dtype, got {sequences.dtype}")
        n, width = sequences.shape
        if lengths is None:
            lens = np.full(n, width, dtype=np.int64)
        else:
            lens = np.asarray(lengths)
            if lens.shape != (n,) or lens.dtype.kind not in "iu":
                raise ValueError(f"lengths must be {n} integers, one per row, got shape {lens.shape} dtype {lens.dtype}")
            lens = lens.astype(np.int64)
            if (lens < 0).any() or (lens > width).any():
                i = int(np.flatnonzero((lens < 0) | (lens > width))[0])
                raise ValueError(f"lengths[{i}] = {lens[i]} is outside [0, {width}] (the array width)")
        tokens = np.array(sequences, dtype=np.int64, copy=True)
        tokens[np.arange(width)[None, :] >= lens[:, None]] = -1
        return tokens, lens
    if lengths is not None:
        raise ValueError("lengths applies only to a padded 2-D integer array")
    seqs = [np.asarray(s) for s in sequences]
    lens = np.fromiter((s.size for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(lens.max()) if lens.size else 0
    tokens = np.full((len(seqs), width), -1, dtype=np.int64)
    for i, s in enumerate(seqs):
        if s.ndim != 1 or (s.size and s.dtype.kind not in "iu"):
            raise ValueError(f"sequence {i} must be a flat list of integer token ids, got {s.tolist()!r:.80}")
        tokens[i, : s.size] = s
    return tokens, lens


def check_token_range(tokens: np.ndarray, lengths: np.ndarray, vocab_size: int) -> None:
    """Raise ``ValueError`` naming the first token of a padded array outside ``0 .. vocab_size - 1``."""
    valid = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    bad = valid & ((tokens < 0) | (tokens >= vocab_size))
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        raise ValueError(
            f"sequence {i}, position {j}: token {tokens[i, j]} is outside the alphabet 0..{vocab_size - 1}; "
            "raise vocab_size or fix the data"
        )


def split_chunks(tokens: np.ndarray, lengths: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split padded responses into chunks of at most ``depth`` tokens (the coding convention of Thm 3.4).

    Response ``i`` becomes :math:`\\max(1, \\lceil |x_i| / d \\rceil)` chunks, in order: all but the last
    have exactly ``depth`` tokens; the last has the rest (an empty response is one empty chunk).
    Returns ``(chunks, chunk_lengths, is_last, rows)``: a ``(n_chunks, min(depth, width))`` array
    padded with -1 (``width`` = the padded input's width, at least 1: a depth beyond the longest
    response leaves every response whole), each chunk's length, whether it ends its response, and the
    response it came from.
    """
    d = check_depth(depth)
    n_chunks = np.maximum(1, -(-lengths // d))
    rows = np.repeat(np.arange(lengths.size), n_chunks)
    k = np.arange(rows.size) - np.repeat(np.cumsum(n_chunks) - n_chunks, n_chunks)
    start = k * d
    clen = np.minimum(lengths[rows] - start, d)
    is_last = k == n_chunks[rows] - 1
    chunk_width = min(d, max(1, tokens.shape[1]))
    padded = np.full((lengths.size, tokens.shape[1] + chunk_width), -1, dtype=np.int64)
    padded[:, : tokens.shape[1]] = tokens
    chunks = padded[rows[:, None], start[:, None] + np.arange(chunk_width)[None, :]]
    return chunks, clen, is_last, rows


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
        tokens, lens = pad_sequences(sequences, lengths)
        n, width = tokens.shape
        if n == 0:
            raise ValueError("the dataset is empty: a token tree needs at least one sequence")
        check_token_range(tokens, lens, V)
        if counts is not None and weights is not None:
            raise ValueError("give counts or weights, not both")
        if counts is not None:
            c = np.asarray(counts)
            if c.shape != (n,):
                raise ValueError(f"counts needs one entry per sequence ({n}), got shape {c.shape}")
            if c.dtype.kind not in "iu":
                raise ValueError(f"counts must be integers (use weights= for real-valued masses), got dtype {c.dtype}")
            w = check_finite_nonnegative(c, "counts")
            n_seq = float(c.sum())
        elif weights is not None:
            w = check_finite_nonnegative(np.asarray(weights, dtype=np.float64).reshape(-1), "weights")
            if w.shape != (n,):
                raise ValueError(f"weights needs one entry per sequence ({n}), got shape {w.shape}")
            n_seq = float(n)
        else:
            w = np.ones(n)
            n_seq = float(n)
        if not w.sum() > 0:
            raise ValueError("all counts/weights are zero: the dataset has no mass")
        end = np.ones(n, dtype=bool) if ends is None else np.asarray(ends, dtype=bool).reshape(-1)
        if end.shape != (n,):
            raise ValueError(f"ends needs one flag per sequence ({n}), got shape {end.shape}")
        return cls._build(tokens, lens, w, end, V, n_seq)

    @classmethod
    def _build(cls, tokens, lens, w, end, V, n_seq) -> TokenTree:
        n, width = tokens.shape
        # Sort rows lexicographically (token + 1, pad 0: a prefix sorts before its extensions).
        bits = int(V).bit_length()
        per_key = max(1, 64 // bits)
        keys = []
        for start in range(0, width, per_key):
            key = np.zeros(n, dtype=np.uint64)
            for j in range(start, min(start + per_key, width)):
                key <<= np.uint64(bits)
                key |= (tokens[:, j] + 1).astype(np.uint64)
            keys.append(key)
        order = _sort_by_keys(keys) if keys else np.arange(n)
        del keys
        tok = tokens[order]
        lens, w, end = lens[order], w[order], end[order]
        # Longest common prefix with the previous row decides where new nodes start.
        lcp = np.zeros(n, dtype=np.int64)
        if width and n > 1:
            eq = tok[1:] == tok[:-1]
            lcp[1:] = np.where(eq.all(axis=1), width, eq.argmin(axis=1))
            del eq
        col = np.arange(1, width + 1)
        new = (col[None, :] > lcp[:, None]) & (col[None, :] <= lens[:, None])  # row r opens a node at column c
        # Node ids number the new cells in row-major order, a preorder walk; int32 halves the n x width matrix.
        idx_dtype = np.int32 if n * width < 2**31 - 1 else np.int64
        idmat = np.cumsum(new.ravel(), dtype=idx_dtype).reshape(n, width)
        n_nodes = int(idmat[-1, -1]) + 1 if width else 1
        idmat *= new
        np.maximum.accumulate(idmat, axis=0, out=idmat)  # rows sharing a prefix share its id
        flat = np.flatnonzero(new)  # flat cell index of each node but the root, in id order
        del new
        idflat = idmat.ravel()
        # Fill the node arrays in place: at 10^6 x 32 every n_nodes-sized temporary costs ~0.2 GB.
        parent = np.empty(n_nodes, dtype=np.int64)
        token = np.empty(n_nodes, dtype=np.int64)
        depth = np.empty(n_nodes, dtype=np.int64)
        parent[0], token[0], depth[0] = -1, -1, 0
        np.take(tok.ravel(), flat, out=token[1:])
        del tok
        if width:
            np.remainder(flat, width, out=depth[1:])  # column of each node
        flat -= 1
        parent[1:] = idflat[flat]  # the cell to the left (meaningless in column 0, fixed next line)
        parent[1:][depth[1:] == 0] = 0  # column-0 nodes hang from the root
        depth[1:] += 1
        del flat
        # The node opened at (row r, column c) holds rows r .. (next row whose lcp <= c) - 1: one
        # reduceat per column sums them in row order (exact for integer counts).
        weight = np.zeros(n_nodes)
        weight[0] = w.sum()
        for c in range(width):
            starts = np.flatnonzero(lcp <= c)
            sums = np.add.reduceat(w, starts)
            reach = lens[starts] > c
            weight[idmat[starts[reach], c]] = sums[reach]
        # Each row's deepest node; the root for an empty response (and for an all-empty dataset, width 0).
        last = np.where(lens > 0, idflat[np.arange(n) * width + np.maximum(lens - 1, 0)], 0) if width else np.zeros(n, np.int64)
        eos = np.bincount(last, weights=w * end, minlength=n_nodes)
        cut = np.bincount(last, weights=w * ~end, minlength=n_nodes)
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
        parent, token, weight_l, eos_l, prefixes = [-1], [-1], [1.0], [0.0], [()]
        frontier = [0]
        # Levels 0..d-1 expand children; level d is queried only for the EOS probability.
        last_level = d if eos_token is not None else d - 1
        for level in range(last_level + 1):
            next_frontier = []
            for b in range(0, len(frontier), batch_size):
                ids = frontier[b : b + batch_size]
                probs = np.asarray(next_token_probs([prefixes[i] for i in ids]))
                if probs.shape != (len(ids), V):
                    raise ValueError(f"next_token_probs returned shape {probs.shape}, expected {(len(ids), V)}")
                tol = probability_sum_tolerance(V, probs.dtype if probs.dtype.kind == "f" else np.float64)
                probs = probs.astype(np.float64)
                check_finite_nonnegative(probs, "next-token probabilities")
                sums = probs.sum(axis=1)
                if (np.abs(sums - 1.0) > tol).any():
                    r = int(np.flatnonzero(np.abs(sums - 1.0) > tol)[0])
                    raise ValueError(
                        f"next-token probabilities after prefix {prefixes[ids[r]]} sum to {sums[r]!r}, "
                        f"not 1 within {tol:.2e}; pass a normalized distribution (softmax of the logits)"
                    )
                keep = probs[:, child_tokens]
                p_eos = probs[:, eos_token] if eos_token is not None else np.zeros(len(ids))
                z = keep.sum(axis=1) + p_eos if candidates is not None else np.ones(len(ids))
                if (z <= 0).any():
                    r = int(np.flatnonzero(z <= 0)[0])
                    raise ValueError(f"the model gives zero mass to every candidate after prefix {prefixes[ids[r]]}")
                for r, u in enumerate(ids):
                    wu = weight_l[u]
                    eos_l[u] = wu * p_eos[r] / z[r]
                    if level == d:
                        continue
                    child_w = wu * keep[r] / z[r]
                    for t, cw in zip(child_tokens, child_w):
                        if cw > 0:
                            parent.append(u)
                            token.append(int(t))
                            weight_l.append(float(cw))
                            eos_l.append(0.0)
                            prefixes.append(prefixes[u] + (int(t),))
                            if cw > min_prob:
                                next_frontier.append(len(parent) - 1)
                    if len(parent) > max_nodes:
                        raise ValueError(
                            f"the enumeration passed max_nodes={max_nodes}; lower depth, restrict candidates or raise min_prob"
                        )
            frontier = next_frontier
        weight = np.array(weight_l)
        eos = np.array(eos_l)
        par = np.array(parent, dtype=np.int64)
        children = np.bincount(par[1:], weights=weight[1:], minlength=weight.size)
        # Clip the rounding residue (a few ulps) so the continuation mass is never negative.
        cut = np.maximum(weight - eos - children, 0.0)
        weight = eos + cut + children
        weight[0] = 1.0
        return cls(par, np.array(token, dtype=np.int64), weight, eos, cut, V, 1.0)

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
        return _prefix_index(self.parent, self.token, self.vocab_size)

    def child(self, parents: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Ids of the children ``(parent, token)``; -1 where there is none (or parent is -1)."""
        return _lookup(self._child_index, self.vocab_size, parents, tokens)

    def match(self, other: TokenTree) -> np.ndarray:
        """For each node of ``other``, the id of the node of ``self`` with the same prefix, or -1."""
        return _match(self._child_index, self.vocab_size, other)

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


# ---------------------------------------------------------------------- several trees
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
        m = _match(_prefix_index(parent, token, V), V, t)
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


def _sort_by_keys(keys: list[np.ndarray]) -> np.ndarray:
    """The stable order sorting by ``keys[0]``, ties by ``keys[1]``, ...: ``np.lexsort(keys[::-1])``.

    Sorts by the first key, then re-sorts only the runs still tied, key by key; random or diverse
    data is settled by the first key, so the later keys cost almost nothing.
    """
    order = np.argsort(keys[0], kind="stable")
    ks = keys[0][order]
    tied = ks[1:] == ks[:-1]  # sorted rows i and i+1 agree on every key so far
    for key in keys[1:]:
        if not tied.any():
            break
        run = np.concatenate([[0], np.cumsum(~tied)])  # run id of each sorted position
        in_run = np.zeros(order.size, dtype=bool)
        in_run[1:] |= tied
        in_run[:-1] |= tied
        pos = np.flatnonzero(in_run)
        order[pos] = order[pos][np.lexsort((key[order[pos]], run[pos]))]
        ks = key[order]
        tied &= ks[1:] == ks[:-1]
    return order


def _prefix_index(parent: np.ndarray, token: np.ndarray, V: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted child keys ``parent * V + token`` and the node id of each, for vectorized lookup."""
    keys = parent[1:] * V + token[1:]
    order = np.argsort(keys, kind="stable")
    return keys[order], order + 1


def _lookup(index: tuple[np.ndarray, np.ndarray], V: int, parents, tokens) -> np.ndarray:
    keys, ids = index
    parents = np.asarray(parents, dtype=np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    if keys.size == 0:
        return np.full(parents.shape, -1, dtype=np.int64)
    q = parents * V + tokens
    pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    found = (parents >= 0) & (tokens >= 0) & (tokens < V) & (keys[pos] == q)
    return np.where(found, ids[pos], -1)


def _match(index: tuple[np.ndarray, np.ndarray], V: int, other: TokenTree) -> np.ndarray:
    """Level by level, the id in the indexed tree of each node of ``other`` (-1 where absent)."""
    out = np.full(other.n_nodes, -1, dtype=np.int64)
    out[0] = 0
    order = np.argsort(other.depth, kind="stable")
    bounds = np.searchsorted(other.depth[order], np.arange(other.max_depth + 2))
    for dd in range(1, other.max_depth + 1):
        nodes = order[bounds[dd] : bounds[dd + 1]]
        out[nodes] = _lookup(index, V, out[other.parent[nodes]], other.token[nodes])
    return out


def model_leaf_probs(*, data: TokenTree, model: TokenTree) -> tuple[LeafDistribution, np.ndarray]:
    r"""``(leaves, q)``: the data's leaves and the model's probability :math:`q` of each (0 where it has none).

    A data EOS leaf at prefix :math:`u` gets the model's EOS mass at :math:`u`; a data cut leaf, the
    model's mass of continuing past :math:`u`; both over the model's total weight. The pairing that
    :func:`cross_entropy`, :func:`kl_divergence` and the perturbation model of
    :mod:`elastic_theory.theory.elasticity` all evaluate.
    """
    lv, mass = model_leaf_mass(data=data, model=model)
    return lv, mass / model.total_weight


def model_leaf_mass(*, data: TokenTree, model: TokenTree) -> tuple[LeafDistribution, np.ndarray]:
    """``(leaves, mass)``: as :func:`model_leaf_probs`, but the model's stored mass of each data leaf (not divided
    by its total weight), for callers that normalize in higher precision."""
    if data.vocab_size != model.vocab_size:
        raise ValueError(f"data and model trees use different alphabets ({data.vocab_size} vs {model.vocab_size})")
    if model.is_pruned and data.max_depth > model.max_depth:
        raise ValueError(
            f"the model tree is pruned at depth {model.max_depth} but the data reaches depth {data.max_depth}; "
            "prune the data tree to the model's depth first"
        )
    lv = data.leaves
    m = model.match(data)[lv.node]
    ok = m >= 0
    mm = np.maximum(m, 0)
    eos_q = model.eos_weight[mm]
    cont_q = np.maximum(model.weight[mm] - model.eos_weight[mm], 0.0)
    return lv, np.where(ok, np.where(lv.is_eos, eos_q, cont_q), 0.0)


def check_support(data: TokenTree, lv: LeafDistribution, q: np.ndarray, on_zero: str = "raise") -> float | None:
    """``None`` when every data leaf has model probability ``q > 0``; else ``math.inf`` (``on_zero="inf"``)
    or a ``ValueError`` naming the first uncovered leaf (``on_zero="raise"``)."""
    if on_zero not in ("raise", "inf"):
        raise ValueError(f"on_zero must be 'raise' or 'inf', got {on_zero!r}")
    zero = q <= 0
    if not zero.any():
        return None
    if on_zero == "inf":
        return math.inf
    i = int(np.flatnonzero(zero)[0])
    kind = "EOS" if lv.is_eos[i] else "cut"
    raise ValueError(
        f"the model gives probability 0 to the data's {kind} leaf {data.sequence(lv.node[i])} "
        f"(data probability {lv.prob[i]:.3g}; {int(zero.sum())} such leaves): the cross-entropy is infinite. "
        "Smooth the model, or pass on_zero='inf' to get math.inf."
    )


def cross_entropy(*, data: TokenTree, model: TokenTree, base: float = 2.0, on_zero: str = "raise") -> float:
    r""":math:`CE(P, p) = -\sum_{\text{leaves } x \text{ of } P} P(x) \log p(x)`, per response (bits by default).

    The model's probability of a data EOS leaf at prefix :math:`u` is its EOS mass at :math:`u`;
    of a data cut leaf, its mass of continuing past :math:`u`. Both trees are normalized by their
    total weight. When the model gives probability 0 to a leaf the data has, the cross-entropy is
    infinite: ``on_zero="raise"`` (default) raises a ``ValueError`` naming the leaf,
    ``on_zero="inf"`` returns ``math.inf``.
    """
    lv, q = model_leaf_probs(data=data, model=model)
    z = check_support(data, lv, q, on_zero)
    if z is not None:
        return z
    return float((0.0 - (lv.prob * np.log(q)).sum()) * log_base_factor(base))  # 0.0 - sum: never -0.0


def kl_divergence(*, data: TokenTree, model: TokenTree, base: float = 2.0, on_zero: str = "raise") -> float:
    r""":math:`KL(P \| p) = \sum_x P(x) \log (P(x)/p(x)) = CE(P, p) - H(P) \ge 0`, per response.

    Summed term by term (not as CE - H) to avoid cancellation; same zero-support rule as
    :func:`cross_entropy`.
    """
    lv, q = model_leaf_probs(data=data, model=model)
    z = check_support(data, lv, q, on_zero)
    if z is not None:
        return z
    return float((lv.prob * np.log(lv.prob / q)).sum() * log_base_factor(base))
