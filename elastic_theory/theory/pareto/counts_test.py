r"""Testing leaf counts for a power law: the bootstrap p-values (semi-parametric, or through the whole pipeline of
masses, multinomial counts and leaves seen), the pipeline's size and power, and the verdict on a real tree's counts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..tree import TokenTree
from .masses import sample_masses
from .power_law import (
    DiscretePowerLawFit,
    _clopper_pearson,
    PowerLawTest,
    _as_counts,
    _candidates,
    _check_tail_fraction,
    _fit_sorted,
    sample_discrete_power_law,
)


def _semiparametric_samples(x: np.ndarray, fit: DiscretePowerLawFit, n_bootstrap: int, rng: np.random.Generator) -> list[np.ndarray]:
    body = x[x < fit.x_min]
    n_tail = rng.binomial(x.size, fit.n_tail / x.size, size=n_bootstrap)
    tail = sample_discrete_power_law(int(n_tail.sum()), fit.exponent, fit.x_min, rng)
    ends = np.cumsum(n_tail)
    out = []
    for b in range(n_bootstrap):
        low = body[rng.integers(0, body.size, size=x.size - n_tail[b])] if body.size else body
        out.append(np.sort(np.concatenate([low, tail[ends[b] - n_tail[b]: ends[b]]])))
    return out


def _pipeline_samples(x: np.ndarray, fit: DiscretePowerLawFit, n_draws: int, n_bootstrap: int, rng: np.random.Generator) -> list[np.ndarray]:
    law = functools.partial(_pareto_law, fit.alpha)
    try:
        M = matching_leaf_total(law, x.size, n_draws, int(rng.integers(2**63)))
    except ValueError:  # a fitted alpha so small that no number of leaves shows as many: take the most tried
        M = 64 * x.size
    return [np.sort(leaf_counts(law(M, rng), n_draws, rng)) for _ in range(n_bootstrap)]


def _pareto_law(alpha: float, M: int, rng: np.random.Generator) -> np.ndarray:
    return sample_masses(M, alpha, rng)


def _tests_sorted(
    samples: list[np.ndarray], n_bootstrap: int, rng: np.random.Generator, tail_fraction: float, n_draws: int | None
) -> list[PowerLawTest]:
    fits = _fit_sorted(samples, tail_fraction)
    if n_draws is None:
        boots = [b for x, f in zip(samples, fits) for b in _semiparametric_samples(x, f, n_bootstrap, rng)]
    else:
        boots = [b for x, f in zip(samples, fits) for b in _pipeline_samples(x, f, n_draws, n_bootstrap, rng)]
    # A bootstrap sample too degenerate to fit (e.g. one leaf holding all but a handful of the draws) counts as
    # more extreme than the data: KS = inf.
    ok = np.array([_candidates(b, tail_fraction)[2] >= 0 for b in boots], dtype=bool)
    ks = np.full(len(boots), np.inf)
    ks[ok] = [f.ks_statistic for f in _fit_sorted([b for b, o in zip(boots, ok) if o], tail_fraction)]
    ks = ks.reshape(len(samples), n_bootstrap)
    kind = "semi-parametric" if n_draws is None else "pipeline"
    return [PowerLawTest(f, float((1 + (k >= f.ks_statistic).sum()) / (n_bootstrap + 1)), n_bootstrap, kind)
            for f, k in zip(fits, ks)]


def power_law_test(
    counts: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = 99,
    tail_fraction: float = 0.25,
    n_draws: int | None = None,
) -> PowerLawTest:
    """Fit a discrete power law with a tail cutoff to ``counts`` and test it (:class:`PowerLawTest`): against
    Pareto masses seen in ``n_draws`` responses (the pipeline bootstrap) when ``n_draws`` is given, else
    against a discrete power law above ``x_min`` (semi-parametric)."""
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    x = _as_counts(counts)
    if n_draws is not None and n_draws < x.sum():
        raise ValueError(f"n_draws ({n_draws}) must be at least the sum of the counts ({x.sum()})")
    return _tests_sorted([x], n_bootstrap, rng, _check_tail_fraction(tail_fraction), n_draws)[0]


def tree_leaf_counts(tree: TokenTree) -> np.ndarray:
    """The leaf counts of a tree built from whole responses (``counts`` or one per row): leaf mass times
    the number of responses, which must come out whole."""
    x = tree.leaves.prob * tree.n_sequences
    counts = np.rint(x)
    if not np.allclose(x, counts, rtol=0.0, atol=1e-6) or (counts < 1).any():
        raise ValueError("the tree's leaf masses are not whole counts (a tree built with weights=): counts are needed")
    return counts.astype(np.int64)


def leaf_counts(masses: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """The counts of the leaves seen in ``n_draws`` multinomial draws from ``masses`` (leaves seen 0 times dropped):
    what a token tree built from ``n_draws`` responses records."""
    counts = rng.multinomial(int(n_draws), masses)
    return counts[counts > 0]


@dataclass(frozen=True)
class RejectionRate:
    """How often :func:`power_law_test` rejected (``pvalue <= level``) in ``n_rep`` simulated data sets, with
    the exact (Clopper-Pearson) 95% interval of the rate."""

    rejections: int
    n_rep: int
    level: float
    n_bootstrap: int

    @property
    def rate(self) -> float:
        return self.rejections / self.n_rep

    @property
    def interval(self) -> tuple[float, float]:
        return _clopper_pearson(self.rejections, self.n_rep)


def rejection_rate(
    masses: Callable[[np.random.Generator], np.ndarray],
    n_draws: int,
    n_rep: int,
    rng: np.random.Generator,
    n_bootstrap: int = 19,
    level: float = 0.05,
    tail_fraction: float = 0.25,
    bootstrap: str = "pipeline",
) -> RejectionRate:
    """Run the whole pipeline ``n_rep`` times: leaf masses from ``masses(rng)`` -> :func:`leaf_counts` of
    ``n_draws`` responses -> :func:`power_law_test`; count the rejections at ``level``.

    With Pareto masses this is the test's size (false-rejection rate), with other masses its power;
    ``bootstrap`` picks the test's null (:class:`PowerLawTest`).
    ``n_bootstrap = 19`` at ``level = 0.05`` is the smallest exact Monte Carlo test (reject only when the
    data's KS exceeds all 19 bootstrap ones).
    """
    if n_rep < 1:
        raise ValueError(f"n_rep must be >= 1, got {n_rep}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if bootstrap not in ("pipeline", "semi-parametric"):
        raise ValueError(f"bootstrap must be 'pipeline' or 'semi-parametric', got {bootstrap!r}")
    samples = [np.sort(leaf_counts(masses(rng), n_draws, rng)) for _ in range(n_rep)]
    tests = _tests_sorted(samples, n_bootstrap, rng, _check_tail_fraction(tail_fraction),
                          int(n_draws) if bootstrap == "pipeline" else None)
    return RejectionRate(sum(t.pvalue <= level for t in tests), n_rep, level, n_bootstrap)


def matching_leaf_total(
    masses: Callable[[int, np.random.Generator], np.ndarray], n_seen: int, n_draws: int, seed: int, n_avg: int = 4
) -> int:
    r"""The number of leaves :math:`M` for which ``masses(M, rng)`` shows, on average, ``n_seen`` leaves in
    ``n_draws`` responses: leaves never drawn are not in a tree, so a tree with ``n_seen`` leaves comes from
    more. The expected number seen, :math:`\sum_j 1 - (1 - p_j)^N`, averaged over ``n_avg`` draws with the
    same seed at every M (so it is smooth in M), is bracketed by doubling M from ``n_seen`` (up to
    :math:`64\,n_{seen}`) and bisected to 1% of M: the smallest M found whose mean reaches ``n_seen``.
    """
    def seen(M: int) -> float:
        rng = np.random.default_rng(seed)
        return float(np.mean([(-np.expm1(n_draws * np.log1p(-masses(M, rng)))).sum() for _ in range(n_avg)]))

    lo, hi = int(n_seen), int(n_seen)
    while seen(hi) < n_seen:
        lo, hi = hi, 2 * hi
        if hi > 64 * n_seen:
            raise ValueError(f"even {hi} leaves show fewer than {n_seen} in {n_draws} draws: the mass law cannot match this tree")
    while hi - lo > max(1, hi // 100):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if seen(mid) < n_seen else (lo, mid)
    return hi


@dataclass(frozen=True)
class CountsVerdict:
    """A :func:`power_law_test` on a tree's leaf counts, with the pipeline's measured size and power.

    ``verdict``: "fails" when the test rejects at ``level`` beyond its Monte Carlo error (the whole 95%
    interval of the p-value at or below ``level``) and its measured size is compatible with ``level``
    (the lower end of its 95% interval at most ``level``); "holds" when the p-value's interval lies
    above ``level`` and every power's 95% interval above ``power_floor``; otherwise "inconclusive" (a
    test that rejects true Pareto data too often says nothing, a p-value whose interval straddles the
    level is undecided, and a non-rejection the test had little power to turn into a rejection says little).
    """

    test: PowerLawTest
    n_draws: int
    leaf_total: int
    size: RejectionRate
    power: dict[str, RejectionRate]
    level: float
    power_floor: float

    @property
    def verdict(self) -> str:
        p_lo, p_hi = self.test.pvalue_interval
        if self.size.interval[0] > self.level:
            return "inconclusive"
        if p_hi <= self.level:
            return "fails"
        if p_lo > self.level and all(r.interval[0] >= self.power_floor for r in self.power.values()):
            return "holds"
        return "inconclusive"


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


ALTERNATIVES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "log-normal(sigma=2)": lambda M, rng: _normalized(rng.lognormal(0.0, 2.0, size=M)),
    "exponential": lambda M, rng: _normalized(rng.exponential(size=M)),
}
"""Mass laws the test should tell from Pareto: the log-normal is the classic look-alike of a power law
(Clauset et al. 2009, §5), the exponential has a light tail."""


def counts_verdict(
    counts: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
    *,
    n_bootstrap: int = 99,
    n_rep_size: int = 40,
    n_rep_power: int = 20,
    alternatives: tuple[str, ...] = tuple(ALTERNATIVES),
    level: float = 0.05,
    power_floor: float = 0.8,
    tail_fraction: float = 0.25,
) -> CountsVerdict:
    """Test Pareto leaf masses on a tree's leaf ``counts`` (from ``n_draws`` responses) and measure the test.

    Size: ``n_rep_size`` pipelines with Pareto masses at the fitted alpha; power: ``n_rep_power`` with
    each mass law of ``alternatives`` (names in :data:`ALTERNATIVES`). Every simulated law gets the
    number of leaves that shows, on average, as many leaves as the data (:func:`matching_leaf_total`).
    The simulations use 19 bootstrap samples each (exact Monte Carlo tests at level 0.05).
    """
    unknown = [a for a in alternatives if a not in ALTERNATIVES]
    if unknown:
        raise ValueError(f"unknown alternatives {unknown}; choose from {sorted(ALTERNATIVES)}")
    test = power_law_test(counts, rng, n_bootstrap, tail_fraction, n_draws)
    laws = {"pareto": functools.partial(_pareto_law, test.fit.alpha), **{a: ALTERNATIVES[a] for a in alternatives}}
    totals = {name: matching_leaf_total(law, test.fit.n, n_draws, int(rng.integers(2**63))) for name, law in laws.items()}

    def rate(name: str, n_rep: int) -> RejectionRate:
        M = totals[name]
        return rejection_rate(lambda r: laws[name](M, r), n_draws, n_rep, rng, 19, level, tail_fraction)

    return CountsVerdict(test, int(n_draws), totals["pareto"], rate("pareto", n_rep_size),
                         {a: rate(a, n_rep_power) for a in alternatives}, level, power_floor)
