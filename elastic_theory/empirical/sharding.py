r"""Scoring a dataset with several processes (``torchrun`` / ``accelerate launch``): each rank scores a shard.

Every rank tokenizes every document (cheap next to the forward passes, and the shard plan needs the
counts), takes the documents :func:`shard_by_tokens` gives it, scores them with
:func:`~elastic_theory.empirical.scoring.score_documents` and sends each document's code length
:math:`-\sum_t \log_2 p(x_t \mid x_{<t})` (computed as one process computes it,
:attr:`~elastic_theory.empirical.scoring.DocumentScore.bits`) with the document's index. Rank 0 puts the
sums back in the documents' order, so whatever follows (pooled rates, bootstrap and leave-one-out
intervals, the score cache) sees the numbers one process would see, in the same order.

The sums equal one process's up to the float32 forward pass: with the same batch size a window of
one document meets other windows in its batch (``batch_size`` > 1), and another shard means other
neighbours, so the last bits of a document's logits may differ; each evaluation is within
:meth:`~elastic_theory.theory.tolerances.Float32Forward.sum_tolerance` of exact arithmetic. With one
window per forward pass (the CPU's default) nothing in a document's computation depends on the shard.

A failure on one rank (a NaN logit, a model that does not fit) is caught there and travels with the
results in the one collective every rank reaches, so every rank stops with the failing rank's message
instead of waiting for it; a rank that dies is ended by the launcher, which then stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..infra.shards import balanced_shards
from ..stats.comparison import DatasetScores
from .data import Document, check_documents
from .distributed import group_ready, rank, world_size
from .scoring import encode_documents, score_documents, tokenization_digest

__all__ = ["ShardFailed", "broadcast_from_main", "score_dataset_sharded", "shard_by_tokens"]

class ShardFailed(ValueError):
    """Another rank failed while scoring: this rank stops with its message (one line, as the CLI reports it)."""


def shard_by_tokens(token_counts: Sequence[int], n_shards: int) -> list[list[int]]:
    """Document indices of each of ``n_shards`` shards, balanced by token count; each shard in document order
    (:func:`~elastic_theory.infra.shards.balanced_shards`: longest first, each to the least loaded shard; the largest
    shard exceeds the mean by less than the largest document, and every rank computes the same plan).

    >>> shard_by_tokens([5, 1, 4, 2, 3], 2)
    [[0, 1, 3], [2, 4]]
    """
    return balanced_shards([int(c) for c in token_counts], n_shards)


def broadcast_from_main(value):
    """``value`` as rank 0 has it, on every rank (a picklable object); itself without a process group.

    For decisions every rank must take alike though only rank 0 can see their grounds (a cache on rank 0's disk)."""
    if not group_ready():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def score_dataset_sharded(model, tokenizer, documents: Sequence[Document | str], *, context: int | None = None,
                          stride: int | None = None, batch_size: int | None = None,
                          progress: bool | str = False) -> DatasetScores | None:
    """Per-document bits, tokens and bytes of ``documents``, each rank scoring its shard; ``None`` on ranks but 0.

    Without a process group (one process) this rank scores everything. ``context`` and ``stride`` as in
    :func:`~elastic_theory.empirical.scoring.score_documents`; ``progress`` shows rank 0's bar (its shard's tokens).
    Every rank must call it with the same documents (a collective). A failure on any rank raises on every rank:
    the failing rank's own exception there, :class:`ShardFailed` with its message elsewhere.
    """
    docs = check_documents(documents)
    ids = encode_documents(tokenizer, docs)
    n_tokens = np.array([len(x) for x in ids], dtype=np.int64)
    mine = shard_by_tokens(n_tokens, world_size())[rank()]
    failure: BaseException | None = None
    bits: list[float] = []
    try:  # the shard's documents as one process scores its documents (the shard's texts tokenized once more)
        if mine:
            bits = [s.bits for s in score_documents(model, tokenizer, [docs[i] for i in mine], context=context,
                                                    stride=stride, batch_size=batch_size,
                                                    progress=progress if rank() == 0 else False)]
    except Exception as exc:  # noqa: BLE001 - reported to every rank below, then raised here
        failure = exc
    parts = _gather((mine, bits, None if failure is None else f"{type(failure).__name__}: {failure}"))
    if failure is not None:
        raise failure
    for r, (_, _, message) in enumerate(parts):
        if message is not None:
            raise ShardFailed(f"scoring stopped: process {r} of {len(parts)} failed: {message}")
    if rank() != 0:
        return None
    return _assemble(parts, docs, n_tokens, ids)


def _gather(part: tuple) -> list[tuple]:
    """Every rank's ``(indices, bits, error)``, in rank order, on every rank (one collective; without a group, ours)."""
    if not group_ready():
        return [part]
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, part)
    return parts


def _assemble(parts: list[tuple], docs: list[Document], n_tokens: np.ndarray, ids) -> DatasetScores:
    """The ranks' sums put back in document order; every document must come back exactly once."""
    bits = np.full(len(docs), np.nan)
    seen = np.zeros(len(docs), dtype=np.int64)
    for indices, values, _ in parts:
        bits[list(indices)] = values
        np.add.at(seen, list(indices), 1)
    if not (seen == 1).all():
        raise RuntimeError(f"the shards scored documents {np.flatnonzero(seen != 1).tolist()} not exactly once")
    return DatasetScores(bits=bits, n_tokens=n_tokens,
                         n_bytes=np.array([len(d.text.encode("utf-8")) for d in docs], dtype=np.int64),
                         tokenization=tokenization_digest(ids))
