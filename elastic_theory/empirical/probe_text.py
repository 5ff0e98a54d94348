r"""Text datasets for :mod:`~elastic_theory.empirical.probe`: a dataset's rate as a differentiable function of the weights.

A dataset is scored exactly as ``measure`` scores it (:mod:`~elastic_theory.empirical.scoring`): the document's
tokens :math:`x_1..x_n` (no special tokens), :math:`x_1` conditioned on the prefix token (BOS, else EOS), every
token scored once by the rolling windows of :func:`~elastic_theory.empirical.scoring.rolling_windows`. Its rate is

.. math:: \gamma = \frac{-\sum_d \sum_t \ln p_\theta(x_{d,t} \mid x_{d,<t})}{T \ln 2}\ \text{bits per token},
          \qquad T = \sum_d n_d,

and per byte :math:`\gamma \cdot T / B` (:math:`B` the UTF-8 bytes of the texts; the tokenization is fixed, so
the factor :math:`T/B` is a constant of the dataset and the per-byte gradient is the per-token one times it).

The windows are run ``batch_size`` at a time (right-padded, sorted by length as ``measure`` sorts them); the
rate is the sum over batches of each batch's share, :func:`rate_pieces`, so a gradient or a Hessian-vector
product accumulated over the pieces is the one of the whole dataset (the sum is linear): ``--batch-size``
changes the memory a step needs, not the gradient (up to the order of floating-point sums). With ``shard =
(rank, world)`` a process takes batches ``rank, rank + world, ...`` only (:func:`batches`); the caller adds the
ranks' partial sums (:func:`~elastic_theory.empirical.distributed.sum_across_ranks`).
Log-probabilities are taken in the model's dtype, at least float32 (as ``measure``: float32 for bf16 models).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..stats.comparison import DatasetScores
from ..theory.units import LN2
from .compare import tokenization_digest
from .data import Document, check_documents
from .distributed import sum_across_ranks
from .scoring import Window, encode_documents, prefix_token_id, rolling_windows

__all__ = ["TextDataset", "batches", "dataset_scores", "encode_dataset", "rate_pieces"]


@dataclass(frozen=True)
class TextDataset:
    """One dataset's documents as token ids with the windows that score them.

    ``token_ids[d]``: document d's tokens; ``n_bytes[d]``: its UTF-8 bytes; ``prefix``: the token the first one is
    conditioned on; ``context``/``stride``: the rolling windows (:func:`rolling_windows`).
    """

    name: str
    token_ids: tuple[np.ndarray, ...]
    n_bytes: np.ndarray
    prefix: int
    context: int
    stride: int | None

    @property
    def n_tokens(self) -> int:
        """T: the tokens scored, over all documents."""
        return int(sum(ids.size for ids in self.token_ids))

    @property
    def tokens_per_byte(self) -> float:
        """:math:`T/B`, the factor that turns bits per token into bits per byte (changes and gradients alike)."""
        return self.n_tokens / float(np.sum(self.n_bytes))

    def windows(self) -> list[tuple[int, Window]]:
        """``(document, window)`` for every forward pass, longest first (the order ``measure`` runs them in)."""
        jobs = [(i, w) for i, ids in enumerate(self.token_ids) for w in rolling_windows(int(ids.size), self.context, self.stride)]
        jobs.sort(key=lambda job: job[1].end - job[1].start, reverse=True)
        return jobs


def encode_dataset(tokenizer, documents: Sequence[Document | str], name: str, *, context: int,
                   stride: int | None = None) -> TextDataset:
    """Tokenize ``documents`` as ``measure`` does (:func:`~elastic_theory.empirical.scoring.encode_documents`)."""
    docs = check_documents(documents)
    ids = encode_documents(tokenizer, docs)
    return TextDataset(name, tuple(np.asarray(x, dtype=np.int64) for x in ids),
                       np.array([len(d.text.encode("utf-8")) for d in docs], dtype=np.int64),
                       prefix_token_id(tokenizer), context, stride)


def _batch_log_probs(model, data: TextDataset, batch: list[tuple[int, Window]]) -> list[torch.Tensor]:
    """:math:`\\ln p` of the tokens each window of ``batch`` scores (one tensor per window; differentiable)."""
    device = next(model.parameters()).device
    z = [np.concatenate(([data.prefix], data.token_ids[i])) for i, _ in batch]
    lengths = [w.end - w.start for _, w in batch]
    width = max(lengths)
    inputs = np.full((len(batch), width), data.prefix, dtype=np.int64)
    for r, ((_, w), zi) in enumerate(zip(batch, z)):
        inputs[r, : lengths[r]] = zi[w.start : w.end]
    mask = None
    if min(lengths) < width:  # as measure: no mask without padding (the model's plain causal path)
        mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).to(device=device, dtype=torch.long)
    logits = model(input_ids=torch.from_numpy(inputs).to(device), attention_mask=mask, use_cache=False).logits
    dtype = torch.promote_types(logits.dtype, torch.float32)
    out = []
    for r, ((_, w), zi) in enumerate(zip(batch, z)):
        targets = torch.from_numpy(zi[w.end - w.n_scored + 1 : w.end + 1]).to(device)
        rows = logits[r, lengths[r] - w.n_scored : lengths[r]].to(dtype)
        out.append(torch.log_softmax(rows, dim=-1).gather(1, targets[:, None])[:, 0])
    return out


def batches(data: TextDataset, batch_size: int, shard: tuple[int, int] = (0, 1)) -> list[list[tuple[int, Window]]]:
    """The windows (:meth:`TextDataset.windows`) in batches of ``batch_size``; with ``shard = (rank, world)`` the
    batches ``rank, rank + world, ...``: the ranks' batches together are every batch, once."""
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard {shard}: the rank must be in 0..world - 1")
    jobs = data.windows()
    return [jobs[b : b + batch_size] for b in range(0, len(jobs), batch_size)][rank::world]


def rate_pieces(model, data: TextDataset, batch_size: int, shard: tuple[int, int] = (0, 1)) -> Iterator[torch.Tensor]:
    r"""The rate :math:`\gamma` (bits per token) as a sum of differentiable pieces, one per batch of
    :func:`batches`: piece b is :math:`-\sum_{t \in b} \ln p_t / (T \ln 2)`, T the whole dataset's tokens (so
    the pieces of every shard add up to :math:`\gamma`). A caller differentiates each piece and adds the results,
    so only one batch's activations are held at a time."""
    scale = 1.0 / (data.n_tokens * LN2)
    for batch in batches(data, batch_size, shard):
        yield -torch.cat(_batch_log_probs(model, data, batch)).sum() * scale


@torch.no_grad()
def dataset_scores(model, data: TextDataset, batch_size: int, shard: tuple[int, int] = (0, 1)) -> DatasetScores:
    """Every document's code length in bits under ``model`` (the same windows and arithmetic as :func:`rate_pieces`),
    with its tokens and bytes, for the paired intervals of :func:`~elastic_theory.stats.comparison.compare_rates`.
    With a ``shard`` of ``world`` > 1 processes, every rank of the process group calls it: each scores its batches and
    the nats are added over the ranks (all-reduce in float64), so every rank returns the whole dataset's scores."""
    nats = np.zeros(len(data.token_ids))
    for batch in batches(data, batch_size, shard):
        for (i, _), lp in zip(batch, _batch_log_probs(model, data, batch)):
            nats[i] -= float(lp.double().sum())
    if shard[1] > 1:
        nats = sum_across_ranks([torch.from_numpy(nats)], shard[1])[0].numpy()
    return DatasetScores(bits=nats / LN2, n_tokens=np.array([ids.size for ids in data.token_ids], dtype=np.int64),
                         n_bytes=np.asarray(data.n_bytes), tokenization=tokenization_digest(data.token_ids))
