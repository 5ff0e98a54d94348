"""Comparing a data tree with a model tree leaf by leaf: the model's mass of each data leaf, cross-entropy and KL.

Every function takes both trees by name, ``f(data=..., model=...)``, so the two cannot be swapped silently.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import log_base_factor
from .tree import LeafDistribution, TokenTree

__all__ = ["check_support", "cross_entropy", "kl_divergence", "model_leaf_mass", "model_leaf_probs"]


def model_leaf_probs(*, data: TokenTree, model: TokenTree) -> tuple[LeafDistribution, np.ndarray]:
    r"""``(leaves, q)``: the data's leaves and the model's probability :math:`q` of each (0 where it has none).

    A data EOS leaf at prefix :math:`u` gets the model's EOS mass at :math:`u`; a data cut leaf, the
    model's mass of continuing past :math:`u`; both over the model's total weight. The pairing that
    :func:`cross_entropy`, :func:`kl_divergence` and the perturbation model of
    :mod:`elastic_theory.theory.elasticity` all evaluate.
    """
    lv, mass = model_leaf_mass(data=data, model=model)
    return lv, mass / model.total_weight


def model_leaf_mass(*, data: TokenTree, model: TokenTree) -> tuple[LeafDistribution, np.ndarray]:
    """``(leaves, mass)``: as :func:`model_leaf_probs`, but the model's stored mass of each data leaf (not divided
    by its total weight), for callers that normalize in higher precision."""
    if data.vocab_size != model.vocab_size:
        raise ValueError(f"data and model trees use different alphabets ({data.vocab_size} vs {model.vocab_size})")
    if model.is_pruned and data.max_depth > model.max_depth:
        raise ValueError(
            f"the model tree is pruned at depth {model.max_depth} but the data reaches depth {data.max_depth}; "
            "prune the data tree to the model's depth first"
        )
    lv = data.leaves
    m = model.match(data)[lv.node]
    ok = m >= 0
    mm = np.maximum(m, 0)
    eos_q = model.eos_weight[mm]
    cont_q = np.maximum(model.weight[mm] - model.eos_weight[mm], 0.0)
    return lv, np.where(ok, np.where(lv.is_eos, eos_q, cont_q), 0.0)


def check_support(data: TokenTree, lv: LeafDistribution, q: np.ndarray, on_zero: str = "raise") -> float | None:
    """``None`` when every data leaf has model probability ``q > 0``; else ``math.inf`` (``on_zero="inf"``)
    or a ``ValueError`` naming the first uncovered leaf (``on_zero="raise"``)."""
    if on_zero not in ("raise", "inf"):
        raise ValueError(f"on_zero must be 'raise' or 'inf', got {on_zero!r}")
    zero = q <= 0
    if not zero.any():
        return None
    if on_zero == "inf":
        return math.inf
    i = int(np.flatnonzero(zero)[0])
    kind = "EOS" if lv.is_eos[i] else "cut"
    raise ValueError(
        f"the model gives probability 0 to the data's {kind} leaf {data.sequence(lv.node[i])} "
        f"(data probability {lv.prob[i]:.3g}; {int(zero.sum())} such leaves): the cross-entropy is infinite. "
        "Smooth the model, or pass on_zero='inf' to get math.inf."
    )


def cross_entropy(*, data: TokenTree, model: TokenTree, base: float = 2.0, on_zero: str = "raise") -> float:
    r""":math:`CE(P, p) = -\sum_{\text{leaves } x \text{ of } P} P(x) \log p(x)`, per response (bits by default).

    The model's probability of a data EOS leaf at prefix :math:`u` is its EOS mass at :math:`u`;
    of a data cut leaf, its mass of continuing past :math:`u`. Both trees are normalized by their
    total weight. When the model gives probability 0 to a leaf the data has, the cross-entropy is
    infinite: ``on_zero="raise"`` (default) raises a ``ValueError`` naming the leaf,
    ``on_zero="inf"`` returns ``math.inf``.
    """
    lv, q = model_leaf_probs(data=data, model=model)
    z = check_support(data, lv, q, on_zero)
    if z is not None:
        return z
    return float((0.0 - (lv.prob * np.log(q)).sum()) * log_base_factor(base))  # 0.0 - sum: never -0.0


def kl_divergence(*, data: TokenTree, model: TokenTree, base: float = 2.0, on_zero: str = "raise") -> float:
    r""":math:`KL(P \| p) = \sum_x P(x) \log (P(x)/p(x)) = CE(P, p) - H(P) \ge 0`, per response.

    Summed term by term (not as CE - H) to avoid cancellation; same zero-support rule as
    :func:`cross_entropy`.
    """
    lv, q = model_leaf_probs(data=data, model=model)
    z = check_support(data, lv, q, on_zero)
    if z is not None:
        return z
    return float((lv.prob * np.log(lv.prob / q)).sum() * log_base_factor(base))
