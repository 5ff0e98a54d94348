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

import contextlib
import datetime
import heapq
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..stats.comparison import DatasetScores
from .data import Document, check_documents
from .distributed import local_rank, rank, world_size
from .scoring import encode_documents, score_documents, tokenization_digest

__all__ = ["GROUP_TIMEOUT_MINUTES", "ShardFailed", "broadcast_from_main", "process_device", "score_dataset_sharded",
           "scoring_processes", "shard_by_tokens"]

GROUP_TIMEOUT_MINUTES = 120
"""How long a collective waits for the slowest rank before the process group gives up. The wait is the imbalance
of the shards (at most one document's scoring, :func:`shard_by_tokens`) plus the model loads; errors do not wait
for it (module docstring). Generous, since a long corpus on unequal GPUs can leave ranks minutes apart."""


class ShardFailed(ValueError):
    """Another rank failed while scoring: this rank stops with its message (one line, as the CLI reports it)."""


def shard_by_tokens(token_counts: Sequence[int], n_shards: int) -> list[list[int]]:
    """Document indices of each of ``n_shards`` shards, balanced by token count; each shard in document order.

    Longest processing time first: documents by decreasing count (ties: lower index first), each to the shard with
    the fewest tokens so far (ties: the lower rank). The largest shard then exceeds the mean by less than the
    largest document (Graham's bound), and every rank computes the same plan from the same counts.

    >>> shard_by_tokens([5, 1, 4, 2, 3], 2)
    [[0, 1, 3], [2, 4]]
    """
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be an integer >= 1, got {n_shards!r}")
    heap = [(0, r) for r in range(n_shards)]
    shards: list[list[int]] = [[] for _ in range(n_shards)]
    for i in sorted(range(len(token_counts)), key=lambda j: (-int(token_counts[j]), j)):
        load, r = heapq.heappop(heap)
        shards[r].append(i)
        heapq.heappush(heap, (load + int(token_counts[i]), r))
    return [sorted(s) for s in shards]


def _group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def process_device(device: str | None) -> str | None:
    """The device this rank scores on: under several processes, ``cuda`` (or the default with CUDA present) means
    the GPU of this process's ``LOCAL_RANK``; an explicit ``cuda:N``, the CPU, or one process are left as given."""
    if world_size() == 1:
        return device
    if device is None and torch.cuda.is_available():
        device = "cuda"
    return f"cuda:{local_rank()}" if device == "cuda" else device


@contextlib.contextmanager
def scoring_processes(device: str | None) -> Iterator[None]:
    """The block with a process group when a launcher started several processes (``WORLD_SIZE`` > 1), none with one.

    Back end: NCCL when this rank scores on CUDA (its GPU made the current device), gloo on the CPU. A group that
    already exists (a trainer's) is used and left alone; one created here is destroyed on leaving the block.
    """
    if world_size() == 1 or _group_ready():
        yield
        return
    resolved = process_device(device)
    cuda = resolved is not None and resolved.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(resolved))
    torch.distributed.init_process_group("nccl" if cuda else "gloo",
                                         timeout=datetime.timedelta(minutes=GROUP_TIMEOUT_MINUTES))
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def broadcast_from_main(value):
    """``value`` as rank 0 has it, on every rank (a picklable object); itself without a process group.

    For decisions every rank must take alike though only rank 0 can see their grounds (a cache on rank 0's disk)."""
    if not _group_ready():
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
    if not _group_ready():
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
