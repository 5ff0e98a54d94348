r"""Intervals over seeds: every measured number in an experiment is a mean over seeds with a 95% interval.

With :math:`n` seeds giving values :math:`x_1..x_n` (independent runs that differ only in the seed),
the interval is Student's :math:`\bar x \pm t_{0.975, n-1}\, s/\sqrt n` (``s`` the sample standard
deviation). It assumes roughly normal per-seed values; with 3 seeds the t quantile is 4.30, so
intervals are wide on purpose. One seed gives no interval (``nan`` bounds), never a zero-width one.

A *paired* comparison (the same seed under two conditions, e.g. forward vs inverse alignment, or
small vs large alignment) uses the interval of the per-seed differences, which removes the
between-seed variance both conditions share.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SeedInterval", "error_bars", "format_interval", "paired_difference", "saved_number", "seed_interval"]


@dataclass(frozen=True)
class SeedInterval:
    """Mean over ``n`` seeds with the two-sided ``level`` Student-t interval ``(low, high)``."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)

    def excludes(self, value: float = 0.0) -> bool:
        """True if the interval lies strictly on one side of ``value`` (False without an interval)."""
        return bool(self.low > value or self.high < value)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.4g} (1 seed, no interval)"
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


def seed_interval(values, level: float = 0.95) -> SeedInterval:
    r"""Mean of the per-seed ``values`` and its Student-t interval :math:`\bar x \pm t_{(1+level)/2,n-1} s/\sqrt n`.

    Raises ``ValueError`` for no values, a non-finite value (a diverged run must be reported, not
    averaged away) or a level outside (0, 1).
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("seed_interval needs at least one per-seed value, got none")
    if not np.isfinite(x).all():
        i = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"per-seed value {i} is {float(x[i])!r}; a diverged or undefined run must be reported, not averaged")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    mean = float(x.mean())
    if x.size < 2:
        return SeedInterval(mean, math.nan, math.nan, 1, level)
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return SeedInterval(mean, mean - half, mean + half, int(x.size), level)


def paired_difference(a, b, level: float = 0.95) -> SeedInterval:
    """Interval of the per-seed differences ``a[i] - b[i]`` (same seed, two conditions)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"a paired comparison needs one value per seed in both conditions, got {a.size} and {b.size}")
    return seed_interval(a - b, level)


def saved_number(value) -> float:
    """A number read back from a saved ``results.json``, as a float.

    :func:`elastic_theory.data.io.to_jsonable` writes every non-finite value (an infinite ratio, the nan bounds
    of a one-seed interval) as ``null``, with its kind in the file's top-level ``non_finite`` map; ``null``
    reads back as nan (the map is not consulted), so every saved number can be formatted or plotted the same
    way. A number (results as ``run`` returns them, infinities included) passes through as a float.
    """
    return math.nan if value is None else float(value)


def format_interval(saved: dict | None, digits: int = 3) -> str:
    """``mean [low, high]`` of a saved :meth:`SeedInterval.as_dict` (``n/a`` for None, the mean alone for 1 seed)."""
    if saved is None:
        return "n/a"
    mean = saved_number(saved["mean"])
    if saved["n"] < 2:
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} [{saved_number(saved['low']):.{digits}g}, {saved_number(saved['high']):.{digits}g}]"


def error_bars(saved: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Means and matplotlib ``yerr`` (2 x n, zero where a point has no interval) of saved intervals."""
    mean = np.array([saved_number(d["mean"]) for d in saved])
    low = np.array([saved_number(d["low"]) for d in saved])
    high = np.array([saved_number(d["high"]) for d in saved])
    return mean, np.nan_to_num(np.vstack([mean - low, high - mean]))
