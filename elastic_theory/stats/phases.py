r"""Phases of a curve: continuous piecewise-linear fits in :math:`t = \ln(1 + n)` with 1, 2 or 3 phases, chosen by BIC.

A rebound curve is a behaviour score :math:`y` measured after fine-tuning on :math:`n \ge 0` examples. With
:math:`P` phases and knots :math:`k_1 < \dots < k_{P-1}` (free, in :math:`t`), the model is

.. math:: y = a + b_1 t + \sum_{j=1}^{P-1} (b_{j+1} - b_j)\,(t - k_j)_+ + \varepsilon,

continuous at every knot, slope :math:`b_j` (per unit of :math:`t`, one e-fold of :math:`1 + n`) in phase
:math:`j`. The drop per e-fold of phase :math:`j` is :math:`d_j = -b_j`.

**Why** :math:`\ln(1 + n)` **and not** :math:`\ln n`: the curve starts at :math:`n = 0` (the model before any
fine-tuning), where :math:`\ln n` is :math:`-\infty`; dropping that point throws away the start of the fall,
the part a "fast first" claim is about. :math:`\ln(1+n)` is 0 there and differs from :math:`\ln n` by less
than :math:`1/n` elsewhere (under 0.016 for :math:`n \ge 64`), so slopes keep their per-e-fold meaning.

**Fit.** For fixed knots the model is linear, so the knots minimize the profiled residual sum of squares
(RSS). The search places each knot at a distinct data value of :math:`t` or inside a gap between two adjacent
ones; inside a gap the best knot has a closed form (:class:`_Placements`), so the search is a grid of knot
positions refined to step zero and returns the exact least-squares fit, not a grid point near it. Each phase
:math:`[k_{j-1}, k_j]` (with :math:`k_0 = \min t`, :math:`k_P = \max t`, closed) must hold at least two
distinct :math:`t` values, so no slope rests on one point; the knots may be anywhere else in the data range
(no fixed window).

**Choice of the number of phases: BIC.** With Gaussian errors of unknown variance,
:math:`\mathrm{BIC} = n \ln(2\pi\,\mathrm{RSS}/n) + n + p \ln n`, :math:`p = 2 + 2(P - 1)` (intercept, first
slope, and per knot its position and slope change; the variance, shared by every model, is not counted).
BIC, not AIC: it is consistent (the probability of choosing the true number of phases tends to 1), and its
penalty of :math:`2 \ln n` per knot (7.4 at :math:`n = 40`) guards against the free knot's extra freedom,
which makes the likelihood ratio of a spurious knot larger than a regular :math:`\chi^2_2`; AIC's 4 per
knot chooses spurious phases far more often. An RSS below the rounding floor
:math:`64 (n + 8)\,\varepsilon\,\mathrm{TSS}` counts as that floor, so exact fits tie and the simpler wins.

**Is the choice stable?** :func:`select_phases` with ``n_bootstrap`` > 0 refits residual-bootstrap curves
(the chosen fit plus its residuals drawn with replacement, scaled by :math:`\sqrt{n/(n-p)}`) and reports
the fraction that choose the same :math:`P`. The design (the :math:`n` grid) is the experimenter's, so
residuals are resampled, not cases (a case resample drops grid points and can leave a phase one point).
With ``groups`` (the seed of each point) whole residual curves are drawn, keeping the correlation of the
points of one run.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

from .._validation import check_curve
from ..theory.tolerances import EPS

__all__ = ["PhaseFit", "PhaseSelection", "fit_phases", "pattern_of", "select_phases"]

MAX_PHASES = 3
_CHUNK = 512  # curves per batch: 512 x placements x points residuals, about 7 MB for 41 placements x 40 points


@dataclass(frozen=True)
class PhaseFit:
    r"""A fitted continuous piecewise-linear curve in :math:`t = \ln(1 + n)`: slopes per phase, knots in :math:`t`."""

    phases: int
    intercept: float
    slopes: tuple[float, ...]
    knots: tuple[float, ...]
    rss: float
    bic: float
    n: int

    @property
    def drops(self) -> tuple[float, ...]:
        """Drop per e-fold of :math:`1 + n` in each phase (minus the slope)."""
        return tuple(-b for b in self.slopes)

    @property
    def knot_amounts(self) -> tuple[float, ...]:
        """The knots in data units, :math:`n = e^k - 1`."""
        return tuple(math.expm1(k) for k in self.knots)

    @property
    def pattern(self) -> str:
        """The phases named by their drops (see :func:`pattern_of`), e.g. ``"slow-fast-slow"``."""
        return pattern_of(self.drops)

    def predict(self, amounts) -> np.ndarray:
        """The fitted curve at data amounts ``amounts`` (>= 0)."""
        t = np.log1p(np.asarray(amounts, dtype=np.float64))
        return _basis(t, self.knots) @ _coefficients(self.intercept, self.slopes)

    def as_dict(self) -> dict:
        """The fields, the drops, the knots in data units and the pattern, for a results file."""
        return {**asdict(self), "slopes": list(self.slopes), "knots": list(self.knots), "drops": list(self.drops),
                "knot_amounts": list(self.knot_amounts), "pattern": self.pattern}


def pattern_of(drops) -> str:
    """Name each phase by its drop: the first ``slow`` if the next phase drops faster, else ``fast``; each later one
    ``fast`` if it drops faster than the phase before it, else ``slow``. One phase is ``"single"``."""
    d = [float(v) for v in drops]
    if len(d) == 1:
        return "single"
    names = ["slow" if d[1] > d[0] else "fast"]
    names += ["fast" if d[j] > d[j - 1] else "slow" for j in range(1, len(d))]
    return "-".join(names)


@dataclass(frozen=True)
class PhaseSelection:
    """Fits with 1 .. ``max_phases`` phases, the number chosen by BIC and the bootstrap stability of that choice."""

    fits: tuple[PhaseFit, ...]
    phases: int
    stability: float | None
    n_bootstrap: int

    @property
    def best(self) -> PhaseFit:
        """The chosen fit."""
        return self.fits[self.phases - 1]

    def as_dict(self) -> dict:
        """The chosen number, its stability and every fit, for a results file."""
        return {"phases": self.phases, "stability": self.stability, "n_bootstrap": self.n_bootstrap,
                "pattern": self.best.pattern, "fits": [f.as_dict() for f in self.fits]}


def _basis(t: np.ndarray, knots) -> np.ndarray:
    """Columns ``1, t, (t - k_1)_+, ...`` at the points ``t``."""
    return np.column_stack([np.ones_like(t), t, *(np.maximum(t - k, 0.0) for k in knots)])


def _slope_map(phases: int) -> np.ndarray:
    """``L`` with ``slopes = L @ coef[1:]``: phase j's slope is the t coefficient plus the first j - 1 changes."""
    return np.tril(np.ones((phases, phases)))


def _coefficients(intercept: float, slopes) -> np.ndarray:
    b = np.asarray(slopes, dtype=np.float64)
    return np.concatenate([[intercept, b[0]], np.diff(b)])


def _bic(rss, n: int, phases: int, floor):
    return n * np.log(2 * np.pi * np.maximum(rss, floor) / n) + n + 2 * phases * math.log(n)


def _rss_floor(y: np.ndarray) -> np.ndarray:
    """Rounding floor of an RSS (module docstring), per curve of ``y`` (``[..., n]``)."""
    tss = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    return np.maximum(64 * (y.shape[-1] + 8) * EPS * tss, np.finfo(np.float64).tiny)


def _admissible(u: np.ndarray, knots) -> bool:
    """Every phase (closed, between consecutive knots and the data ends) holds >= 2 of the distinct values ``u``."""
    edges = [u[0], *knots, u[-1]]
    return all(np.count_nonzero((u >= a) & (u <= b)) >= 2 for a, b in zip(edges[:-1], edges[1:]))


class _Placements:
    """Every admissible placement of the knots of one number of phases, and its least-squares projection.

    A knot is either *at* a distinct data value or *in* the open gap between two adjacent ones. With the knot in a
    gap, which points lie right of it is fixed, so ``(t - k)_+ = (t - k) 1_right`` and the model is linear in the
    slope change ``delta`` (column ``t 1_right``) and ``-delta k`` (column ``1_right``): its least-squares solution
    gives the knot ``k = -coef(1_right) / delta`` in closed form. When ``k`` falls inside the gap that is the best
    fit with the knot there; when not, the best fit has the knot at an edge of the gap (the least-squares objective
    is convex in the linear coefficients, and the knot constraint is a cone in them), which is a placement *at*
    a data value. So the smallest feasible RSS over all placements is the exact least-squares fit: a grid of knot
    positions refined to step zero, for a handful of linear solves (41 placements for 3 phases and 8 amounts)."""

    def __init__(self, t: np.ndarray, phases: int):
        u = np.unique(t)
        self.t, self.phases = t, phases
        states = [("at", i, u[i]) for i in range(1, u.size - 1)] + [
            ("in", i, (u[i] + u[i + 1]) / 2) for i in range(1, u.size - 2)]
        placements = [c for c in itertools.combinations(sorted(states, key=lambda s: s[2]), phases - 1)
                      if _admissible(u, [s[2] for s in c])]
        self.groups = []  # per number of free knots: bases, inverse R, and where each knot's numbers are
        for free in range(phases):
            chosen = [c for c in placements if sum(s[0] == "in" for s in c) == free]
            if not chosen:
                continue
            X = np.stack([self._columns(u, c) for c in chosen])
            q, r = np.linalg.qr(X - X.mean(axis=1, keepdims=True))  # centred: the intercept drops out
            cols = np.array([np.cumsum([1] + [1 + (s[0] == "in") for s in c])[:-1] for c in chosen], dtype=np.intp)
            self.groups.append({
                "Qflat": np.moveaxis(q, 0, 1).reshape(t.size, -1), "Qt": np.ascontiguousarray(q.transpose(0, 2, 1)),
                "RinvT": np.ascontiguousarray(np.linalg.inv(r).transpose(0, 2, 1)),
                "delta": cols.reshape(len(chosen), -1),
                "free": np.array([[s[0] == "in" for s in c] for c in chosen], dtype=bool).reshape(len(chosen), -1),
                "lo": np.array([[u[s[1]] for s in c] for c in chosen]).reshape(len(chosen), -1),
                "hi": np.array([[u[s[1] + (s[0] == "in")] for s in c] for c in chosen]).reshape(len(chosen), -1)})

    def _columns(self, u: np.ndarray, placement) -> np.ndarray:
        """Non-constant columns: ``t``, then per knot ``(t - u_i)_+`` (at) or ``t 1_right, 1_right`` (in)."""
        cols = [self.t]
        for kind, i, _ in placement:
            if kind == "at":
                cols.append(np.maximum(self.t - u[i], 0.0))
            else:
                right = (self.t > u[i]).astype(np.float64)
                cols += [self.t * right, right]
        return np.stack(cols, axis=-1)

    def fit(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Least-squares fit of each curve (row) of ``Y``: RSS ``[B]``, slopes ``[B, P]``, knots ``[B, P - 1]`` and
        residuals ``[B, n]``."""
        Yc = Y - Y.mean(axis=-1, keepdims=True)
        rss_all, slopes_all, knots_all, resid_all = [], [], [], []
        for g in self.groups:
            C, q, n = g["Qt"].shape
            Z = (Yc @ g["Qflat"]).reshape(-1, C, q).transpose(1, 0, 2)  # [C, B, q]: Q'y of each placement
            r = Yc[None] - Z @ g["Qt"]
            beta = Z @ g["RinvT"]  # [C, B, columns]: t first, then per knot
            delta = np.take_along_axis(beta, g["delta"][:, None, :], axis=2)  # each knot's slope change
            offset = np.take_along_axis(beta, np.minimum(g["delta"] + 1, q - 1)[:, None, :], axis=2)  # -delta k
            with np.errstate(divide="ignore", invalid="ignore"):
                knots = np.where(g["free"][:, None], -offset / delta, g["lo"][:, None])
            ok = np.all(~g["free"][:, None] | ((knots > g["lo"][:, None]) & (knots < g["hi"][:, None])), axis=2)
            rss_all.append(np.where(ok, np.einsum("cbn,cbn->cb", r, r), np.inf))
            slopes_all.append(np.cumsum(np.concatenate([beta[:, :, :1], delta], axis=2), axis=2))
            knots_all.append(knots)
            resid_all.append(r)
        rss = np.concatenate(rss_all)
        best, cols = np.argmin(rss, axis=0), np.arange(Y.shape[0])
        return tuple(np.concatenate(a)[best, cols] for a in (rss_all, slopes_all, knots_all, resid_all))


def _check(amounts, y) -> tuple[np.ndarray, np.ndarray]:
    n, y = check_curve(amounts, y, "phase fit", "amounts")
    if (n < 0).any():
        raise ValueError(f"phase fit works in ln(1 + n): every amount must be >= 0, got {n.min()!r}")
    return np.log1p(n), y


def _check_phases(t: np.ndarray, phases: int) -> None:
    if isinstance(phases, bool) or not isinstance(phases, (int, np.integer)) or not 1 <= phases <= MAX_PHASES:
        raise ValueError(f"phases must be 1, 2 or 3, got {phases!r}")
    distinct = np.unique(t).size
    if distinct < phases + 1 or t.size < 2 * phases + 2:
        raise ValueError(f"{phases} phase(s) need >= {phases + 1} distinct amounts (2 per phase, a knot's shared) and "
                         f">= {2 * phases + 2} points, got {distinct} and {t.size}: fewer phases or more amounts")


def _fit_at(t: np.ndarray, y: np.ndarray, knots) -> tuple[float, np.ndarray]:
    X = _basis(t, knots)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    return float(r @ r), coef


def fit_phases(amounts, y, phases: int) -> PhaseFit:
    r"""Least-squares continuous fit with ``phases`` (1, 2 or 3) phases in :math:`t = \ln(1 + n)`, free knots.

    ``amounts`` are the data amounts :math:`n \ge 0` (repeats, e.g. seeds, allowed; :math:`n = 0` included),
    ``y`` the scores. The knots are the exact least-squares ones (module docstring); slopes are per e-fold of
    :math:`1 + n`; ``intercept`` is the fitted score at :math:`n = 0`.
    """
    t, y = _check(amounts, y)
    _check_phases(t, phases)
    knots = _models(t, phases)[-1].fit(y[None, :])[2]
    rss, coef = _fit_at(t, y, knots[0])
    slopes = _slope_map(phases) @ coef[1:]
    bic = float(_bic(rss, t.size, phases, _rss_floor(y)))
    return PhaseFit(phases=phases, intercept=float(coef[0]), slopes=tuple(float(b) for b in slopes),
                    knots=tuple(float(k) for k in knots[0]), rss=rss, bic=bic, n=int(t.size))


@functools.lru_cache(maxsize=16)
def _placements(design: bytes, phases: int) -> _Placements:
    """The placements of a design (``t`` as bytes), built once: calibrations and repeated fits share a design."""
    return _Placements(np.frombuffer(design, dtype=np.float64), phases)


def _models(t: np.ndarray, max_phases: int) -> list[_Placements]:
    return [_placements(np.ascontiguousarray(t, dtype=np.float64).tobytes(), p) for p in range(1, max_phases + 1)]


def _select_batch(models: list[_Placements], Y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """BIC choice for each curve (row) of ``Y``: the chosen number of phases ``[B]`` and, per number of phases, the
    slopes ``[B, P]`` and residuals ``[B, n]`` (the exact least-squares fits of :func:`fit_phases`, many at once)."""
    n = Y.shape[-1]
    chosen, slopes, resid = [], [[] for _ in models], [[] for _ in models]
    for s in range(0, Y.shape[0], _CHUNK):
        block = Y[s : s + _CHUNK]
        floor = _rss_floor(block)
        bics = []
        for i, model in enumerate(models):
            rss, b, _, r = model.fit(block)
            bics.append(_bic(rss, n, model.phases, floor))
            slopes[i].append(b)
            resid[i].append(r)
        chosen.append(np.argmin(np.stack(bics, axis=1), axis=1) + 1)
    return np.concatenate(chosen), [np.concatenate(b) for b in slopes], [np.concatenate(r) for r in resid]


def _group_order(t: np.ndarray, groups) -> np.ndarray | None:
    """``[groups, points per group]`` indices of each group's points, or None without groups; ``ValueError`` unless
    every group holds the same amounts in the same order (so that residual curves can be swapped between groups)."""
    if groups is None:
        return None
    labels = np.asarray(groups).reshape(-1)
    if labels.size != t.size:
        raise ValueError(f"groups needs one label per point ({t.size}), got {labels.size}")
    order = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    if len({tuple(t[i]) for i in order}) != 1:
        raise ValueError("every group (seed) must hold the same amounts in the same order to swap residual curves")
    return np.stack(order)


def _resample(resid: np.ndarray, phases, n_draws: int, rng: np.random.Generator, order=None) -> np.ndarray:
    """``[R, n_draws, n]`` residual resamples of each curve's residuals (``resid`` ``[R, n]`` of fits with ``phases``
    ``[R]``), centred and scaled by sqrt(n / (n - p)): single residuals drawn with replacement, or with ``order``
    (from :func:`_group_order`) whole residual curves of a group."""
    R, n = resid.shape
    p = 2 * np.asarray(phases).reshape(-1, 1)
    e = (resid - resid.mean(axis=1, keepdims=True)) * np.sqrt(n / np.maximum(n - p, 1))
    rows = np.arange(R)[:, None, None]
    if order is None:
        return e[rows, rng.integers(0, n, size=(R, n_draws, n))]
    out = np.empty((R, n_draws, n))
    donors = order[rng.integers(0, order.shape[0], size=(R, n_draws, order.shape[0]))]  # [R, B, groups, per group]
    out[:, :, order.ravel()] = e[rows, donors.reshape(R, n_draws, -1)]
    return out


def select_phases(amounts, y, *, max_phases: int = MAX_PHASES, n_bootstrap: int = 0,
                  rng: np.random.Generator | None = None, groups=None) -> PhaseSelection:
    """Fit 1 .. ``max_phases`` phases and choose the number by BIC (module docstring).

    With ``n_bootstrap`` > 0 (and an explicit ``rng``), ``stability`` is the fraction of residual-bootstrap
    curves around the chosen fit whose BIC choice is the same number; ``groups`` (one label per point, e.g. the
    seed) resamples whole residual curves instead of single residuals.
    """
    t, y = _check(amounts, y)
    _check_phases(t, max_phases)
    if n_bootstrap and rng is None:
        raise ValueError("n_bootstrap > 0 needs an explicit rng (np.random.default_rng(seed))")
    fits = tuple(fit_phases(amounts, y, p) for p in range(1, max_phases + 1))
    chosen = int(np.argmin([f.bic for f in fits])) + 1
    stability = None
    if n_bootstrap:
        resid = _models(t, chosen)[-1].fit(y[None, :])[3]
        Y = (y - resid) + _resample(resid, [chosen], n_bootstrap, rng, _group_order(t, groups))[0]
        picks = _select_batch(_models(t, max_phases), Y)[0]
        stability = float(np.mean(picks == chosen))
    return PhaseSelection(fits=fits, phases=chosen, stability=stability, n_bootstrap=int(n_bootstrap))
