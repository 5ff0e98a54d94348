r"""Per-token log-probabilities of documents under a causal LM, and compression rates with error bars.

Conventions (see docs/measurement.md):

* A document is raw text, tokenized without special tokens (``add_special_tokens=False``, and
  special-token strings inside the text are split into ordinary tokens). Its tokens
  :math:`x_1..x_n` are all scored; :math:`x_1` is conditioned on the prefix token :math:`x_0`
  = BOS (EOS where the tokenizer has no BOS), which is never scored or counted.
* Rolling windows over :math:`z = (x_0, x_1, \dots, x_n)` with ``context`` C input positions and
  ``stride`` S: the first window feeds :math:`z_{0:m}`, :math:`m = \min(C, n)`, and scores
  :math:`x_1..x_m`; each later window scores the next :math:`k = \min(S, n - \text{done})` tokens
  from the C inputs that end just before the last of them. Each token is scored exactly once,
  with at least C - S tokens of left context after the first window. With S = C these are
  lm-evaluation-harness's ``loglikelihood_rolling`` windows.
* Rates: bits per token :math:`-\sum \log_2 p / \sum n_d`; bits per byte
  :math:`-\sum \log_2 p / \sum b_d`, :math:`b_d` the UTF-8 bytes of document d's text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .data import Document, check_documents
from ..stats.comparison import DatasetScores
from ..theory.units import LN2

__all__ = [
    "DocumentScore",
    "RateEstimate",
    "Window",
    "bootstrap_ci",
    "default_batch_size",
    "eval_mode",
    "encode_documents",
    "max_context",
    "measure_rates",
    "prefix_token_id",
    "rate_estimate",
    "rolling_windows",
    "score_documents",
    "score_token_ids",
    "tokenization_digest",
]



@dataclass(frozen=True)
class Window:
    """One forward pass: input :math:`z_{start:end}` (z = prefix token + document tokens).

    Scores the last ``n_scored`` outputs, i.e. document tokens ``end - n_scored .. end - 1``
    (0-based), which are :math:`z_{end-n_scored+1..end}`.
    """

    start: int
    end: int
    n_scored: int


def rolling_windows(n_tokens: int, context: int, stride: int | None = None) -> list[Window]:
    """The windows that score a document of ``n_tokens`` tokens (rule in the module docstring).

    >>> [(w.start, w.end, w.n_scored) for w in rolling_windows(7, context=3)]
    [(0, 3, 3), (3, 6, 3), (4, 7, 1)]
    >>> [(w.start, w.end, w.n_scored) for w in rolling_windows(7, context=3, stride=2)]
    [(0, 3, 3), (2, 5, 2), (4, 7, 2)]
    """
    if isinstance(context, bool) or not isinstance(context, int) or context < 2:
        raise ValueError(f"context must be an integer >= 2 (the prefix token plus one token), got {context!r}")
    stride = context if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= context:
        raise ValueError(f"stride must be an integer in 1..context ({context}), got {stride!r}")
    if n_tokens < 1:
        raise ValueError("a document with no tokens has nothing to score")
    first = min(context, n_tokens)
    windows = [Window(0, first, first)]
    done = first
    while done < n_tokens:
        k = min(stride, n_tokens - done)
        done += k
        windows.append(Window(done - context, done, k))
    return windows


def prefix_token_id(tokenizer) -> int:
    """The token the first document token is conditioned on: BOS, else EOS (as lm-evaluation-harness)."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("the tokenizer has neither a BOS nor an EOS token; set tokenizer.bos_token before scoring")


def max_context(model) -> int:
    """The model's largest number of input positions (``max_position_embeddings``/``n_positions``)."""
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError("the model config states no maximum length; pass context explicitly")


def default_batch_size(device: torch.device) -> int:
    """Windows per forward pass when none is given.

    CPU: 1, measured (docs/benchmarks.md): on a 2-core CPU, length-sorted batches of 16 were not
    faster than one window at a time. CUDA: 32 windows sorted by length, the issue's H100
    reference setting; not yet measured by this project (``benchmarks/bench_scoring.py --suite gpu``).
    """
    return 32 if device.type == "cuda" else 1


def encode_documents(tokenizer, documents: Sequence[Document]) -> list[list[int]]:
    """Token ids of each document, without special tokens; special-token strings in the text are split.

    Raises ``ValueError`` for a document that tokenizes to nothing, or if the tokenizer still puts
    a special token into a document (it would enter the counts).
    """
    enc = tokenizer([d.text for d in documents], add_special_tokens=False, split_special_tokens=True)["input_ids"]
    special = np.asarray(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)
    for d, ids in zip(documents, enc):
        if not ids:
            raise ValueError(f"{d.name}: the text tokenizes to no tokens; remove the document")
        hit = np.isin(np.asarray(ids, dtype=np.int64), special)
        if hit.any():
            j = int(np.flatnonzero(hit)[0])
            raise ValueError(f"{d.name}: the tokenizer inserted special token {ids[j]} at position {j}; it must not be scored")
    return enc


def tokenization_digest(token_ids: Sequence[Sequence[int]]) -> str:
    """SHA-256 of the token ids of all documents: equal digests mean the same tokens."""
    h = hashlib.sha256()
    for ids in token_ids:
        arr = np.asarray(ids, dtype=np.int64)
        h.update(arr.size.to_bytes(8, "little"))
        h.update(arr.tobytes())
    return h.hexdigest()


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def eval_mode(model) -> Iterator[None]:
    """Run the block with ``model`` in eval mode (no dropout) and restore its previous mode afterwards,
    also on an exception: a model handed over from training is measured as it will be used."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def score_token_ids(
    model,
    token_ids: Sequence[Sequence[int]],
    prefix_token: int,
    *,
    context: int,
    stride: int | None = None,
    batch_size: int | None = None,
    names: Sequence[str] | None = None,
    progress: bool | str = False,
) -> list[np.ndarray]:
    r"""Natural-log probabilities :math:`\ln p(x_t \mid x_{<t})` of every token of every sequence.

    Returns one float64 array per sequence (nats, one entry per token). Windows follow
    :func:`rolling_windows`; windows are sorted by length and run ``batch_size`` at a time
    (right-padded, with an attention mask where lengths differ) under
    ``torch.inference_mode``. Log-softmax is computed in float32 whatever the model's dtype.
    The model is put in eval mode and its previous mode restored. ``progress``: show a tqdm bar
    (on stderr) counting tokens; a string labels the bar (e.g. the dataset's name).

    Raises ``ValueError`` naming the sequence (``names``) and token position where the logits are
    NaN or infinite, or for an empty sequence.
    """
    names = list(names) if names is not None else [f"sequence {i}" for i in range(len(token_ids))]
    device = _model_device(model)
    batch_size = default_batch_size(device) if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    seqs = [np.asarray(ids, dtype=np.int64) for ids in token_ids]
    jobs = []  # (doc, window)
    for i, ids in enumerate(seqs):
        if ids.size == 0:
            raise ValueError(f"{names[i]}: no tokens to score")
        jobs.extend((i, w) for w in rolling_windows(int(ids.size), context, stride))
    jobs.sort(key=lambda job: job[1].end - job[1].start, reverse=True)
    out = [np.empty(ids.size, dtype=np.float64) for ids in seqs]
    z = [np.concatenate(([prefix_token], ids)) for ids in seqs]

    from tqdm.auto import tqdm

    with eval_mode(model), torch.inference_mode(), tqdm(
        total=sum(s.size for s in seqs), unit="tok", disable=not progress,
        desc=progress if isinstance(progress, str) else None,
    ) as bar:
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b : b + batch_size]
            _score_batch(model, batch, z, out, names, device, prefix_token, trim=stride is not None and stride < context)
            bar.update(sum(w.n_scored for _, w in batch))
    return out


def _score_batch(model, batch, z, out, names, device, pad_token, trim: bool) -> None:
    lengths = [w.end - w.start for _, w in batch]
    M = max(lengths)
    inputs = np.full((len(batch), M), pad_token, dtype=np.int64)
    for r, (i, w) in enumerate(batch):
        inputs[r, : lengths[r]] = z[i][w.start : w.end]
    input_ids = torch.from_numpy(inputs).to(device)
    # Without padding no mask is passed: the model then takes its plain causal path, the one
    # lm-evaluation-harness takes, and the logits agree bit for bit.
    mask = None
    if min(lengths) < M:
        mask = (torch.arange(M)[None, :] < torch.tensor(lengths)[:, None]).to(device=device, dtype=torch.long)
    # With overlapping windows only the outputs at positions >= first_kept are scored and the LM head
    # skips the rest. With disjoint windows all logits are computed, as lm-evaluation-harness does, so
    # that the LM head's matrix product has the same shape and the log-probabilities agree bit for bit.
    first_kept = min(m - w.n_scored for m, (_, w) in zip(lengths, batch)) if trim else 0
    logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False, logits_to_keep=M - first_kept).logits
    parts = []
    for r, (i, w) in enumerate(batch):
        stop = lengths[r] - first_kept  # scored outputs are a contiguous slice of row r: no copy of the logits
        targets = torch.from_numpy(z[i][w.end - w.n_scored + 1 : w.end + 1]).to(device)
        rows = logits[r, stop - w.n_scored : stop].float()  # float32 even for bf16 models
        parts.append(torch.log_softmax(rows, dim=-1).gather(1, targets[:, None])[:, 0])
    log_probs = torch.cat(parts).double().cpu().numpy()  # one device-to-host copy per batch
    start = 0
    for i, w in batch:
        chunk = log_probs[start : start + w.n_scored]
        start += w.n_scored
        bad = ~np.isfinite(chunk)
        if bad.any():
            j = w.end - w.n_scored + int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{names[i]}: the model's logits are NaN or infinite at token position {j} "
                f"(token id {int(z[i][j + 1])}); check the model weights and dtype (try float32)"
            )
        out[i][w.end - w.n_scored : w.end] = chunk


@dataclass(frozen=True)
class DocumentScore:
    """Scores of one document: ``log_probs`` in nats (one per token), ``n_bytes`` UTF-8 bytes of its text."""

    name: str
    log_probs: np.ndarray
    n_bytes: int

    @property
    def n_tokens(self) -> int:
        return int(self.log_probs.size)

    @property
    def bits(self) -> float:
        r"""Ideal code length of the document, :math:`-\sum_t \log_2 p(x_t \mid x_{<t})` bits."""
        return float(-self.log_probs.sum() / LN2)


def score_documents(
    model,
    tokenizer,
    documents: Sequence[Document | str],
    *,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int | None = None,
    progress: bool | str = False,
) -> list[DocumentScore]:
    """Score every token of every document (see :func:`score_token_ids`); one :class:`DocumentScore` each.

    ``context`` defaults to the model's maximum length (:func:`max_context`) and may not exceed it;
    ``stride`` defaults to ``context`` (disjoint windows, as lm-evaluation-harness).
    """
    docs = check_documents(documents)
    limit = max_context(model)
    context = limit if context is None else context
    if isinstance(context, int) and not isinstance(context, bool) and context > limit:
        raise ValueError(f"context {context} exceeds the model's maximum length {limit}")
    ids = encode_documents(tokenizer, docs)
    log_probs = score_token_ids(
        model, ids, prefix_token_id(tokenizer), context=context, stride=stride, batch_size=batch_size,
        names=[d.name for d in docs], progress=progress,
    )
    return [DocumentScore(d.name, lp, len(d.text.encode("utf-8"))) for d, lp in zip(docs, log_probs)]


def bootstrap_ci(
    numerators: np.ndarray,
    denominators: np.ndarray,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float] | None:
    r"""Percentile bootstrap interval of the ratio estimator :math:`\sum_d a_d / \sum_d b_d`.

    Documents are resampled with replacement (paired ``a_d, b_d``), ``n_resamples`` times, using
    ``rng`` (scipy.stats.bootstrap). The endpoints are order statistics of the resampled ratios
    (the :math:`(1-\text{level})/2` and :math:`(1+\text{level})/2` quantiles, ``inverted_cdf``:
    no interpolation), so ``lo <= hi`` holds exactly and each endpoint is a ratio some resample
    produced; an interpolated quantile can come out one ulp below its own lower end when every
    document has the same ratio. Returns None for a single document (no interval exists).
    """
    a = np.asarray(numerators, dtype=np.float64)
    b = np.asarray(denominators, dtype=np.float64)
    if a.size < 2:
        return None
    from scipy.stats import bootstrap

    res = bootstrap(
        (a, b), lambda x, y, axis: x.sum(axis=axis) / y.sum(axis=axis), paired=True, vectorized=True,
        n_resamples=n_resamples, confidence_level=level, method="percentile", rng=rng,
    )
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(res.bootstrap_distribution, [alpha, 1.0 - alpha], method="inverted_cdf")
    return float(lo), float(hi)


@dataclass(frozen=True)
class RateEstimate:
    """Rates of one dataset: bits per token and per byte (pooled over documents), counts, 95% intervals.

    ``ci95``: bootstrap interval of bits per byte; ``ci95_bits_per_token``: of bits per token;
    both None for a single document or when no random generator was given.
    """

    bits_per_token: float
    bits_per_byte: float
    n_tokens: int
    n_bytes: int
    n_documents: int
    ci95: tuple[float, float] | None
    ci95_bits_per_token: tuple[float, float] | None

    def to_dict(self) -> dict:
        return {
            "bits_per_token": self.bits_per_token, "bits_per_byte": self.bits_per_byte,
            "n_tokens": self.n_tokens, "n_bytes": self.n_bytes, "n_documents": self.n_documents,
            "ci95": None if self.ci95 is None else list(self.ci95),
            "ci95_bits_per_token": None if self.ci95_bits_per_token is None else list(self.ci95_bits_per_token),
        }


def rate_estimate(
    scores: Sequence[DocumentScore] | DatasetScores, rng: np.random.Generator | None, n_resamples: int = 2000
) -> RateEstimate:
    r"""Pool document scores into rates: :math:`\sum_d \text{bits}_d / \sum_d n_d` and :math:`/ \sum_d b_d`.

    ``scores``: one :class:`DocumentScore` per document, or their sums (``DatasetScores``, as sharded scoring
    gathers them). Bootstrap intervals (:func:`bootstrap_ci`) are drawn with ``rng``; ``rng=None`` skips them.
    """
    if isinstance(scores, DatasetScores):
        bits, toks, nbytes = (np.asarray(a, dtype=np.float64) for a in (scores.bits, scores.n_tokens, scores.n_bytes))
    elif not scores:
        raise ValueError("no document scores to pool")
    else:
        bits = np.array([s.bits for s in scores])
        toks = np.array([s.n_tokens for s in scores], dtype=np.float64)
        nbytes = np.array([s.n_bytes for s in scores], dtype=np.float64)
    return RateEstimate(
        bits_per_token=float(bits.sum() / toks.sum()),
        bits_per_byte=float(bits.sum() / nbytes.sum()),
        n_tokens=int(toks.sum()),
        n_bytes=int(nbytes.sum()),
        n_documents=int(bits.size),
        ci95=None if rng is None else bootstrap_ci(bits, nbytes, rng, n_resamples),
        ci95_bits_per_token=None if rng is None else bootstrap_ci(bits, toks, rng, n_resamples),
    )


def measure_rates(
    model,
    tokenizer,
    documents: Sequence[Document | str],
    *,
    rng: np.random.Generator,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int | None = None,
    n_resamples: int = 2000,
    progress: bool | str = False,
) -> RateEstimate:
    """:func:`score_documents` then :func:`rate_estimate`: the rates of one dataset under one model."""
    scores = score_documents(
        model, tokenizer, documents, context=context, stride=stride, batch_size=batch_size, progress=progress
    )
    return rate_estimate(scores, rng, n_resamples)
