"""Small statistics shared by the experiments: means with Student-t intervals over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean_ci95"]


def mean_ci95(values: Sequence[float]) -> tuple[float, list[float] | None]:
    r"""Mean and two-sided 95% Student-t interval :math:`\bar x \pm t_{0.975, n-1} s/\sqrt n` over seeds.

    The interval is ``None`` for fewer than 2 finite values (no spread to estimate). It assumes the
    per-seed values are independent and roughly normal; with 3 seeds, :math:`t_{0.975,2} = 4.30`.
    """
    from scipy import stats

    xs = [float(v) for v in values if math.isfinite(float(v))]
    if not xs:
        return math.nan, None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    half = float(stats.t.ppf(0.975, len(xs) - 1)) * sd / math.sqrt(len(xs))
    return mean, [mean - half, mean + half]
