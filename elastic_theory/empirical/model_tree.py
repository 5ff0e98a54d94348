r"""A causal LM's depth-d token tree, enumerated into the core :class:`~elastic_theory.theory.tree.TokenTree`.

Node weights are prefix probabilities :math:`w(x_{1:t}) = \prod_{s \le t} p(x_s \mid \text{prompt}, x_{<s})`
under the model, so the theory's quantities (entropy, cross-entropy, rates) can be computed from
a real model. Enumeration costs one batched forward pass per group of prefixes at each level:
practical for small vocabularies or a restricted candidate set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..theory.tree import TokenTree
from .scoring import eval_mode, max_context

__all__ = ["model_token_tree", "next_token_probabilities"]


def next_token_probabilities(model, prompt: Sequence[int], prefixes: Sequence[Sequence[int]]) -> np.ndarray:
    r"""Float64 rows :math:`p(\cdot \mid \text{prompt}, \text{prefix})`, shape ``(len(prefixes), V)``.

    Prefixes of different lengths are right-padded (with an attention mask) and read at their
    last real position. Softmax in float64 of the model's logits.
    """
    device = next(model.parameters()).device
    rows = [list(prompt) + list(p) for p in prefixes]
    lengths = torch.tensor([len(r) for r in rows])
    width = int(lengths.max())
    ids = torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows], device=device)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(device=device, dtype=torch.long)
    with eval_mode(model), torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    last = logits[torch.arange(len(rows), device=device), (lengths - 1).to(device)]
    return torch.softmax(last.double(), dim=-1).cpu().numpy()


def model_token_tree(
    model,
    depth: int,
    prompt: Sequence[int],
    *,
    eos_token: int | None = None,
    candidates: Sequence[int] | None = None,
    min_prob: float = 0.0,
    batch_size: int = 256,
) -> TokenTree:
    """The model's token tree to ``depth`` tokens after ``prompt`` (e.g. ``[bos_token_id]``).

    See :meth:`TokenTree.from_next_token_fn` for ``eos_token`` (ends a response), ``candidates``
    (expand only these tokens; the tree is the model conditioned on them) and ``min_prob``.
    The alphabet is the model's output vocabulary (``config.vocab_size``). Raises ``ValueError``
    for an empty prompt or a prompt plus depth beyond the model's context.
    """
    if not prompt:
        raise ValueError("the prompt needs at least one token (e.g. [tokenizer.bos_token_id])")
    if len(prompt) + depth > max_context(model):
        raise ValueError(f"prompt ({len(prompt)}) + depth ({depth}) exceeds the model's context ({max_context(model)})")
    return TokenTree.from_next_token_fn(
        lambda prefixes: next_token_probabilities(model, prompt, prefixes),
        int(model.config.vocab_size), depth, eos_token=eos_token, candidates=candidates, min_prob=min_prob,
        batch_size=batch_size,
    )
