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


# ------------------------------------------------------------------ bounded quantities
def _t(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def test_a_rate_gets_its_interval_on_the_logit_scale_not_a_clipped_raw_one():
    """Two seeds at 0.1 and 0.4: the raw t-interval is 0.25 [-1.66, 2.16]; clipping it to [0, 1] would give
    exactly 0 and 1. The logit interval is sigma(ybar -+ t s_y / sqrt 2), inside (0, 1), around sigma(ybar)."""
    y = np.log(np.array([0.1, 0.4]) / np.array([0.9, 0.6]))
    half = _t(2) * y.std(ddof=1) / math.sqrt(2)
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    ci = seed_interval([0.1, 0.4], scale="logit")
    assert (ci.mean, ci.low, ci.high) == pytest.approx((sig(y.mean()), sig(y.mean() - half), sig(y.mean() + half)), rel=1e-12)
    assert 0.0 < ci.low < 0.1 and 0.4 < ci.high < 1.0 and ci.scale == "logit"
    assert seed_interval([0.1, 0.4]).low < 0  # the raw interval that this replaces does cross the bound


def test_a_positive_quantity_gets_its_interval_on_the_log_scale_around_the_geometric_mean():
    """KL 0.05, 0.1, 0.2 bits: geometric mean 0.1 (the arithmetic mean, 0.1167, is not the center); the raw
    interval goes below 0 at 2 seeds (0.0594 [-0.126, 0.245] in the issue's example)."""
    ci = seed_interval([0.05, 0.1, 0.2], scale="log")
    half = _t(3) * np.log([0.05, 0.1, 0.2]).std(ddof=1) / math.sqrt(3)
    assert (ci.mean, ci.low, ci.high) == pytest.approx((0.1, 0.1 * math.exp(-half), 0.1 * math.exp(half)), rel=1e-12)
    two = seed_interval([0.0448, 0.074], scale="log")
    assert two.low > 0 and seed_interval([0.0448, 0.074]).low < 0


def test_a_counted_rate_uses_the_empirical_logit_and_may_be_0_or_1():
    """Refusals 0/4 and 2/4 (the issue's 0.25 [-2.93, 3.43]): y = ln((c + 1/2)/(m - c + 1/2)) = ln(1/9), 0."""
    ci = seed_interval([0.0, 0.5], scale="logit", trials=4)
    y = np.array([math.log(0.5 / 4.5), 0.0])
    half = _t(2) * y.std(ddof=1) / math.sqrt(2)
    assert ci.low == pytest.approx(1.0 / (1.0 + math.exp(-(y.mean() - half))), rel=1e-9) and 0.0 < ci.low < ci.high < 1.0
    assert seed_interval([1.0, 1.0, 1.0], scale="logit", trials=6).mean == pytest.approx(6.5 / 7.0)  # c = m: finite
    with pytest.raises(ValueError, match="c/4 with c in 0..4"):
        seed_interval([0.3, 0.5], scale="logit", trials=4)
    with pytest.raises(ValueError, match="values in \\(0, 1\\)"):
        seed_interval([0.0, 0.5], scale="logit")
    with pytest.raises(ValueError, match="values > 0"):
        seed_interval([0.0, 0.5], scale="log")
    with pytest.raises(ValueError, match="trials applies to the logit scale"):
        seed_interval([1.0, 2.0], scale="log", trials=3)
    with pytest.raises(ValueError, match="scale must be one of"):
        seed_interval([1.0, 2.0], scale="sqrt")


@pytest.mark.parametrize("scale", ["log", "logit", "artanh"])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_coverage_on_a_bounded_scale_is_nominal_by_simulation(scale, n):
    """Per-seed values normal on the transformed scale (log-normal KL, logit-normal rates, Fisher-z-normal scores in
    (-1, 1)): the interval covers
    the back-transformed center in 95% of 1000 replicates, at 2, 3 and 5 seeds. The check: 0.95 inside the exact
    99% binomial interval of the measured coverage (half-width ~0.018 at 1000 replicates). A normal quantile
    instead of t gives ~0.70 at 2 seeds, a raw-scale interval of the arithmetic mean misses the geometric /
    logistic center, and either fails. The count is recomputed here from seed_interval itself and must match
    interval_coverage (which the docs' coverage table prints)."""
    from elastic_theory.stats.seedstats import interval_coverage

    center, sd, reps = {"log": (-3.0, 1.0, 1000), "logit": (-1.0, 0.8, 1000), "artanh": (0.5, 0.6, 1000)}[scale]
    back = {"log": math.exp, "logit": lambda v: 1.0 / (1.0 + math.exp(-v)), "artanh": math.tanh}[scale]
    rng = np.random.default_rng(17 + n)
    hits = 0
    for _ in range(reps):
        ci = seed_interval([back(v) for v in rng.normal(center, sd, n)], scale=scale)
        hits += ci.low <= back(center) <= ci.high
    result = interval_coverage(scale, n, reps, np.random.default_rng(17 + n), center=center, sd=sd)
    assert result["covered"] == hits
    assert result["ci99"][0] <= 0.95 <= result["ci99"][1], result


def test_interval_note_warns_below_three_seeds():
    from elastic_theory.stats.seedstats import interval_note

    assert interval_note(3) == "95% t-intervals over 3 seeds" and "WARNING" not in interval_note(5)
    assert "WARNING: fewer than 3 seeds; the t quantile is 12.7" in interval_note(2)
    assert "WARNING: 1 seed, no interval" in interval_note(1)


def test_counted_rates_that_agree_still_get_the_counting_noise():
    """Three seeds that each refuse 0 of 6: the sample variance is 0, but a rate counted over 6 items cannot be
    known better than its binomial noise, v = (m+1)(m+2)/(m(c+1)(m-c+1)) = 56/42 on the empirical logit."""
    ci = seed_interval([0.0, 0.0, 0.0], scale="logit", trials=6)
    y, half = math.log(0.5 / 6.5), _t(3) * math.sqrt(56 / 42 / 3)
    assert ci.low < ci.mean < ci.high
    assert ci.high == pytest.approx(1.0 / (1.0 + math.exp(-(y + half))), rel=1e-12)


def test_resistance_counts_seeds_not_seed_pair_cells():
    """Three seeds x three pairs. Seed 0: inverse lower in 2 of 3 pairs but its mean gap is below 0 (one large
    forward advantage); seed 1: inverse lower in every pair; seed 2: in none. Per seed that is 1 of 3 independent
    comparisons (sign test p = 1); counting cells would give 5/9, as if 9 comparisons were independent."""
    from elastic_theory.experiments._stats import format_seed_count, seeds_as_units

    forward = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    inverse = np.array([[0.9, 0.9, 2.0], [1.5, 1.0, 1.9], [1.1, 1.2, 1.3]])
    c = seeds_as_units(forward, inverse)
    assert c["independent_comparisons"] == 3 and c["inverse_lower_seeds"] == 1 and c["every_comparison_seeds"] == 1
    assert c["mean_gap_per_seed"] == pytest.approx([(0.1 + 0.1 - 1.0) / 3, (0.5 + 1.0 + 0.1) / 3, -0.2])
    assert c["sign_test_p"] == pytest.approx(1.0) and c["seed_comparison_pairs"] == "5/9"
    assert seeds_as_units(np.ones((5, 3)), np.zeros((5, 3)))["sign_test_p"] == pytest.approx(2 / 32)  # 5/5: 2 x 0.5^5
    assert "in 1/3 seeds = 3 independent comparisons" in format_seed_count(c)
    with pytest.raises(ValueError, match="same seeds and comparisons"):
        seeds_as_units(np.ones((2, 3)), np.ones((3, 3)))


def test_a_score_in_minus_one_to_one_gets_fishers_artanh_interval():
    """Sentiment compounds 0.7 and 0.95 of two seeds: the raw interval reaches past 1; on the artanh scale the
    interval is tanh(zbar -+ t s_z / sqrt 2), inside (-1, 1)."""
    z = np.arctanh([0.7, 0.95])
    half = _t(2) * z.std(ddof=1) / math.sqrt(2)
    ci = seed_interval([0.7, 0.95], scale="artanh")
    assert (ci.mean, ci.low, ci.high) == pytest.approx((math.tanh(z.mean()), math.tanh(z.mean() - half),
                                                        math.tanh(z.mean() + half)), rel=1e-12)
    assert -1 < ci.low < 0.7 and 0.95 < ci.high < 1 and seed_interval([0.7, 0.95]).high > 1
    with pytest.raises(ValueError, match="values in \\(-1, 1\\)"):
        seed_interval([1.0, 0.5], scale="artanh")
