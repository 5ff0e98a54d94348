r"""Compression rates :math:`\gamma` of a model on a dataset (THEORY §1).

The rate of model :math:`p` on dataset :math:`D_i` (distribution :math:`P_i`) is the expected
code length per token,

.. math:: \gamma_i = \frac{E_{x\sim P_i}[-\log_2 p(x)]}{E_{x\sim P_i}[|x|]}
          = \frac{CE(P_i, p)}{E_{P_i}|x|}  \quad\text{bits per token},

with both trees compared leaf by leaf (:func:`elastic_theory.theory.divergence.cross_entropy`). For trees
pruned to depth :math:`d` this is the paper's per-chunk form :math:`\frac1d CE` whenever every
leaf sits at depth :math:`d`; in general the denominator is the mean leaf depth, which is what a
per-token rate must divide by.

The normalized rate :math:`\gamma_{i/D} = \gamma_i - \text{offset}(D_i)` subtracts a
dataset-only offset (THEORY §1 "decision"):

* ``"entropy_rate"`` (default): :math:`H(P_i)/E|x|`, so :math:`\gamma_{i/D} = KL(P_i\|p)/E|x| \ge 0`;
* ``"log_leaves"``: :math:`\log_2 M / d`, M the number of leaves of the data tree and d its
  maximum depth: the public summaries' "gamma - log M", put in per-token units.

No derivative with respect to the model (THEORY §2) depends on the offset.
"""

from __future__ import annotations

import math
from typing import Literal

from .divergence import cross_entropy, kl_divergence
from .tree import TokenTree

__all__ = ["OFFSETS", "gamma", "normalized_gamma", "rate_offset"]

Offset = Literal["entropy_rate", "log_leaves"]
#: The normalizing offsets :func:`normalized_gamma` accepts (the values of ``Offset``).
OFFSETS: tuple[str, ...] = ("entropy_rate", "log_leaves")


def gamma(*, data: TokenTree, model: TokenTree, on_zero: str = "raise") -> float:
    r""":math:`\gamma = CE(P_{data}, p_{model}) / E_{data}|x|` in bits per token.

    >>> d = TokenTree.from_sequences([[0, 1], [1, 1]], 2)
    >>> gamma(data=d, model=d) # the data's own model: H = 1 bit per response, 2 tokens each
    0.5
    """
    return cross_entropy(data=data, model=model, base=2.0, on_zero=on_zero) / _mean_length(data)


def rate_offset(data: TokenTree, offset: Offset = "entropy_rate") -> float:
    """The dataset-only offset of the normalized rate, in bits per token (see module docstring)."""
    if offset == "entropy_rate":
        return data.entropy(2.0) / _mean_length(data)
    if offset == "log_leaves":
        return math.log2(data.n_leaves) / data.max_depth if data.max_depth else 0.0
    raise ValueError(f"offset must be one of {OFFSETS}, got {offset!r}")


def normalized_gamma(*, data: TokenTree, model: TokenTree, offset: Offset = "entropy_rate", on_zero: str = "raise") -> float:
    r""":math:`\gamma_{i/D} = \gamma_i - \text{offset}(D_i)`, bits per token.

    With the default offset this is :math:`KL(P_i \| p)/E|x|`, computed term by term (no
    cancellation), so it is >= 0 up to rounding.
    """
    if offset == "entropy_rate":
        return kl_divergence(data=data, model=model, base=2.0, on_zero=on_zero) / _mean_length(data)
    return gamma(data=data, model=model, on_zero=on_zero) - rate_offset(data, offset)


def _mean_length(data: TokenTree) -> float:
    m = data.mean_length
    if not m > 0:
        raise ValueError("the dataset has only empty responses (mean length 0): a per-token rate is undefined")
    return m
