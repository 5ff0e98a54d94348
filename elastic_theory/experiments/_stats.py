"""Small statistics shared by the experiments: means with Student-t intervals over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..stats.seedstats import seed_interval

__all__ = ["mean_ci95"]


def mean_ci95(values: Sequence[float]) -> tuple[float, list[float] | None]:
    r"""Mean and two-sided 95% Student-t interval :math:`\bar x \pm t_{0.975, n-1} s/\sqrt n` over the finite seeds.

    The interval is :func:`elastic_theory.stats.seedstats.seed_interval` of the finite values. Non-finite
    per-seed values (a ratio whose denominator is exactly 0) are left out of the mean; callers keep
    every per-seed value next to it (``R_per_seed``, ``n_seeds``) so a left-out seed stays visible.
    The interval is ``None`` for fewer than 2 finite values (no spread to estimate); the mean is
    ``nan`` for none.
    """
    xs = [float(v) for v in values if math.isfinite(float(v))]
    if not xs:
        return math.nan, None
    s = seed_interval(xs)
    return s.mean, (None if s.n < 2 else [s.low, s.high])
