"""Splitting work between processes by its cost: the plan every process computes alike (scoring's documents, an
experiment's cells under ``--shard I/N``)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

__all__ = ["balanced_shards", "parse_shard"]


def balanced_shards(costs: Sequence[float], n_shards: int) -> list[list[int]]:
    """Indices of each of ``n_shards`` shards, balanced by cost; each shard in index order.

    Longest processing time first: items by decreasing cost (ties: lower index first), each to the shard with the
    least cost so far (ties: the lower shard). The largest shard then exceeds the mean by less than the largest item
    (Graham's bound), and every process computes the same plan from the same costs.

    >>> balanced_shards([5, 1, 4, 2, 3], 2)
    [[0, 1, 3], [2, 4]]
    """
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be an integer >= 1, got {n_shards!r}")
    if any(not math.isfinite(c) or c < 0 for c in costs):
        raise ValueError("costs must be finite and >= 0")
    heap = [(0.0, r) for r in range(n_shards)]
    shards: list[list[int]] = [[] for _ in range(n_shards)]
    for i in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        load, r = heapq.heappop(heap)
        shards[r].append(i)
        heapq.heappush(heap, (load + costs[i], r))
    return [sorted(s) for s in shards]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)`` with 0 <= I < N; ``ValueError`` naming the option otherwise."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--shard {text!r}: expected I/N with whole numbers, e.g. 0/2 and 1/2 for two processes")
    i, n = (int(p) for p in parts)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: needs 0 <= I < N (shards are numbered from 0)")
    return i, n
