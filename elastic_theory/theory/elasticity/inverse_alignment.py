r"""Def. 3.6: the discrepancy :math:`\rho(p_0', p_0)` and the inverse-alignment check built on it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..rates import gamma
from ..divergence import kl_divergence
from ..tree import TokenTree


Rho = Literal["rate_gap", "kl", "kl_reverse"]


def rho(*, p0: TokenTree, p0_prime: TokenTree, kind: Rho = "rate_gap", data: TokenTree | None = None) -> float:
    r"""Discrepancy :math:`\rho(p_0', p_0)` of Def. 3.6 (THEORY §4.6: a parameter, documented default).

    * ``"rate_gap"`` (default): :math:`|\gamma(p_0', D) - \gamma(p_0, D)|` bits per token on ``data``;
    * ``"kl"``: :math:`KL(p_0' \| p_0)` bits per response (the paper's "KL(model, base)");
    * ``"kl_reverse"``: :math:`KL(p_0 \| p_0')`.
    """
    if kind == "rate_gap":
        if data is None:
            raise ValueError("rho='rate_gap' compares rates on a dataset: pass data=")
        return abs(gamma(data=data, model=p0_prime) - gamma(data=data, model=p0))
    if kind == "kl":
        return kl_divergence(data=p0_prime, model=p0)
    if kind == "kl_reverse":
        return kl_divergence(data=p0, model=p0_prime)
    raise ValueError(f"rho must be 'rate_gap', 'kl' or 'kl_reverse', got {kind!r}")


@dataclass(frozen=True)
class InverseAlignment:
    """Outcome of Def. 3.6: ``elastic`` iff ``distance <= eps0`` and ``size_ratio <= max_size_ratio``."""

    distance: float
    eps0: float
    size_ratio: float
    max_size_ratio: float
    kind: str
    elastic: bool


def inverse_alignment(
    *,
    p0: TokenTree,
    p0_prime: TokenTree,
    eps0: float,
    size_b: float,
    size_a: float,
    kind: Rho = "rate_gap",
    data: TokenTree | None = None,
    max_size_ratio: float = 0.1,
) -> InverseAlignment:
    r"""Def. 3.6: :math:`(p_0, D_a)` is elastic if an operation with :math:`|D_b| \ll |D_a|` gives
    :math:`p_0'` with :math:`\rho(p_0', p_0) \le \varepsilon_0`.

    ":math:`\ll`" is made explicit as :math:`|D_b|/|D_a| \le` ``max_size_ratio`` (default 0.1).
    """
    if not (eps0 >= 0 and math.isfinite(eps0)):
        raise ValueError(f"eps0 must be finite and >= 0, got {eps0!r}")
    if not (size_b > 0 and size_a > 0):
        raise ValueError(f"dataset sizes must be > 0, got |D_b|={size_b!r}, |D_a|={size_a!r}")
    if not 0 < max_size_ratio <= 1:
        raise ValueError(f"max_size_ratio must be in (0, 1], got {max_size_ratio!r}")
    dist = rho(p0=p0, p0_prime=p0_prime, kind=kind, data=data)
    ratio = size_b / size_a
    return InverseAlignment(dist, float(eps0), ratio, max_size_ratio, kind, bool(dist <= eps0 and ratio <= max_size_ratio))
