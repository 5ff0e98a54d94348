r"""Sums that cancel, computed to a stated relative precision: float64 first, then mpmath at a working precision
that doubles until the error bound holds (the engine behind :class:`~elastic_theory.theory.elasticity.PerturbationModel`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..tolerances import EPS, roundings


#: Relative accuracy that every cancelling sum of the §2.1 model is computed to (before the final rounding).
#: A float64 sum of terms that each carry at most 16 eps relative error of their magnitude is within
#: 16 eps * sum(|magnitude|) of the exact sum, so float64 is kept while that is <= PRECISION * |sum| (a
#: condition number up to PRECISION / (16 eps) ~ 280); beyond, the sum is redone in mpmath from the trees'
#: stored weights at 20 + log10(condition number) digits, doubling the digits until the same bound holds.
PRECISION = 1e-12
_MAX_DPS = 640


@dataclass(frozen=True)
class _Backend:
    """Arithmetic for :meth:`PerturbationModel` sums: float64 arrays, or object arrays of ``mpmath.mpf``."""

    array: Callable[[np.ndarray], np.ndarray]
    scalar: Callable[[float], object]
    log1p: Callable[[np.ndarray], np.ndarray]
    scalar_log1p: Callable[[object], object]
    fsum: Callable[[np.ndarray], object]


_FLOAT = _Backend(lambda x: np.asarray(x, dtype=np.float64), float, np.log1p, math.log1p, lambda x: math.fsum(x.tolist()))


def _mp_backend() -> _Backend:
    import mpmath

    return _Backend(
        lambda x: np.array([mpmath.mpf(v) for v in np.asarray(x, dtype=np.float64).tolist()], dtype=object),
        mpmath.mpf, np.frompyfunc(mpmath.log1p, 1, 1), mpmath.log1p, lambda x: mpmath.fsum(x.tolist()),
    )


def _accurate_sum(evaluate: Callable[[_Backend], tuple[object, object]], use_float: bool = True, min_dps: int = 0) -> float:
    """``sum(terms)`` to :data:`PRECISION` relative, from ``evaluate(backend) -> (sum, sum of |terms'| magnitudes)``.

    ``evaluate`` computes the terms in the given arithmetic; each term's error must be at most a few (16) roundings
    of its magnitude. Float64 first; mpmath with more digits while the error bound exceeds PRECISION * |sum|. A
    float64 evaluation returning a non-finite value or magnitude (an overflow, or ``math.inf`` as the magnitude where
    a float64 intermediate fell below the normal range) goes straight to mpmath, which has neither limit; so does
    every evaluation with ``use_float=False``, starting at ``min_dps`` digits or more.
    """
    value, magnitude = evaluate(_FLOAT) if use_float else (math.nan, math.inf)
    # A float64 evaluation that overflowed, underflowed into subnormals or was refused (magnitude inf) is redone.
    if math.isfinite(value) and roundings(16) * magnitude <= PRECISION * abs(value):
        return float(value)
    import mpmath

    cond = magnitude / abs(value) if value and math.isfinite(magnitude / value) else 1.0 / EPS
    dps, zeros = max(20 + math.ceil(math.log10(max(cond, 1.0))), min_dps), int(value == 0)
    while True:
        with mpmath.workdps(dps):
            value, magnitude = evaluate(_mp_backend())
            # An exact 0 at two precisions (float64 counts) is the terms cancelling exactly (e.g. P = P_t everywhere).
            zeros = zeros + 1 if value == 0 else 0
            if 16.0 * mpmath.mpf(10) ** (1 - dps) * magnitude <= PRECISION * abs(value) or zeros == 2 or dps >= _MAX_DPS:
                return float(value)
        dps *= 2
