"""Claims about float64 precision: closed forms against mpmath, and where plain finite differences fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..theory import highprec
from .registry import Evidence, Worst, register


def _digits_evidence(rows, attr: str, summary: Callable[[Any], str]) -> Evidence:
    """Relative error 10^-digits of each precision-table row against the 10-digit promise (tolerance 1e-10).

    ``details["rows"]`` keeps the whole table (``verify --plots`` draws precision.png from it).
    """
    worst = Worst()
    for r in rows:
        worst.record(10.0 ** -getattr(r, attr), 1e-10, lambda: dict(r.__dict__))
    return worst.evidence(summary(min(rows, key=lambda r: getattr(r, attr))), {"rows": [r.__dict__ for r in rows]})


@register(
    "highprec_closed_forms",
    "The float64 closed forms give d gamma/dl to >= 10 significant digits for k <= 1e9, l >= 1e-9",
    "THEORY §2 Numerics (mpmath reference)",
    "holds",
)
def _highprec(rng: np.random.Generator) -> Evidence:
    return _digits_evidence(
        highprec.precision_table(), "closed_form_digits",
        lambda w: f"closed forms agree with mpmath (50 digits) to >= {w.closed_form_digits:.1f} digits",
    )


@register(
    "float64_finite_differences",
    "Plain float64 central differences of the rates give d gamma/dl to >= 10 digits for k <= 1e9",
    "THEORY §2 Numerics",
    "fails",
)
def _float64_fd(rng: np.random.Generator) -> Evidence:
    return _digits_evidence(
        highprec.precision_table(), "finite_difference_digits",
        lambda w: f"worst: {w.quantity} at k = {w.k:.0e}, l = {w.l:.0e}: {w.finite_difference_digits:.1f} digits "
                  f"({w.finite_difference:.3e} vs {float(w.reference):.3e})",
    )
