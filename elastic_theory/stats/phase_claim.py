r"""When a curve's phase order is claimed: two grids, the chosen model, a false-discovery correction, and the whole
rule calibrated by simulation.

Built on :mod:`~elastic_theory.stats.phases` (fits in :math:`t = \ln(1 + n)`, so :math:`n = 0` is a point of the
curve, 1-3 phases with free knots, chosen by BIC with a bootstrap check) and
:mod:`~elastic_theory.stats.phase_order` (the order test, Benjamini-Hochberg, the steepest phase).

**Two grids** (:func:`order_on_grids`). A curve (seeds pooled, ``groups`` = the seed) is tested on the *full* grid of
amounts and on *every other* amount (:func:`every_other`: positions 0, 2, 4, ... of the distinct amounts, the last
one kept, so both grids span the same range and start at :math:`n = 0`). On each grid: the BIC choice of the
number of phases (at most what the grid supports, :func:`max_phases`) with its residual-bootstrap stability, and
the order test of the chosen fit. A grid too coarse for two phases gives no test.

**The claim** (:func:`claim`). An order is claimed only when *both* grids choose more than one phase, their chosen
fits name the same order (:func:`~elastic_theory.stats.phases.pattern_of`, e.g. ``fast-slow``) and both p-values
are at most the level; otherwise "no order". An order that appears on one grid only is what a fit confined to one
window reports (the artefact this rule is against), so it is not claimed.

**Several curves** (:func:`claim_orders`). Every p-value of a run (curves x grids, the family of :math:`m` tests)
goes into one Benjamini-Hochberg adjustment; a curve's order is claimed when its adjusted p-values on both grids
are at most :math:`q`.

**Calibration** (:func:`calibrate_claims`). The rule is simulated on the run's own design (the full grid's amounts,
the same seeds per amount, whole seed curves resampled, the same number of resamples). BH's adjusted p is at
least the raw p, and every raw :math:`p \le q/m` is rejected whatever the other p-values, so per curve
:math:`P(\text{claim at } q/m) \le P(\text{claim under BH}) \le P(\text{claim at } q)`: the *size* reported is the
claim rate on straight lines at :math:`q` (an upper bound of a straight curve's chance of a false claim), the
*power* the rate of claiming the true ``fast-slow`` at :math:`q/m` (a lower bound) and at :math:`q` (an upper
bound). The alternative is the paper's shape: a curve with the measured curve's overall drop per e-fold
:math:`d` (the one-phase fit's), falling at :math:`1.5d` before a knot at the middle amount of the grid (in
:math:`t`) and :math:`0.5d` after it.

**The noise of the simulation** (:func:`noise_components`) is the data's, in two parts, because the seeds' curves
differ mostly by an offset: with :math:`D_{sn} = y_{sn} - \bar y_{\cdot n}` (seed :math:`s` of :math:`S`, amount
:math:`n` of :math:`L`), the seed offsets :math:`o_s = \bar D_{s\cdot}` and the rest
:math:`W_{sn} = D_{sn} - o_s`, the two-way random-effects estimates are
:math:`\hat\sigma^2 = \sum W^2/((S-1)(L-1))` (point noise) and
:math:`\hat\tau^2 = \max(0, \sum_s o_s^2/(S-1) - \hat\sigma^2/L)` (seed offsets). A simulated seed curve is the
mean curve plus :math:`\tau` times one normal draw plus :math:`\sigma` times one per point. An offset shared by a
seed's points moves the pooled fit's intercept only (every seed has every amount), but it enters the residuals,
so it makes BIC choose fewer phases; iid noise of the total spread instead would understate the power. Size is
simulated per curve: it does not depend on the noise scale, the line or the mean curve (the BIC choice and the
p-value are unchanged when a line is added to the scores or they are scaled), but it does on
:math:`\tau/\sigma`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .phase_order import (PhaseOrderTest, SteepestDrop, _order_tests, _wilson, benjamini_hochberg,
                          phase_order_test, steepest_drop)
from .phases import MAX_PHASES, PhaseSelection, _check, _group_order, fit_phases, select_phases

__all__ = ["ClaimCalibration", "CurveOrder", "GridOrder", "calibrate_claims", "claim", "claim_orders",
           "every_other", "max_phases", "noise_components", "order_on_grids"]

GRIDS = ("full", "every_other")
NO_ORDER = "no order"


def every_other(amounts) -> tuple[float, ...]:
    """The distinct amounts at positions 0, 2, 4, ... with the last one kept.

    >>> every_other([0, 64, 128, 256, 512, 1024, 2048, 4096])
    (0.0, 128.0, 512.0, 2048.0, 4096.0)
    """
    u = np.unique(np.asarray(amounts, dtype=np.float64))
    keep = list(u[::2]) + ([u[-1]] if u.size % 2 == 0 else [])
    return tuple(float(v) for v in keep)


def max_phases(distinct: int, points: int) -> int:
    """The most phases (at most 3) a design supports: P phases need P + 1 distinct amounts and 2P + 2 points."""
    return max(0, min(MAX_PHASES, distinct - 1, (points - 2) // 2))


@dataclass(frozen=True)
class GridOrder:
    """One grid's BIC choice (with its bootstrap stability) and order test; ``test`` is None on a grid too coarse
    for two phases."""

    name: str
    amounts: tuple[float, ...]
    selection: PhaseSelection
    test: PhaseOrderTest | None

    def as_dict(self) -> dict:
        """The grid, the chosen fit (phases, stability, every fit) and the test, for a results file."""
        return {"amounts": list(self.amounts), "selection": self.selection.as_dict(),
                "test": None if self.test is None else self.test.as_dict()}


@dataclass(frozen=True)
class CurveOrder:
    """A curve on both grids, its bias-corrected steepest phase (full grid, chosen number of phases), its overall
    drop per e-fold of :math:`1 + n` (one line, full grid) and its noise: the point noise ``noise_sd`` and the
    seed offsets' ``offset_sd`` (:func:`noise_components`; NaN without seeds)."""

    grids: dict[str, GridOrder]
    steepest: SteepestDrop
    line_drop: float
    noise_sd: float
    offset_sd: float

    @property
    def p_values(self) -> list[float]:
        """The raw p-values of the grids that have a test, in :data:`GRIDS` order."""
        return [g.test.p_value for g in self.grids.values() if g.test is not None]


def claim(patterns, p_values, level: float) -> str:
    """The order claimed from one curve's grids: the common pattern of their chosen fits when there are two grids
    with a test, every pattern is the same and not ``single``, and every p-value is at most ``level``; else
    ``"no order"`` (module docstring)."""
    patterns, p_values = list(patterns), list(p_values)
    if len(patterns) < 2 or len(set(patterns)) != 1 or patterns[0] == "single":
        return NO_ORDER
    return patterns[0] if all(p <= level for p in p_values) else NO_ORDER


def _subset(amounts: np.ndarray, y: np.ndarray, groups, grid) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    keep = np.isin(amounts, grid)
    return amounts[keep], y[keep], None if groups is None else np.asarray(groups).reshape(-1)[keep]


def order_on_grids(amounts, y, *, groups=None, n_resamples: int = 999, rng: np.random.Generator) -> CurveOrder:
    r"""Both grids of one curve (module docstring): amounts :math:`n \ge 0` (the seeds' points pooled, ``groups`` the
    seed of each point), scores ``y``."""
    _check(amounts, y)
    n, y = np.asarray(amounts, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    grids = {}
    for name, grid in zip(GRIDS, (tuple(float(v) for v in np.unique(n)), every_other(n))):
        a, v, g = _subset(n, y, groups, grid)
        top = max_phases(len(grid), a.size)
        if top < 1:
            raise ValueError(f"the {name} grid {list(grid)} holds {a.size} points: too few for one line")
        selection = select_phases(a, v, max_phases=top, n_bootstrap=n_resamples, rng=rng, groups=g)
        test = (phase_order_test(a, v, n_resamples=n_resamples, rng=rng, max_phases=top, groups=g)
                if top >= 2 else None)
        grids[name] = GridOrder(name, grid, selection, test)
    full = grids["full"].selection
    steepest = steepest_drop(n, y, phases=full.phases, n_resamples=n_resamples, rng=rng, groups=groups,
                             max_phases=full.phases)
    sigma, tau = noise_components(n, y, groups) if groups is not None else (math.nan, math.nan)
    return CurveOrder(grids, steepest, float(-fit_phases(n, y, 1).slopes[0]), sigma, tau)


def noise_components(amounts, y, groups) -> tuple[float, float]:
    r"""The point noise :math:`\hat\sigma` and the seed-offset spread :math:`\hat\tau` of curves measured by every
    seed (``groups``) at the same amounts (module docstring): two-way random-effects estimates."""
    n, y = np.asarray(amounts, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    order = _group_order(np.log1p(n), groups)
    S, L = order.shape
    if S < 2 or L < 2:
        raise ValueError(f"noise components need >= 2 seeds and >= 2 amounts, got {S} and {L}")
    D = y[order] - y[order].mean(axis=0)
    offsets = D.mean(axis=1)
    sigma2 = float(((D - offsets[:, None]) ** 2).sum()) / ((S - 1) * (L - 1))
    tau2 = max(0.0, float((offsets ** 2).sum()) / (S - 1) - sigma2 / L)
    return math.sqrt(sigma2), math.sqrt(tau2)


def claim_orders(curves: list[CurveOrder], q: float = 0.05) -> tuple[list[dict], int]:
    """Benjamini-Hochberg over every p-value of ``curves`` (all grids); per curve the adjusted p-value of each grid
    (None without a test) and the claimed order (module docstring). Returns the per-curve entries and the family
    size :math:`m`."""
    raw = [p for c in curves for p in c.p_values]
    adjusted = iter(benjamini_hochberg(raw, q).p_adjusted) if raw else iter(())
    out = []
    for c in curves:
        adj = {name: (None if g.test is None else next(adjusted)) for name, g in c.grids.items()}
        tested = [name for name in adj if adj[name] is not None]
        verdict = claim([c.grids[name].test.pattern for name in tested], [adj[name] for name in tested], q)
        out.append({"p_adjusted": adj, "claim": verdict})
    return out, len(raw)


@dataclass(frozen=True)
class ClaimCalibration:
    """Size and power of the claim rule on one design (module docstring), with 95% Wilson intervals; the power
    fields are None where the alternative is undefined (no replicate spread, or no overall drop)."""

    size: float
    size_ci: tuple[float, float]
    power_low: float | None
    power_low_ci: tuple[float, float] | None
    power_high: float | None
    power_high_ci: tuple[float, float] | None
    q: float
    family: int
    sigma: float
    offset_sd: float
    drop: float
    knot_amount: float
    n_curves: int
    n_resamples: int

    def as_dict(self) -> dict:
        """The fields, for a results file (intervals as lists)."""
        out = dict(self.__dict__)
        for key in ("size_ci", "power_low_ci", "power_high_ci"):
            out[key] = None if out[key] is None else list(out[key])
        return out


def _claim_counts(levels: np.ndarray, seeds: int, mean: np.ndarray, noise: tuple[float, float], wanted: str | None,
                  thresholds, n_curves: int, n_resamples: int, rng: np.random.Generator) -> list[int]:
    """How many of ``n_curves`` simulated curves (``mean`` on the tiled design plus the point noise and seed offsets
    ``noise``) the rule claims at each threshold: any order (``wanted`` None) or exactly ``wanted``."""
    sigma, tau = noise
    offsets = np.repeat(rng.standard_normal((n_curves, seeds)), levels.size, axis=1)
    Y = mean + sigma * rng.standard_normal((n_curves, levels.size * seeds)) + tau * offsets
    designs = []
    for grid in (levels, np.log1p(np.array(every_other(np.expm1(levels))))):
        cols = np.flatnonzero(np.isin(np.tile(np.arange(levels.size), seeds),
                                      np.flatnonzero(np.isclose(levels[:, None], grid).any(axis=1))))
        designs.append((cols, max_phases(grid.size, cols.size)))
    if min(top for _, top in designs) < 2:  # a grid without an order test: the rule never claims
        return [0 for _ in thresholds]
    tests = [_order_tests(np.tile(levels, seeds)[cols], Y[:, cols], n_resamples, rng, top,
                          np.arange(cols.size).reshape(seeds, -1)) for cols, top in designs]
    counts = []
    for level in thresholds:
        verdicts = [claim([x.pattern for x in pair], [x.p_value for x in pair], level) for pair in zip(*tests)]
        counts.append(sum(v != NO_ORDER and (wanted is None or v == wanted) for v in verdicts))
    return counts


def calibrate_claims(amounts, *, seeds: int, sigma: float, offset_sd: float = 0.0, drop: float, q: float = 0.05,
                     family: int, n_curves: int = 200, n_resamples: int = 999,
                     rng: np.random.Generator) -> ClaimCalibration:
    r"""Size and power of the claim rule on the design ``amounts`` (distinct, :math:`n \ge 0`) x ``seeds``
    (module docstring): ``sigma`` the point noise, ``offset_sd`` the seed offsets' spread, ``drop`` the overall drop
    per e-fold, ``family`` the number of tests in the run's Benjamini-Hochberg family. Without noise (``sigma``
    not > 0) or without a drop the power is None."""
    levels = np.unique(_check(amounts, amounts)[0])
    t = np.tile(levels, int(seeds))
    if not offset_sd >= 0:
        raise ValueError(f"offset_sd must be >= 0, got {offset_sd!r}")
    noisy = sigma > 0 and math.isfinite(sigma)
    noise = (sigma, offset_sd) if noisy else (1.0, 0.0)
    count = _claim_counts(levels, seeds, np.zeros_like(t), noise, None, (q,), n_curves, n_resamples, rng)[0]
    knot = float(levels[levels.size // 2])
    power: list = [None, None, None, None]
    if noisy and drop != 0:
        d = abs(drop)
        mean = -(1.5 * d * np.minimum(t - knot, 0) + 0.5 * d * np.maximum(t - knot, 0))
        low, high = _claim_counts(levels, seeds, mean, noise, "fast-slow", (q / family, q), n_curves, n_resamples,
                                  rng)
        power = [low / n_curves, _wilson(low, n_curves), high / n_curves, _wilson(high, n_curves)]
    return ClaimCalibration(count / n_curves, _wilson(count, n_curves), *power, q=float(q), family=int(family),
                            sigma=float(sigma), offset_sd=float(offset_sd), drop=float(drop),
                            knot_amount=float(math.expm1(knot)), n_curves=int(n_curves), n_resamples=int(n_resamples))
