"""Small statistics shared by the synthetic experiments: means with Student-t intervals over seeds.

:func:`mean_ci95` computes through :func:`elastic_theory.stats.seedstats.seed_interval` but returns
``(mean, [low, high])`` rather than a :meth:`~elastic_theory.stats.seedstats.SeedInterval.as_dict`: the
joint-ratio and sequential-ratio results save it under ``*_ci95`` keys, and the keys and values of a saved
``results.json`` are a public format (read back by ``plot``, reports and users' scripts), so it stays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..stats.seedstats import seed_interval

__all__ = ["SIGN_OUTCOMES", "format_ci", "mean_ci95", "ratio_of_changes", "sign_outcome"]

#: A seed's outcome of one measured change: the theorem says gamma_a rises and gamma_p falls ("both right").
SIGN_OUTCOMES = ("both right", "gamma_a wrong", "gamma_p wrong", "both wrong")


def sign_outcome(delta_align: float, delta_pretrain: float) -> str:
    """Which of :data:`SIGN_OUTCOMES` the changes show: right means Delta gamma_a > 0 (resp. Delta gamma_p < 0);
    a change of exactly 0 (or nan) is not the predicted sign.

    Kills: a check that looks only at the ratio's sign (both rates wrong gives a positive ratio too)."""
    a_wrong, p_wrong = not delta_align > 0, not delta_pretrain < 0
    return SIGN_OUTCOMES[a_wrong + 2 * p_wrong]


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


def format_ci(ci: Sequence[float] | None, digits: int) -> str:
    """``[low, high]`` of an interval as :func:`mean_ci95` gives it, to ``digits`` significant digits; ``n/a`` for None."""
    return "n/a" if ci is None else f"[{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]"


def ratio_of_changes(delta_align: float, delta_pretrain: float) -> float:
    r"""The measured ratio :math:`R = \Delta\gamma_a / (-\Delta\gamma_p)`; infinite when :math:`\Delta\gamma_p` is 0."""
    return delta_align / -delta_pretrain if delta_pretrain != 0 else math.inf
