"""Seed intervals: the Student-t interval, its coverage, and paired differences."""

import math

import numpy as np
import pytest

from elastic_theory.stats.seedstats import paired_difference, seed_interval


def test_three_seeds_give_the_student_t_interval():
    # mean 2, s = 1, t_{0.975, 2} = 4.302652729749462 (scipy.stats.t.ppf(0.975, 2)); half-width 4.3027 / sqrt(3)
    ci = seed_interval([1.0, 2.0, 3.0])
    assert ci.mean == 2.0 and ci.n == 3
    assert ci.high - ci.mean == pytest.approx(4.302652729749462 / math.sqrt(3), rel=1e-12)
    assert ci.excludes(-1.0) and not ci.excludes(0.0)


def test_coverage_is_nominal_with_three_seeds():
    """A z interval (1.96 s/sqrt n) would cover only ~81% at n = 3; the t interval covers 95%.

    2000 replicates: the binomial sd of the coverage is 0.0049, so [0.93, 0.97] is a 4-sd band."""
    rng = np.random.default_rng(1)
    hits = sum(seed_interval(rng.normal(5.0, 2.0, 3)).excludes(5.0) is False for _ in range(2000))
    assert 0.93 <= hits / 2000 <= 0.97


def test_one_seed_has_no_interval_and_bad_values_are_named():
    ci = seed_interval([0.5])
    assert math.isnan(ci.low) and math.isnan(ci.high) and not ci.excludes(0.0)
    with pytest.raises(ValueError, match="per-seed value 1 is nan"):
        seed_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one per-seed value"):
        seed_interval([])


def test_paired_difference_removes_the_shared_seed_effect():
    """Seed effects of +-10 swamp an unpaired comparison; the paired one resolves the constant 0.1 gap."""
    seed_effect = np.array([-10.0, 0.0, 10.0, 3.0])
    a, b = seed_effect + 0.1 + np.array([0.001, -0.001, 0.0, 0.0]), seed_effect
    assert paired_difference(a, b).excludes(0.0)
    assert not seed_interval(a).excludes(float(np.mean(b)))
    with pytest.raises(ValueError, match="one value per seed in both"):
        paired_difference([1.0, 2.0], [1.0])


def test_experiments_mean_ci95_is_the_seed_interval_of_the_finite_seeds():
    """joint-/sequential-ratio's mean_ci95: the Student-t interval (t_{0.975,2} = 4.303 for 3 seeds, not the normal
    1.96), an undefined seed (inf ratio) left out of the mean rather than raising, and no interval from one seed."""
    from elastic_theory.experiments._stats import mean_ci95

    mean, ci = mean_ci95([1.0, 2.0, 3.0, math.inf])
    half = 4.302652729749462 / math.sqrt(3)  # scipy.stats.t.ppf(0.975, 2) * s / sqrt(n), s = 1
    assert mean == 2.0 and ci == pytest.approx([2.0 - half, 2.0 + half], rel=1e-12)
    assert mean_ci95([5.0, math.nan]) == (5.0, None)
    m, c = mean_ci95([math.inf])
    assert math.isnan(m) and c is None
