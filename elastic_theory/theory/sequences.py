"""Padded token sequences, and the prefix-tree arrays of a dataset of them.

:meth:`TokenTree.from_sequences <elastic_theory.theory.tree.TokenTree.from_sequences>` checks a dataset with
:func:`dataset_rows` and builds its node arrays with :func:`prefix_tree_arrays`, all vectorized: one sort of the
rows, then one pass per column. :func:`pad_sequences`, :func:`check_token_range` and :func:`split_chunks` are the
row-level helpers the coding protocol (:mod:`elastic_theory.theory.coding`) shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_depth, check_finite_nonnegative

__all__ = ["check_token_range", "pad_sequences", "split_chunks"]  # dataset_rows, prefix_tree_arrays: for TokenTree only


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


def dataset_rows(
    sequences: Sequence[Sequence[int]] | np.ndarray,
    V: int,
    *,
    lengths: np.ndarray | None,
    counts: np.ndarray | Sequence[int] | None,
    weights: np.ndarray | Sequence[float] | None,
    ends: np.ndarray | Sequence[bool] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(tokens, lengths, mass, ends, n_sequences)``: the checked rows of a dataset over ``V`` tokens.

    The arguments are those of :meth:`TokenTree.from_sequences <elastic_theory.theory.tree.TokenTree.from_sequences>`;
    ``mass`` is each row's multiplicity (1 without ``counts`` or ``weights``).
    """
    tokens, lens = pad_sequences(sequences, lengths)
    n = tokens.shape[0]
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
    return tokens, lens, w, end, n_seq


def prefix_tree_arrays(
    tokens: np.ndarray, lens: np.ndarray, w: np.ndarray, end: np.ndarray, V: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(parent, token, depth, weight, eos_weight, cut_weight)``: the node arrays of the prefix tree of padded rows.

    Row ``i`` (``lens[i]`` tokens of ``tokens[i]``) carries mass ``w[i]`` and ends in an EOS leaf where
    ``end[i]``, in a cut leaf elsewhere. Nodes are numbered in preorder, so every parent precedes its children.
    """
    n, width = tokens.shape
    order = _row_order(tokens, V)
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
    return parent, token, depth, weight, eos, cut


def _row_order(tokens: np.ndarray, V: int) -> np.ndarray:
    """The order that sorts padded rows lexicographically (token + 1, pad 0: a prefix sorts before its extensions).

    Packs as many columns into each uint64 key as fit, then sorts by the keys with :func:`_sort_by_keys`.
    """
    n, width = tokens.shape
    bits = int(V).bit_length()
    per_key = max(1, 64 // bits)
    keys = []
    for start in range(0, width, per_key):
        key = np.zeros(n, dtype=np.uint64)
        for j in range(start, min(start + per_key, width)):
            key <<= np.uint64(bits)
            key |= (tokens[:, j] + 1).astype(np.uint64)
        keys.append(key)
    return _sort_by_keys(keys) if keys else np.arange(n)


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
