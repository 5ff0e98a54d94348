"""Vectorized prefix lookup in a token tree's flat arrays.

A node is found by its key ``parent * V + token``: :func:`child_index` sorts the keys of every node but the root,
:func:`find_children` looks up many ``(parent, token)`` pairs at once by binary search, and
:func:`match_prefixes` finds, level by level, every node of another tree. ``TokenTree.child`` and
``TokenTree.match`` use them, and :func:`~elastic_theory.theory.mixing.mixture` on arrays it grows itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: tree.py imports this module
    from .tree import TokenTree


def child_index(parent: np.ndarray, token: np.ndarray, V: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted child keys ``parent * V + token`` and the node id of each, for vectorized lookup."""
    keys = parent[1:] * V + token[1:]
    order = np.argsort(keys, kind="stable")
    return keys[order], order + 1


def find_children(index: tuple[np.ndarray, np.ndarray], V: int, parents, tokens) -> np.ndarray:
    """Ids of the nodes ``(parents, tokens)`` in an indexed tree; -1 where there is none (or a parent is -1)."""
    keys, ids = index
    parents = np.asarray(parents, dtype=np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    if keys.size == 0:
        return np.full(parents.shape, -1, dtype=np.int64)
    q = parents * V + tokens
    pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    found = (parents >= 0) & (tokens >= 0) & (tokens < V) & (keys[pos] == q)
    return np.where(found, ids[pos], -1)


def match_prefixes(index: tuple[np.ndarray, np.ndarray], V: int, other: TokenTree) -> np.ndarray:
    """Level by level, the id in the indexed tree of each node of ``other`` (-1 where absent)."""
    out = np.full(other.n_nodes, -1, dtype=np.int64)
    out[0] = 0
    order = np.argsort(other.depth, kind="stable")
    bounds = np.searchsorted(other.depth[order], np.arange(other.max_depth + 2))
    for dd in range(1, other.max_depth + 1):
        nodes = order[bounds[dd] : bounds[dd + 1]]
        out[nodes] = find_children(index, V, out[other.parent[nodes]], other.token[nodes])
    return out
