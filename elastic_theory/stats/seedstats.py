r"""Intervals over seeds: every measured number in an experiment is a mean over seeds with a 95% interval.

With :math:`n` seeds giving values :math:`x_1..x_n` (independent runs that differ only in the seed),
the interval is Student's :math:`\bar x \pm t_{0.975, n-1}\, s/\sqrt n` (``s`` the sample standard
deviation). It assumes roughly normal per-seed values; with 3 seeds the t quantile is 4.30, so
intervals are wide on purpose. One seed gives no interval (``nan`` bounds), never a zero-width one.

A *paired* comparison (the same seed under two conditions, e.g. forward vs inverse alignment, or
small vs large alignment) uses the interval of the per-seed differences, which removes the
between-seed variance both conditions share.

**Bounded quantities** (``scale``). A quantity that cannot leave a range gets its interval on a scale
where the range is the whole real line, and the interval is mapped back, so it can never cross the
bound (a raw t-interval at 2-3 seeds easily does: a refusal rate of 0 and 0.5 gives
0.25 [-2.93, 3.43]):

* ``"linear"``: differences, log-odds, slopes: the interval above.
* ``"log"``: positive quantities (KL > 0, amounts of data > 0): the interval of :math:`y = \ln x`,
  mapped back, :math:`[e^{\bar y - h}, e^{\bar y + h}]`, around the geometric mean :math:`e^{\bar y}`.
* ``"logit"``: probabilities and rates in (0, 1): the interval of :math:`y = \ln(x/(1-x))`, mapped back by
  :math:`\sigma(y) = 1/(1+e^{-y})`, around :math:`\sigma(\bar y)`. A rate counted over ``trials`` items
  (``x = c/m``, which can be exactly 0 or 1) uses the empirical logit
  :math:`y = \ln((c + 1/2)/(m - c + 1/2))` (Haldane-Anscombe: finite at 0 and m, bias :math:`O(m^{-2})`), and the per-seed variance is at least the
  counting noise, :math:`s_y^2 \ge \bar v` with :math:`v = (m+1)(m+2)/(m(c+1)(m-c+1))` (Gart and Zweifel's
  variance of the empirical logit): seeds that all count 0 of m get a wide interval, never one of width 0.
  That floor makes the counted interval conservative (coverage 0.97-1.00 in the simulation).

* ``"artanh"``: scores in (-1, 1) (a mean sentiment compound): Fisher's :math:`y = \operatorname{artanh} x`,
  mapped back by :math:`\tanh`.

On these scales ``mean`` is the back-transformed center (geometric or logistic mean), the value the
interval covers; it is exact (coverage ``level``) when the transformed per-seed values are normal,
as the linear interval is for normal values, and ``tests/stats/test_seedstats.py`` measures the
coverage by simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["INTERVAL_SCALES", "SeedInterval", "error_bars", "format_interval", "interval_coverage", "interval_note",
           "paired_difference", "saved_number", "seed_interval"]

#: The scales an interval can be computed on (module docstring).
INTERVAL_SCALES = ("linear", "log", "logit", "artanh")

#: Fewer seeds than this get a warning wherever an interval is shown (:func:`interval_note`).
FEW_SEEDS = 3


@dataclass(frozen=True)
class SeedInterval:
    """Mean over ``n`` seeds with the two-sided ``level`` Student-t interval ``(low, high)`` on ``scale``.

    On the ``log`` and ``logit`` scales ``mean`` is the back-transformed center (module docstring).
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95
    scale: str = "linear"

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


def _transformed(x: np.ndarray, scale: str, trials: int | None) -> np.ndarray:
    """The per-seed values on ``scale`` (module docstring); ``ValueError`` for a value outside the scale's range."""
    if trials is not None and scale != "logit":
        raise ValueError(f"trials applies to the logit scale of a counted rate, not to scale {scale!r}")
    if scale == "linear":
        return x
    if scale == "log":
        if (x <= 0).any():
            raise ValueError(f"scale 'log' needs values > 0, got {float(x[x <= 0][0])!r}")
        return np.log(x)
    if scale == "artanh":
        if ((x <= -1) | (x >= 1)).any():
            raise ValueError(f"scale 'artanh' needs values in (-1, 1), got {float(x[(x <= -1) | (x >= 1)][0])!r}")
        return np.arctanh(x)
    if scale != "logit":
        raise ValueError(f"scale must be one of {', '.join(INTERVAL_SCALES)}, got {scale!r}")
    if trials is None:
        if ((x <= 0) | (x >= 1)).any():
            raise ValueError(f"scale 'logit' needs values in (0, 1) (a rate counted over m items: pass trials=m), got "
                             f"{float(x[(x <= 0) | (x >= 1)][0])!r}")
        return np.log(x / (1.0 - x))
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"trials must be an integer >= 1, got {trials!r}")
    c = x * trials
    if ((x < 0) | (x > 1)).any() or np.abs(c - np.rint(c)).max() > 1e-9 * trials:
        raise ValueError(f"a rate counted over trials = {trials} items is c/{trials} with c in 0..{trials}, got {x.tolist()}")
    c = np.rint(c)
    return np.log((c + 0.5) / (trials - c + 0.5))


def _back(y: float, scale: str) -> float:
    """A center or bound on ``scale`` mapped back to the quantity (overflow to inf, never an exception)."""
    from scipy.special import expit

    with np.errstate(over="ignore"):
        return float(y if scale == "linear" else np.exp(y) if scale == "log" else np.tanh(y) if scale == "artanh" else expit(y))


def seed_interval(values, level: float = 0.95, scale: str = "linear", trials: int | None = None) -> SeedInterval:
    r"""Mean of the per-seed ``values`` and its Student-t interval :math:`\bar y \pm t_{(1+level)/2,n-1} s_y/\sqrt n`
    of the values on ``scale`` (``y = x``, :math:`\ln x` or the logit; module docstring), mapped back.

    ``trials``: the rate was counted over that many items (logit scale only; empirical logit).
    Raises ``ValueError`` for no values, a non-finite value (a diverged run must be reported, not
    averaged away), a value outside the scale's range or a level outside (0, 1).
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
    y = _transformed(x, scale, trials)
    center = float(y.mean())
    if x.size < 2:
        return SeedInterval(_back(center, scale), math.nan, math.nan, 1, level, scale)
    var = float(y.var(ddof=1))
    if trials is not None:  # the seeds cannot agree more closely than their counting noise allows (module docstring)
        c = np.rint(x * trials)
        var = max(var, float(np.mean((trials + 1) * (trials + 2) / (trials * (c + 1) * (trials - c + 1)))))
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * math.sqrt(var / x.size))
    return SeedInterval(_back(center, scale), _back(center - half, scale), _back(center + half, scale), int(x.size), level,
                        scale)


def interval_coverage(scale: str, n_seeds: int, reps: int, rng: np.random.Generator, *, center: float = 0.0,
                      sd: float = 1.0, trials: int | None = None, level: float = 0.95) -> dict:
    r"""Coverage of :func:`seed_interval` on ``scale`` by simulation, with its Clopper-Pearson interval.

    Each replicate draws ``n_seeds`` values :math:`y_s \sim N(center, sd^2)` on the transformed scale,
    maps them back (``x = y``, :math:`e^y` or :math:`\sigma(y)`; with ``trials = m`` a seed's rate is
    then counted, :math:`c_s \sim Bin(m, \sigma(y_s))`, ``x = c_s/m``), and asks whether the interval
    contains the back-transformed ``center`` (the geometric or logistic mean the interval is for).
    Returns ``{"covered", "reps", "coverage", "ci99"}``; ``ci99`` is the exact 99% binomial interval
    of the coverage, and 1 - coverage is the false-rejection rate of a test that rejects when the
    interval excludes the true value.
    """
    from scipy import stats

    check = _back(center, scale)
    covered = 0
    for _ in range(reps):
        y = rng.normal(center, sd, n_seeds)
        x = np.array([_back(v, scale) for v in y])
        if trials is not None:
            x = rng.binomial(trials, x) / trials
        ci = seed_interval(x, level, scale, trials)
        covered += bool(ci.low <= check <= ci.high)
    ci99 = stats.binomtest(covered, reps).proportion_ci(0.99, method="exact")
    return {"covered": covered, "reps": reps, "coverage": covered / reps, "ci99": [float(ci99.low), float(ci99.high)]}


def interval_note(n: int, level: float = 0.95) -> str:
    """What a table's intervals rest on, for its header: ``95% t-intervals over 5 seeds``, with a warning below 3 seeds."""
    note = f"{level:.0%} t-intervals over {n} seed{'s' if n != 1 else ''}"
    if n < 2:
        return note + " (WARNING: 1 seed, no interval)"
    if n < FEW_SEEDS:
        from scipy import stats

        return note + (f" (WARNING: fewer than {FEW_SEEDS} seeds; the t quantile is {stats.t.ppf(0.5 + level / 2, n - 1):.3g}, "
                       "so an interval says little)")
    return note


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
