r"""Behaviour scores of the rebound experiment (paper §5.2, Fig. 4, Table 3), on two scales.

**Behaviour score.** For each held-out prompt :math:`x`, the model's probability of answering it
the aligned way, :math:`\pi(x) = \sum_{y \in A(x)} p(y \mid x)` (``A(x)`` the aligned responses to
``x``: the support of :math:`P_2` given the prompt). The score is the mean over prompts,
:math:`\bar\pi`, and its log-odds :math:`\operatorname{logit}\bar\pi = \ln(\bar\pi/(1-\bar\pi))`
(nats). The paper scores with a classifier and reports a probability-like score; the logit is a
monotone re-expression of the same number, so on one curve both scales order the points alike.

**Why the scale matters.** "The score falls faster after more alignment" compares *drops* of two
curves that start at different heights. The logit stretches the ends of [0, 1]: the same drop in
probability near 1 is a much larger drop in log-odds than near 1/2. So a comparison of drops can
flip between the scales (a toy run in the issue: 0.28 vs 0.20 in probability, 1.4 vs 2.7 in
log-odds). :func:`compare_drops` reports the paired comparison on both and says whether they agree.

**Data to revert** (Table 3's form). The amount of perturbation data after which
:math:`KL(p_n \| p_0)` (model after ``n`` perturbation examples vs the pre-trained model) first
falls to ``eps`` or below; between measured amounts, :math:`\ln KL` is interpolated linearly in
``n`` (KL decays roughly exponentially in the amount of data).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .seedstats import SeedInterval, paired_difference

__all__ = [
    "SCALES",
    "BehaviourScore",
    "DropComparison",
    "behaviour_score",
    "compare_drops",
    "data_to_revert",
    "first_crossing",
    "logit",
]

SCALES = ("probability", "log_odds")
"""The two scales every behaviour number is reported on."""


def logit(p) -> np.ndarray:
    """:math:`\\ln(p/(1-p))` in nats; ``+-inf`` at 1 and 0."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class BehaviourScore:
    """Mean aligned-response probability over ``n_prompts`` held-out prompts, and its log-odds (nats)."""

    probability: float
    log_odds: float
    n_prompts: int

    def on(self, scale: str) -> float:
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        return getattr(self, scale)

    def as_dict(self) -> dict:
        return asdict(self)


def behaviour_score(p_aligned) -> BehaviourScore:
    r"""Score from per-prompt aligned probabilities :math:`\pi(x) \in [0, 1]` (one per held-out prompt)."""
    p = np.asarray(p_aligned, dtype=np.float64).reshape(-1)
    if p.size == 0:
        raise ValueError("behaviour_score needs at least one held-out prompt, got none")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1 + 1e-12).all()):
        raise ValueError("per-prompt aligned probabilities must be in [0, 1]; check the model's normalization")
    mean = float(min(p.mean(), 1.0))
    return BehaviourScore(mean, float(logit(mean)), int(p.size))


@dataclass(frozen=True)
class DropComparison:
    """Paired comparison of drops (``large - small`` per seed) on both scales.

    ``faster_after_more`` per scale: ``True`` if the interval of the difference is above 0 (more
    alignment falls faster), ``False`` if below, ``None`` if it contains 0 (unresolved).
    """

    difference: dict[str, SeedInterval]
    faster_after_more: dict[str, bool | None]

    @property
    def scales_agree(self) -> bool:
        return len(set(self.faster_after_more.values())) == 1

    @property
    def verdict(self) -> str:
        p, lo = self.faster_after_more["probability"], self.faster_after_more["log_odds"]
        word = {True: "faster", False: "slower", None: "unresolved"}
        if p == lo:
            return f"{word[p]} after more alignment on both scales"
        return f"scale-dependent: {word[p]} in probability, {word[lo]} in log-odds"

    def as_dict(self) -> dict:
        return {
            "difference": {s: v.as_dict() for s, v in self.difference.items()},
            "faster_after_more": dict(self.faster_after_more),
            "scales_agree": self.scales_agree,
            "verdict": self.verdict,
        }


def compare_drops(drops_small: dict[str, list[float]], drops_large: dict[str, list[float]]) -> DropComparison:
    """Paired (per seed) comparison of drops after less (``small``) and more (``large``) alignment.

    Each argument maps every scale in :data:`SCALES` to per-seed drops (positive = the score fell).
    """
    diff, faster = {}, {}
    for scale in SCALES:
        if scale not in drops_small or scale not in drops_large:
            raise ValueError(f"compare_drops needs per-seed drops on the {scale!r} scale for both conditions")
        d = paired_difference(drops_large[scale], drops_small[scale])
        diff[scale] = d
        faster[scale] = None if not d.excludes(0.0) else bool(d.low > 0)
    return DropComparison(diff, faster)


def first_crossing(amounts, values, level: float, *, log: bool = False) -> float:
    r"""Smallest amount at which ``values`` (measured at increasing ``amounts`` >= 0) reach ``level`` or below.

    Returns the first amount if already there, ``inf`` if never, else the crossing of the values
    (of their natural log with ``log=True``; values must then be > 0) interpolated linearly in the
    amount between the bracketing points.
    """
    n = np.asarray(amounts, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if n.shape != v.shape or n.size == 0:
        raise ValueError(f"need one value per amount, got {n.size} amounts and {v.size} values")
    if (np.diff(n) <= 0).any() or (n < 0).any():
        raise ValueError("perturbation amounts must be >= 0 and strictly increasing")
    if not np.isfinite(v).all() or (log and (v < 0).any()):
        raise ValueError("values must be finite" + (" and >= 0" if log else ""))
    below = np.flatnonzero(v <= level)
    if below.size == 0:
        return math.inf
    j = int(below[0])
    if j == 0:
        return float(n[0])
    if log:
        a, b, target = math.log(v[j - 1]), math.log(max(v[j], np.finfo(np.float64).tiny)), math.log(level)
    else:
        a, b, target = v[j - 1], v[j], level
    return float(n[j - 1] + (a - target) / (a - b) * (n[j] - n[j - 1]))


def data_to_revert(amounts, kl, eps: float) -> float:
    r"""Smallest perturbation amount at which ``kl`` (:math:`KL(p_n\|p_0)` at each amount) reaches ``eps``.

    ``amounts`` increasing and >= 0. Returns the first measured amount if KL is already <= eps
    there, ``inf`` if it never gets there (say so: more perturbation is needed), and otherwise the
    crossing of :math:`\ln KL` interpolated linearly in the amount between the bracketing points.
    """
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be finite and > 0, got {eps!r}")
    return first_crossing(amounts, kl, eps, log=True)
