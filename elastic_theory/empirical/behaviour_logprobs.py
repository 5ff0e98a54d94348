r"""Teacher-forced behaviour of a causal LM on preference pairs: response log-probabilities, margins, KL to the base.

The likelihood measures of the paper's rebound protocol (§5.2) on a real model (its generation
scores are in :mod:`~elastic_theory.empirical.behaviour_generation`). Every prompt is formatted by
:func:`~elastic_theory.empirical.finetune.prompt_text`, the text training uses.

**Response log-probability** (:func:`response_log_probs`). For a pair's prompt :math:`x` and one
response :math:`y`, the tokens are those trl's prompt-completion trainers (SFT and DPO, trl 1.16)
train on: ``t = tokenizer(prompt_text(x))`` and ``u = tokenizer(prompt_text(x) + y + EOS)`` (the
tokenizer's default special tokens; EOS appended as text unless ``y`` already ends with it),
and the response is ``u[c:]``, ``c`` the length of the common prefix of ``t`` and ``u`` (where
the two diverge, as trl's ``common_prefix_length``). With ``include_eos=True`` (the default) the
appended EOS token is a response token: the score is then :math:`\ln p(y, \text{stop} \mid x)`, the
quantity SFT raises and DPO compares, and the number of response tokens counts it. With
``include_eos=False`` the EOS is not appended: :math:`\ln p(y \mid x)` as a prefix. Units: nats,
summed over the response tokens (teacher forced, prompt tokens never scored).

**Margin** (:func:`margins`). Per pair, :math:`m = \ln p(y_a \mid x) - \ln p(y_u \mid x)` in nats per
response, and :math:`m_{tok} = \ln p(y_a \mid x)/n_a - \ln p(y_u \mid x)/n_u` in nats per response
token (the difference of the two per-token means). :meth:`Margins.summary` gives the mean over
pairs with a seeded percentile-bootstrap 95% interval
(:func:`~elastic_theory.empirical.scoring.bootstrap_ci`) or Student's t
(:func:`~elastic_theory.stats.seedstats.seed_interval`).

**KL to the base model** (:func:`kl_to_base_per_token`). On held-out texts tokenized as
:func:`~elastic_theory.empirical.scoring.encode_documents` does (``measure``'s convention: no
special tokens, the first token conditioned on BOS, else EOS), or on held-out preference pairs
(the response tokens of both sides, as trained on), the mean over all token positions
:math:`i` of :math:`\mathrm{KL}(p_\theta(\cdot \mid z_{<i}) \,\|\, p_0(\cdot \mid z_{<i})) =
\sum_v p_\theta(v \mid z_{<i}) \log_2 \frac{p_\theta(v \mid z_{<i})}{p_0(v \mid z_{<i})}`, summed
exactly over the vocabulary, in **bits per token** (pooled: total bits over total positions).
The base side is either a model (both run in one pass per text, nothing stored) or
:func:`base_log_probs` computed once for a fixed held-out set and reused for many checkpoints; it
holds :math:`4 V` bytes per token position (float32 log-probabilities; SmolLM2's :math:`V` = 49,152
gives 192 KiB per position, 197 MB per 1,000 positions: :attr:`BaseLogProbs.nbytes`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..data.corpora import PreferencePair
from ..stats.seedstats import seed_interval
from .data import check_documents
from .finetune import SIDES, prompt_text
from .scoring import _model_device, bootstrap_ci, encode_documents, eval_mode, max_context, prefix_token_id
from ..theory.units import LN2

__all__ = [
    "BaseLogProbs",
    "KLPerToken",
    "Margins",
    "ResponseLogProbs",
    "base_log_probs",
    "kl_to_base_per_token",
    "margins",
    "response_log_probs",
    "response_token_ids",
]


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")


def response_token_ids(tokenizer, prompt: str, response: str, *, include_eos: bool = True) -> tuple[list[int], int]:
    """Token ids of ``prompt_text(prompt) + response`` (+ EOS) and the index where the response starts.

    Exactly as trl 1.16's prompt-completion SFT/DPO tokenization (module docstring). Raises
    ``ValueError`` when the response adds no token or starts at position 0 (nothing to condition on).
    """
    text = prompt_text(tokenizer, prompt)
    eos = tokenizer.eos_token
    if include_eos:
        if eos is None:
            raise ValueError("the tokenizer has no EOS token; pass include_eos=False")
        if not response.endswith(eos):
            response = response + eos
    prompt_ids = tokenizer(text=text)["input_ids"]
    ids = tokenizer(text=text + response)["input_ids"]
    start = 0
    for a, b in zip(prompt_ids, ids):
        if a != b:
            break
        start += 1
    if start == 0:
        raise ValueError(f"prompt {prompt!r}: its tokens give no context for the response (no BOS, empty prompt)")
    if start >= len(ids):
        raise ValueError(f"prompt {prompt!r}: the response {response!r} adds no tokens")
    return list(ids), start


def _log_prob_rows(model, sequences: Sequence[Sequence[int]], starts: Sequence[int], batch_size: int,
                   ) -> Iterator[tuple[int, torch.Tensor]]:
    """For each sequence ``i``: float32 log-probabilities (rows ``[len - start, V]``) of the next token at
    positions ``start - 1 .. len - 2``, i.e. the distributions that predict tokens ``start .. len - 1``.

    Sequences are run in batches of ``batch_size`` (longest first, right-padded, attention-masked);
    yields ``(i, rows)`` in batch order. Callers hold the model in :func:`~.scoring.eval_mode` (a context
    manager around the loop, not inside this generator: a generator left suspended would restore the
    mode only when collected, out of order when the KL's model and base are one object).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    limit = max_context(model)
    device = _model_device(model)
    vocab = model.get_input_embeddings().num_embeddings
    top = max((max(s) for s in sequences), default=0)
    if top >= vocab:
        raise ValueError(f"token id {top} is outside the model's vocabulary of {vocab}: the model and the tokenizer "
                         "(or the two models of a KL) need the same tokenizer and vocabulary")
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        width = len(sequences[idx[0]])
        if width > limit:
            raise ValueError(f"a sequence of {width} tokens is longer than the model's context ({limit}); shorten it")
        ids = torch.zeros((len(idx), width), dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : len(sequences[i])] = torch.as_tensor(sequences[i])
            mask[r, : len(sequences[i])] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for r, i in enumerate(idx):
            rows = logits[r, starts[i] - 1 : len(sequences[i]) - 1].float()
            yield i, torch.log_softmax(rows, dim=-1)


def _default_batch_size(model) -> int:
    return 32 if _model_device(model).type == "cuda" else 8


@dataclass(frozen=True)
class ResponseLogProbs:
    """Per pair: ``log_prob`` (nats, summed over the response tokens) and ``n_tokens`` (response tokens)."""

    log_prob: np.ndarray
    n_tokens: np.ndarray

    @property
    def per_token(self) -> np.ndarray:
        """Nats per response token, per pair."""
        return self.log_prob / self.n_tokens


def response_log_probs(model, tokenizer, pairs: Sequence[PreferencePair], side: str, *, batch_size: int | None = None,
                       include_eos: bool = True) -> ResponseLogProbs:
    r""":math:`\ln p(y \mid x)` of each pair's ``side`` response given ``prompt_text(prompt)`` (module docstring).

    ``batch_size``: sequences per forward pass (default 8 on the CPU, 32 on CUDA); the result does
    not depend on it beyond float rounding.
    """
    _check_side(side)
    if not pairs:
        raise ValueError("no pairs to score")
    encoded = [response_token_ids(tokenizer, p.prompt, getattr(p, side), include_eos=include_eos) for p in pairs]
    seqs = [ids for ids, _ in encoded]
    starts = [s for _, s in encoded]
    log_prob = np.zeros(len(pairs))
    batch_size = _default_batch_size(model) if batch_size is None else batch_size
    with eval_mode(model):
        for i, rows in _log_prob_rows(model, seqs, starts, batch_size):
            target = torch.as_tensor(seqs[i][starts[i] :], device=rows.device)
            log_prob[i] = float(rows.gather(1, target[:, None]).double().sum())
    return ResponseLogProbs(log_prob, np.array([len(s) - st for s, st in zip(seqs, starts)], dtype=np.int64))


@dataclass(frozen=True)
class Margins:
    """Per-pair margins of the aligned over the unaligned response (module docstring).

    ``per_response`` in nats per response; ``per_token`` in nats per response token.
    """

    aligned: ResponseLogProbs
    unaligned: ResponseLogProbs

    @property
    def per_response(self) -> np.ndarray:
        return self.aligned.log_prob - self.unaligned.log_prob

    @property
    def per_token(self) -> np.ndarray:
        return self.aligned.per_token - self.unaligned.per_token

    def summary(self, unit: str = "token", *, seed: int = 0, method: str = "bootstrap", n_resamples: int = 2000) -> dict:
        """Mean margin over pairs with a 95% interval: ``{"mean", "ci95", "n_pairs", "unit", "method"}``.

        ``unit``: ``"token"`` (nats per response token) or ``"response"`` (nats per response).
        ``method``: ``"bootstrap"`` (percentile bootstrap over pairs, ``np.random.default_rng(seed)``)
        or ``"t"`` (Student's t; ``seed`` unused). ``ci95`` is None for a single pair.
        """
        values = {"token": self.per_token, "response": self.per_response}.get(unit)
        if values is None:
            raise ValueError(f"unit must be 'token' or 'response', got {unit!r}")
        if method == "bootstrap":
            ci = bootstrap_ci(values, np.ones_like(values), np.random.default_rng(seed), n_resamples)
        elif method == "t":
            interval = seed_interval(values)
            ci = interval.ci if interval.n > 1 else None
        else:
            raise ValueError(f"method must be 'bootstrap' or 't', got {method!r}")
        return {"mean": float(values.mean()), "ci95": None if ci is None else [float(c) for c in ci],
                "n_pairs": int(values.size), "unit": f"nats per {unit}", "method": method}


def margins(model, tokenizer, pairs: Sequence[PreferencePair], *, batch_size: int | None = None,
            include_eos: bool = True) -> Margins:
    """Log-probability margins (aligned minus unaligned) of each pair: :class:`Margins`."""
    return Margins(*(response_log_probs(model, tokenizer, pairs, side, batch_size=batch_size, include_eos=include_eos)
                     for side in SIDES))


@dataclass(frozen=True)
class BaseLogProbs:
    """The base model's next-token log-probabilities on a fixed set of texts, computed once.

    ``token_ids[d]``: sequence d's tokens (a text: the prefix token first, ``z_0 .. z_n``; a pair's
    side: ``prompt_text(prompt) + response + EOS``); ``starts[d]``: its first measured token (1 for
    a text, the response start for a pair); ``log_probs[d]``: float32 ``[len - start, V]``, row i the
    distribution that predicts token ``start + i``.
    """

    names: list[str]
    token_ids: list[list[int]]
    starts: list[int]
    log_probs: list[torch.Tensor]

    @property
    def n_tokens(self) -> int:
        return sum(len(lp) for lp in self.log_probs)

    @property
    def nbytes(self) -> int:
        """Memory held by the stored log-probabilities (4 V bytes per token position)."""
        return sum(lp.numel() * lp.element_size() for lp in self.log_probs)


def _kl_sequences(tokenizer, texts: Sequence[str] | Sequence[PreferencePair],
                  ) -> tuple[list[str], list[list[int]], list[int]]:
    """Names, token ids and first measured positions of the KL's texts (see :func:`kl_to_base_per_token`)."""
    if not texts:
        raise ValueError("no texts to measure KL on")
    if all(isinstance(t, PreferencePair) for t in texts):
        names = [f"{p.name}:{side}" for p in texts for side in SIDES]
        encoded = [response_token_ids(tokenizer, p.prompt, getattr(p, side)) for p in texts for side in SIDES]
        return names, [ids for ids, _ in encoded], [start for _, start in encoded]
    docs = check_documents(list(texts), source="texts")
    prefix = prefix_token_id(tokenizer)
    seqs = [[prefix, *ids] for ids in encode_documents(tokenizer, docs)]
    return [d.name for d in docs], seqs, [1] * len(seqs)


def base_log_probs(base_model, tokenizer, texts: Sequence[str] | Sequence[PreferencePair], *,
                   batch_size: int = 1) -> BaseLogProbs:
    """Run the base model once over ``texts`` (strings, or preference pairs: see :func:`kl_to_base_per_token`)
    and keep its log-probabilities for :func:`kl_to_base_per_token`."""
    names, seqs, starts = _kl_sequences(tokenizer, texts)
    with eval_mode(base_model):
        rows = dict(_log_prob_rows(base_model, seqs, starts, batch_size))
    return BaseLogProbs(names, seqs, starts, [rows[i].cpu() for i in range(len(seqs))])


@dataclass(frozen=True)
class KLPerToken:
    """KL of the model to the base per token position (bits per token, pooled), with per-text totals."""

    bits_per_token: float
    n_tokens: int
    per_text_bits: np.ndarray
    per_text_tokens: np.ndarray

    def ci95(self, *, seed: int = 0, n_resamples: int = 2000) -> tuple[float, float] | None:
        """Percentile bootstrap interval over texts of the pooled bits per token (None for one text)."""
        return bootstrap_ci(self.per_text_bits, self.per_text_tokens.astype(np.float64), np.random.default_rng(seed),
                            n_resamples)


def kl_to_base_per_token(model, base_logprobs_or_model, tokenizer,
                         texts: Sequence[str] | Sequence[PreferencePair] | None = None, *,
                         batch_size: int = 1) -> KLPerToken:
    r"""Mean over token positions of :math:`\mathrm{KL}(p_\theta \| p_0)` in bits per token (module docstring).

    ``texts``: strings (every token position, tokenized as ``measure`` does), or preference pairs
    (the response positions of both sides, tokenized as :func:`response_token_ids`: the KL on the
    alignment task's own responses; one "text" per pair and side). ``base_logprobs_or_model``: a
    :class:`BaseLogProbs` (then ``texts`` may be omitted; if given it must be the same texts) or the
    base model itself (``texts`` required; both models run over each batch, nothing is stored). The
    model must share the base's tokenizer and vocabulary.
    """
    if isinstance(base_logprobs_or_model, BaseLogProbs):
        base = base_logprobs_or_model
        if texts is not None and _kl_sequences(tokenizer, texts)[1:] != (base.token_ids, base.starts):
            raise ValueError("the texts differ from those the base log-probabilities were computed on")
        seqs, starts = base.token_ids, base.starts
        base_model, base_rows = None, iter(enumerate(base.log_probs))
    else:
        if texts is None:
            raise ValueError("texts are required when the base is a model")
        _, seqs, starts = _kl_sequences(tokenizer, texts)
        base_model = base_logprobs_or_model
        base_rows = _log_prob_rows(base_model, seqs, starts, batch_size)
    bits = np.zeros(len(seqs))
    base_by_index = {}
    with eval_mode(model), nullcontext() if base_model is None else eval_mode(base_model):
        for i, rows in _log_prob_rows(model, seqs, starts, batch_size):
            while i not in base_by_index:
                j, q = next(base_rows)
                base_by_index[j] = q
            log_q = base_by_index.pop(i).to(rows.device)
            if log_q.shape != rows.shape:
                raise ValueError(f"the base gives {tuple(log_q.shape)} log-probabilities where the model gives "
                                 f"{tuple(rows.shape)}: the two need the same tokenizer and vocabulary")
            bits[i] = float((rows.exp() * (rows - log_q)).sum(dtype=torch.float64)) / LN2
    tokens = np.array([len(s) - start for s, start in zip(seqs, starts)], dtype=np.int64)
    return KLPerToken(float(bits.sum() / tokens.sum()), int(tokens.sum()), bits, tokens)
