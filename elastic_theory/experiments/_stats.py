"""Small statistics shared by the synthetic experiments: means with Student-t intervals over seeds.

:func:`mean_ci95` computes through :func:`elastic_theory.stats.seedstats.seed_interval` but returns
``(mean, [low, high])`` rather than a :meth:`~elastic_theory.stats.seedstats.SeedInterval.as_dict`: the
joint-ratio and sequential-ratio results save it under ``*_ci95`` keys, and the keys and values of a saved
``results.json`` are a public format (read back by ``plot``, reports and users' scripts), so it stays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..stats.seedstats import seed_interval

__all__ = ["QUANTITY_SCALES", "SIGN_OUTCOMES", "amount_interval", "format_amount", "format_ci", "format_seed_count", "mean_ci95",
           "min_kl_per_seed", "quantity_interval", "ratio_of_changes", "seeds_as_units", "sign_outcome"]

#: A seed's outcome of one measured change: the theorem says gamma_a rises and gamma_p falls ("both right").
SIGN_OUTCOMES = ("both right", "gamma_a wrong", "gamma_p wrong", "both wrong")


def sign_outcome(delta_align: float, delta_pretrain: float) -> str:
    """Which of :data:`SIGN_OUTCOMES` the changes show: right means Delta gamma_a > 0 (resp. Delta gamma_p < 0);
    a change of exactly 0 (or nan) is not the predicted sign.

    Kills: a check that looks only at the ratio's sign (both rates wrong gives a positive ratio too)."""
    a_wrong, p_wrong = not delta_align > 0, not delta_pretrain < 0
    return SIGN_OUTCOMES[a_wrong + 2 * p_wrong]


#: The interval scale of each measured quantity (docs/experiments.md, "Intervals over seeds"): probabilities on the
#: logit scale, KLs on the log scale, scores in (-1, 1) on the artanh scale, margins and log-odds linear.
QUANTITY_SCALES = {"probability": "logit", "log_odds": "linear", "kl_to_pretrained_bits": "log",
                   "kl_bits_per_token": "log", "margin_per_token": "linear", "margin_per_response": "linear",
                   "refusal_rate": "logit", "sentiment": "artanh"}


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


def seeds_as_units(forward, inverse) -> dict:
    r"""Forward against inverse with the seed as the unit: ``forward[s, c]``, ``inverse[s, c]`` for seed ``s``, comparison ``c``.

    A seed's comparisons (resistance's checkpoint pairs) share its data, alignment run and checkpoints, so
    they are one unit: per seed the mean over its comparisons of :math:`F - I` (``mean_gap_per_seed``);
    ``inverse_lower_seeds`` counts the seeds whose mean is above 0 (inverse easier), ``every_comparison_seeds``
    those with :math:`I < F` in every comparison; ``independent_comparisons`` is the number of seeds, and
    ``sign_test_p`` the two-sided exact binomial probability of a count at least this far from n/2 when
    each seed is equally likely to go either way. ``seed_comparison_pairs`` keeps the count over (seed,
    comparison) cells, the form of the paper's 27/27, which is not a count of independent comparisons.
    """
    from scipy import stats

    f, i = np.atleast_2d(np.asarray(forward, dtype=np.float64)), np.atleast_2d(np.asarray(inverse, dtype=np.float64))
    if f.shape != i.shape or f.size == 0:
        raise ValueError(f"need forward and inverse losses of the same seeds and comparisons, got {f.shape} and {i.shape}")
    gap = (f - i).mean(axis=1)
    n, k = int(gap.size), int((gap > 0).sum())
    return {"independent_comparisons": n, "mean_gap_per_seed": gap.tolist(), "inverse_lower_seeds": k,
            "every_comparison_seeds": int((i < f).all(axis=1).sum()),
            "sign_test_p": float(stats.binomtest(k, n, 0.5).pvalue),
            "seed_comparison_pairs": f"{int((i < f).sum())}/{f.size}"}


def format_seed_count(count: dict) -> str:
    """One line for a table's header: the seed-level count of :func:`seeds_as_units`."""
    n = count["independent_comparisons"]
    return (f"inverse < forward (mean over a seed's pairs) in {count['inverse_lower_seeds']}/{n} seeds = {n} independent "
            f"comparisons (sign test p = {count['sign_test_p']:.2g}); in every pair in {count['every_comparison_seeds']}/{n} "
            f"seeds; in {count['seed_comparison_pairs']} (seed, pair) cells, which are not independent")


def quantity_interval(key: str, values, trials: int | None = None) -> dict:
    """The seed interval of the quantity ``key`` on its scale (:data:`QUANTITY_SCALES`), as a saved dict.

    ``trials``: a counted rate's number of items (a refusal rate over m prompts), for the empirical logit.
    """
    if key not in QUANTITY_SCALES:
        raise ValueError(f"no interval scale for the quantity {key!r}; known: {', '.join(QUANTITY_SCALES)}")
    scale = QUANTITY_SCALES[key]
    return seed_interval(values, scale=scale, trials=trials if scale == "logit" else None).as_dict()


def amount_interval(values) -> dict | None:
    """Interval of an amount of data (e.g. examples until the score is back at the base's) on the log scale.

    ``None`` when a seed never got there (``inf``) or got there at once (0: the log scale has no room for it,
    and a raw interval of such amounts runs below 0, "4 [-46.8, 54.8]"); the per-seed values say which.
    """
    v = [float(x) for x in values]
    return seed_interval(v, scale="log").as_dict() if v and all(math.isfinite(x) and x > 0 for x in v) else None


def format_amount(saved: dict | None, per_seed, digits: int = 3) -> str:
    """An :func:`amount_interval` cell: the interval, or (none: a seed at 0 or never there) the per-seed amounts."""
    from ..stats.seedstats import format_interval, saved_number

    if saved is not None:
        return format_interval(saved, digits)
    values = [saved_number(v) for v in per_seed]  # a saved results.json holds never (inf) as null
    if not any(math.isfinite(v) for v in values):
        return "never"
    return "per seed " + ", ".join("never" if not math.isfinite(v) else f"{v:.{digits}g}" for v in values)


def min_kl_per_seed(kl_curves) -> list[float]:
    """Per seed, the smallest KL to the reference on its curve, the first point (no perturbation data) included.

    The one definition of "min KL" (docs/experiments.md): the minimum over the same points that
    :func:`~elastic_theory.stats.behaviour.data_to_revert` searches, so min KL <= eps exactly when data to
    revert is finite.
    """
    return [float(min(curve)) for curve in kl_curves]
