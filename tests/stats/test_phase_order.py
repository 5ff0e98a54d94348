"""The phase-order test, Benjamini-Hochberg, the bias-corrected steepest phase, the noise level and the calibration.

Each test names in a comment the wrong implementation it kills. Design: n- in {0, 64, ..., 4096}, 5 seeds.
"""

from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binomtest, false_discovery_control

from elastic_theory.stats.phase_order import (_wilson, benjamini_hochberg, calibrate_order_test, noise_sd,
                                              phase_order_test, steepest_drop)

AMOUNTS = np.array([0, 64, 128, 256, 512, 1024, 2048, 4096.0])
N = np.tile(AMOUNTS, 5)
T = np.log1p(N)


def bent(slopes, knot_amounts, t=T):
    y = slopes[0] * t
    for j, k in enumerate(np.log1p(knot_amounts)):
        y = y + (slopes[j + 1] - slopes[j]) * np.maximum(t - k, 0.0)
    return 0.8 + y


@pytest.mark.parametrize(("slopes", "pattern"), [((-0.3, -0.05), "fast-slow"), ((-0.05, -0.3), "slow-fast")])
def test_a_clear_order_is_found_in_its_direction(slopes, pattern):
    """Fast-then-slow and slow-then-fast (knot at n = 300, noise sd 0.02): the order and the smallest p-value.

    Kills: a drop/slope sign mix-up (the two cases swap); p = #/B, which reaches 0 (the smallest value is 1/(B+1));
    a Monte Carlo error that ignores B."""
    rng = np.random.default_rng(3)
    test = phase_order_test(N, bent(slopes, (300.0,)) + 0.02 * rng.standard_normal(N.size), rng=rng)
    assert test.pattern == pattern and test.verdict(0.05) == pattern
    assert test.p_value == pytest.approx(1 / 1000) and test.n_resamples == 999
    assert test.mc_se == pytest.approx(np.sqrt(0.001 * 0.999 / 999))
    one_sided = test.p_speed_up if pattern == "slow-fast" else test.p_slow_down
    assert one_sided == pytest.approx(1 / 1000) and test.statistic == pytest.approx(0.25, abs=0.05)
    assert test.as_dict()["mc_se"] == test.mc_se


def test_the_slow_fast_slow_curve_has_both_transitions():
    """The issue's curve (drops 0.057, 0.237, 0.124, noise sd 0.01): three phases, both a speed-up and a slow-down.

    Kills: a two-phase order test (it can show only one transition)."""
    rng = np.random.default_rng(4)
    y = bent((-0.057, -0.237, -0.124), (200.0, 1500.0)) + 0.01 * rng.standard_normal(N.size)
    test = phase_order_test(N, y, n_resamples=199, rng=rng)
    assert (test.phases, test.pattern) == (3, "slow-fast-slow")
    assert test.p_speed_up == test.p_slow_down == pytest.approx(1 / 200)


def test_a_line_has_no_order_and_the_test_is_seeded():
    # Kills: a statistic that is not 0 for one phase (p would not be 1); unseeded resampling (two runs differ)
    y = 0.5 - 0.1 * T + 0.02 * np.random.default_rng(5).standard_normal(N.size)
    a, b = (phase_order_test(N, y, n_resamples=99, rng=np.random.default_rng(0)) for _ in range(2))
    assert a == b and a.phases == 1 and a.p_value == 1.0 and a.verdict() == "no order"


def test_benjamini_hochberg_matches_hand_computed_values():
    """Adjusted p-values by hand (exact fractions), in the input order.

    p = (0.01, 0.04, 0.03, 0.2), m = 4: sorted 0.01, 0.03, 0.04, 0.2 times m/rank = 0.04, 0.06, 0.0533, 0.2; the
    running minimum from the largest down gives 0.04, 0.0533, 0.0533, 0.2. Kills: the wrong rank order (largest p
    given rank 1), no running minimum (0.06 for 0.03), results in sorted instead of input order, Bonferroni (m p)."""
    p = [Fraction(1, 100), Fraction(4, 100), Fraction(3, 100), Fraction(2, 10)]
    expected = [Fraction(4, 100), Fraction(16, 300), Fraction(16, 300), Fraction(2, 10)]
    result = benjamini_hochberg([float(x) for x in p], q=0.05)
    assert result.p_adjusted == pytest.approx([float(x) for x in expected], rel=4 * np.finfo(float).eps)
    assert result.rejected == (True, False, False, False)
    # Six curves: p_(i) = 0.001, 0.008, 0.039, 0.041, 0.042, 0.6; 6 p/rank = 0.006, 0.024, 0.078, 0.0615, 0.0504,
    # 0.6, running minimum 0.006, 0.024, 0.0504, 0.0504, 0.0504, 0.6: at q = 0.05 only the first two are rejected,
    # at q = 0.06 five (step-up: 0.041 and 0.039 pass through 0.042's bound although 0.039 * 6 / 3 = 0.078 > 0.06)
    six = [0.042, 0.001, 0.6, 0.039, 0.008, 0.041]
    assert benjamini_hochberg(six, q=0.05).rejected == (False, True, False, False, True, False)
    assert benjamini_hochberg(six, q=0.06).rejected == (True, True, False, True, True, True)
    assert benjamini_hochberg(six).p_adjusted == pytest.approx([0.0504, 0.006, 0.6, 0.0504, 0.024, 0.0504])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        benjamini_hochberg([0.5, 1.5])


def test_benjamini_hochberg_agrees_with_scipy():
    # Cross-check against an independent implementation on random vectors with ties
    rng = np.random.default_rng(6)
    for m in (1, 2, 7, 30):
        p = np.round(rng.random(m) ** 3, 2)
        assert benjamini_hochberg(p).p_adjusted == pytest.approx(false_discovery_control(p), rel=1e-12)


def test_noise_sd_is_the_pooled_within_amount_sd():
    # By hand: residuals (-1, 1) and (-2, 0, 2) about their means; (1 + 1 + 4 + 0 + 4) / (5 - 2) = 10/3.
    # Kills: the sd about the grand mean (it would include the curve), a divisor of N instead of N - m
    assert noise_sd([0, 0, 5, 5, 5], [1, 3, 2, 4, 6]) == pytest.approx(np.sqrt(10 / 3))
    with pytest.raises(ValueError, match="replicates"):
        noise_sd([0, 1, 2], [1, 2, 3])


def test_wilson_interval_matches_scipy():
    for k, n in ((0, 40), (2, 40), (7, 200), (40, 40)):
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert _wilson(k, n) == pytest.approx((ci.low, ci.high), rel=1e-12, abs=1e-15)


def test_calibration_size_is_nominal_and_power_follows_the_contrast():
    """40 lines and 40 two-phase curves (drops 0.05 then 0.15, sd 0.02), 99 resamples each.

    The size's 95% Wilson interval holds alpha = 0.05, the power's lies above it, and the whole calibration is a
    function of the seed. (The test is conservative at alpha = 0.05: its size is about P(BIC chooses more than one
    phase | line) = 0.035, docs/phases.md, so with many more curves the interval would end below 0.05; its lower
    end must never pass alpha.) Kills: a size counted on the two-phase curves (its interval would sit near 1); a null
    simulated from the chosen fit instead of the line (the lines would be fine, but the power would collapse to the
    size, since every curve would be its own null); a global RNG."""
    cal = calibrate_order_test(AMOUNTS, seeds=5, sigma=0.02, contrast=0.1, n_curves=40, n_resamples=99,
                               rng=np.random.default_rng(8))
    assert cal.size_ci[0] <= 0.05 <= cal.size_ci[1]
    assert cal.power_ci[0] > 0.05 and cal.power >= 0.8
    assert cal.as_dict()["size_ci"] == list(cal.size_ci)
    small = [calibrate_order_test(AMOUNTS, seeds=5, sigma=0.02, contrast=-0.1, n_curves=4, n_resamples=19,
                                  rng=np.random.default_rng(1)) for _ in range(2)]
    assert small[0] == small[1]


@pytest.mark.slow  # 150 curves x 199 resamples, each refitted: 1.9 s on the loaded shared machine, at the 2 s line
def test_bias_correction_shrinks_the_upward_bias_of_the_steepest_phase():
    """Two phases with nearly equal drops (0.10, 0.12; knot n = 300; sd 0.03), 150 seeded curves.

    The maximum of two noisy slopes with a free knot is biased upward (here +0.0051, 4.2 standard errors);
    2 * estimate - mean of the bootstrap estimates leaves +0.0012. Kills: a correction with the wrong sign
    (estimate + bias: +0.0090); no correction (the biases would be equal)."""
    rng = np.random.default_rng(5)
    y0 = bent((-0.10, -0.12), (300.0,))
    results = [steepest_drop(N, y0 + 0.03 * rng.standard_normal(N.size), phases=2, n_resamples=199, rng=rng)
               for _ in range(150)]
    raw = np.array([r.estimate for r in results]) - 0.12
    corrected = np.array([r.corrected for r in results]) - 0.12
    assert raw.mean() > 3 * raw.std(ddof=1) / np.sqrt(raw.size)
    assert abs(corrected.mean()) < raw.mean()
    assert all(r.corrected == pytest.approx(2 * r.estimate - (r.estimate + r.bias)) for r in results)


def test_steepest_drop_is_unbiased_where_the_phases_differ_clearly():
    # A noiseless curve has zero bootstrap spread: estimate = corrected = the true steepest drop
    # (kills a bias correction that adds a bias where there is none, e.g. one computed against the wrong phase)
    res = steepest_drop(N, bent((-0.3, -0.05), (300.0,)), n_resamples=50, rng=np.random.default_rng(0))
    assert res.phases == 2 and res.estimate == pytest.approx(0.3) and res.corrected == pytest.approx(0.3)
    assert res.se == pytest.approx(0.0, abs=1e-9)
