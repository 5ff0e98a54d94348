r"""Fieller's confidence set for a ratio :math:`N/D` of two (approximately normal) estimates.

With estimates :math:`\hat N, \hat D`, their covariance :math:`v` and a critical value :math:`q` (the normal
:math:`z = \Phi^{-1}((1+level)/2)`, or Student's :math:`t_{(1+level)/2,\nu}` when the variances are estimated
from :math:`\nu + 1` documents or seeds), the set of :math:`r` not rejected by the test of
:math:`N - rD = 0` is

.. math:: \{r : (\hat N - r\hat D)^2 \le q^2 (v_{NN} - 2 r v_{ND} + r^2 v_{DD})\} = \{r : a r^2 + b r + c \le 0\},

:math:`a = \hat D^2 - q^2 v_{DD}`, :math:`b = -2(\hat N\hat D - q^2 v_{ND})`, :math:`c = \hat N^2 - q^2 v_{NN}`.
Its shape follows from :math:`a` and the discriminant :math:`b^2 - 4ac`:

* :math:`a > 0` (the denominator is resolved from 0 at the same level): the interval between the roots;
* :math:`a < 0` and :math:`b^2 > 4ac`: two rays, :math:`r \le r_1` or :math:`r \ge r_2` (the roots, :math:`r_1 < r_2`).
  The ratio may be arbitrarily large of either sign, but :math:`r_1 < R < r_2` is excluded: with a clearly
  positive numerator and a denominator not resolved from 0, the rays say :math:`|R|` is at least about
  :math:`\hat N / (q\sqrt{v_{DD}})`;
* otherwise the whole line (nothing is excluded).

The roots are taken in the cancellation-free form :math:`q_0 = -\tfrac12(b + \operatorname{sign}(b)\sqrt{b^2-4ac})`,
:math:`r = q_0/a` and :math:`r = c/q_0`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FiellerSet", "fieller_interval", "fieller_set"]


@dataclass(frozen=True)
class FiellerSet:
    """Fieller's set: ``kind`` ``"interval"`` (``lo <= R <= hi``), ``"rays"`` (``R <= lo`` or ``R >= hi``) or
    ``"line"`` (every R; ``lo`` and ``hi`` are nan)."""

    kind: str
    lo: float
    hi: float

    def describe(self, digits: int = 3) -> str:
        """The set in words: ``[lo, hi]``, ``R <= lo or R >= hi``, or ``any R``."""
        if self.kind == "interval":
            return f"[{self.lo:.{digits}g}, {self.hi:.{digits}g}]"
        if self.kind == "rays":
            return f"R <= {self.lo:.{digits}g} or R >= {self.hi:.{digits}g}"
        return "any R"


def _critical_value(level: float, df: float | None) -> float:
    from scipy.stats import norm, t

    p = (1.0 + level) / 2
    return float(norm.ppf(p) if df is None else t.ppf(p, df))


def fieller_set(numerator: float, denominator: float, covariance: np.ndarray, level: float = 0.95,
                df: float | None = None) -> FiellerSet:
    r"""Fieller's set for :math:`N/D` (module docstring): an interval, two rays or the whole line.

    ``df``: degrees of freedom of the variance estimates (Student's critical value); None: the normal one.

    >>> fieller_set(10.0, 2.0, np.diag([1.0, 0.01])).kind
    'interval'
    >>> s = fieller_set(10.0, 0.1, np.diag([1.0, 0.01]))
    >>> s.kind, s.lo < 0 < 10 < s.hi
    ('rays', True)
    >>> fieller_set(0.5, 0.1, np.diag([1.0, 0.01])).kind
    'line'
    """
    q2 = _critical_value(level, df) ** 2
    v = np.asarray(covariance, dtype=np.float64)
    a = denominator**2 - q2 * v[1, 1]
    b = -2.0 * (numerator * denominator - q2 * v[0, 1])
    c = numerator**2 - q2 * v[0, 0]
    disc = b * b - 4 * a * c
    if not a > 0 and not (a < 0 and disc > 0):
        return FiellerSet("line", math.nan, math.nan)
    root = math.sqrt(max(disc, 0.0))  # >= 0 whenever a > 0 and v is positive semi-definite; rounding guarded
    q = -0.5 * (b + math.copysign(root, b))
    r1 = q / a
    r2 = c / q if q != 0 else r1
    return FiellerSet("interval" if a > 0 else "rays", float(min(r1, r2)), float(max(r1, r2)))


def fieller_interval(
    numerator: float, denominator: float, covariance: np.ndarray, level: float = 0.95, df: float | None = None
) -> tuple[float, float] | None:
    r"""Fieller's interval for :math:`N/D` from estimates ``numerator``, ``denominator`` and their 2x2 ``covariance``.

    The set :math:`\{r : (N - rD)^2 \le q^2 (v_{NN} - 2 r v_{ND} + r^2 v_{DD})\}` with
    :math:`q = \Phi^{-1}((1+level)/2)` (Student's :math:`t_{(1+level)/2,df}` with ``df``). Returns ``(lo, hi)``
    when :math:`D^2 > q^2 v_{DD}` (the denominator is resolved from 0), else None (the set is unbounded:
    :func:`fieller_set` says whether it is two rays or the whole line).

    >>> lo, hi = fieller_interval(10.0, 2.0, np.diag([1.0, 0.01]))
    >>> round(lo, 3) < 5.0 < round(hi, 3)
    True
    >>> fieller_interval(10.0, 0.1, np.diag([1.0, 0.01])) is None
    True
    """
    s = fieller_set(numerator, denominator, covariance, level, df)
    return (s.lo, s.hi) if s.kind == "interval" else None
