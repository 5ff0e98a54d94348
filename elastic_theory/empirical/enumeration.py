r"""Exact distributions of a small causal model over every fixed-length sequence, and per-prompt answers.

For a data alphabet of ``V`` tokens and length ``L``, the model's distribution over all
:math:`V^L` sequences is enumerated exactly with :math:`V^{L-1}` rows of one forward pass: the row
``BOS, x_0 .. x_{L-2}`` gives every conditional :math:`p(x_i \mid x_{<i})` along that prefix, and
its last position gives all V completions at once (a V-fold saving over scoring every sequence).

Next-token distributions are renormalized over the data alphabet: the BOS id (``V``, one past the
data) is an input only, never a target, and the mass a model leaves on it is excluded. So the
enumerated probabilities sum to 1 and KL divergences between models are proper.
"""

from __future__ import annotations


import numpy as np
import torch
from ..theory.units import LN2

__all__ = ["aligned_probabilities", "all_sequences", "conditional_kl_bits", "full_log_probs", "prompt_index"]



def all_sequences(vocab_size: int, length: int) -> np.ndarray:
    """Every sequence of ``length`` tokens over ``range(vocab_size)``, in lexicographic order: shape ``(V**L, L)``."""
    grids = np.meshgrid(*([np.arange(vocab_size)] * length), indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def _data_log_softmax(model, input_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    logits = model(input_ids=input_ids).logits[..., :vocab_size]
    return torch.log_softmax(logits.to(torch.float64), dim=-1)


@torch.no_grad()
def full_log_probs(model, vocab_size: int, length: int) -> np.ndarray:
    r""":math:`\ln p_\theta(x)` (nats, float64) for every :math:`x` of :func:`all_sequences` (same order); sums to 1 in probability."""
    device = next(model.parameters()).device
    prefixes = torch.as_tensor(all_sequences(vocab_size, length - 1), device=device)
    bos = torch.full((prefixes.shape[0], 1), vocab_size, dtype=prefixes.dtype, device=device)
    lp = _data_log_softmax(model, torch.cat([bos, prefixes], dim=1), vocab_size)  # (V^(L-1), L, V)
    head = lp[:, :-1, :].gather(-1, prefixes.unsqueeze(-1)).squeeze(-1).sum(-1)  # log p(x_0..x_{L-2})
    return (head.unsqueeze(-1) + lp[:, -1, :]).reshape(-1).cpu().numpy()


@torch.no_grad()
def aligned_probabilities(model, sequences, prompt_length: int, vocab_size: int) -> np.ndarray:
    r"""Per sequence ``prompt + response``: :math:`p_\theta(\text{response} \mid \text{prompt})` (the behaviour score's :math:`\pi`).

    ``sequences``: equal-length token sequences whose first ``prompt_length`` tokens are the prompt.
    """
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(sequences, dtype=np.int64), device=device)
    bos = torch.full((x.shape[0], 1), vocab_size, dtype=x.dtype, device=device)
    lp = _data_log_softmax(model, torch.cat([bos, x[:, :-1]], dim=1), vocab_size)
    token_lp = lp.gather(-1, x.unsqueeze(-1)).squeeze(-1)
    return np.exp(token_lp[:, prompt_length:].sum(-1).cpu().numpy())


def prompt_index(prompts, vocab_size: int) -> np.ndarray:
    """Row of each prompt (a token tuple) in the lexicographic order of :func:`all_sequences` of its length."""
    p = np.asarray(prompts, dtype=np.int64)
    return (p * vocab_size ** np.arange(p.shape[1] - 1, -1, -1)).sum(1)


def conditional_kl_bits(log_p: np.ndarray, log_q: np.ndarray, vocab_size: int, length: int, prompt_length: int,
                        prompts) -> float:
    r"""Mean over ``prompts`` of :math:`KL(p(\cdot \mid x) \| q(\cdot \mid x))` in bits per response.

    ``log_p``, ``log_q``: enumerated sequence log-probabilities (:func:`full_log_probs`); the answer
    distribution given prompt :math:`x` is :math:`p(x, y)/p(x)` over every completion ``y``. This is
    the behaviour-level divergence: unlike the KL of whole sequences it ignores how often a prompt
    is generated (fine-tuning on one component's prompts shifts that marginal by ln(1/w) alone).
    """
    n_answers = vocab_size ** (length - prompt_length)
    rows = prompt_index(prompts, vocab_size)

    def conditional(lp: np.ndarray) -> np.ndarray:
        table = lp.reshape(-1, n_answers)[rows]
        return table - np.logaddexp.reduce(table, axis=1, keepdims=True)

    cp, cq = conditional(log_p), conditional(log_q)
    kl = (np.exp(cp) * (cp - cq)).sum(1)
    return float(np.maximum(kl, 0.0).mean() / LN2)
