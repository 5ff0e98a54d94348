"""The two-grid claim rule, its Benjamini-Hochberg family and its calibration by simulation.

Each test names in a comment the wrong implementation it kills. Design: n- in {0, 64, ..., 4096}, 5 seeds.
"""

import numpy as np
import pytest
from scipy.stats import binomtest, false_discovery_control

from elastic_theory.stats.phase_claim import (calibrate_claims, claim, claim_orders, every_other, max_phases,
                                              noise_components, order_on_grids)

AMOUNTS = np.array([0, 64, 128, 256, 512, 1024, 2048, 4096.0])
N = np.tile(AMOUNTS, 5)
T = np.log1p(N)
SEED = np.repeat(np.arange(5), AMOUNTS.size)


def test_every_other_keeps_both_ends_and_max_phases_follows_the_fit_rule():
    """Kills: a subgrid that drops n = 0 or the last amount (it would cover a shorter range than the full grid); a
    phase limit that ignores the points (2P + 2) or the distinct amounts (P + 1)."""
    assert every_other(AMOUNTS) == (0, 128, 512, 2048, 4096)
    assert every_other(AMOUNTS[:-1]) == (0, 128, 512, 2048)
    assert every_other([4, 0, 8, 4]) == (0, 8)
    assert [max_phases(d, p) for d, p in ((8, 40), (4, 8), (4, 7), (3, 12), (2, 10), (1, 5))] == [3, 3, 2, 2, 1, 0]


@pytest.mark.parametrize(("patterns", "p", "want"), [
    (["fast-slow", "fast-slow"], [0.01, 0.04], "fast-slow"),
    (["fast-slow", "slow-fast"], [0.001, 0.001], "no order"),  # the grids disagree
    (["fast-slow", "fast-slow"], [0.001, 0.06], "no order"),  # one grid not significant
    (["single", "single"], [1.0, 1.0], "no order"),
    (["fast-slow"], [0.001], "no order"),  # one grid only: nothing to check it against
    (["slow-fast-slow", "slow-fast-slow"], [0.05, 0.05], "slow-fast-slow"),  # at the level: claimed (p <= level)
])
def test_an_order_is_claimed_only_when_both_grids_agree_and_pass(patterns, p, want):
    """Kills: a claim from the full grid alone, from the pattern without the p-values, or with p < level."""
    assert claim(patterns, p, 0.05) == want


def test_the_run_is_one_family_and_each_curve_is_claimed_on_its_adjusted_p_values():
    """A fast-slow curve, a slow-fast curve and a line: BH over all 6 p-values, the two bends claimed in their order.

    Kills: adjusting each curve's two p-values on their own (compare with scipy over all six); a drop/slope sign
    mix-up in the claimed order."""
    rng = np.random.default_rng(4)
    knot = np.log1p(300.0)
    shapes = [-0.3 * np.minimum(T - knot, 0) - 0.05 * np.maximum(T - knot, 0),
              -0.05 * np.minimum(T - knot, 0) - 0.3 * np.maximum(T - knot, 0), -0.1 * T]
    curves = [order_on_grids(N, y + 0.02 * rng.standard_normal(N.size), groups=SEED, rng=rng) for y in shapes]
    out, family = claim_orders(curves, 0.05)
    raw = [p for c in curves for p in c.p_values]
    assert family == 6 and [v for e in out for v in e["p_adjusted"].values()] == pytest.approx(
        list(false_discovery_control(raw, method="bh")), rel=1e-12)
    assert [e["claim"] for e in out] == ["fast-slow", "slow-fast", "no order"]
    assert curves[0].grids["every_other"].amounts == (0, 128, 512, 2048, 4096)
    assert curves[0].line_drop == pytest.approx(-np.polyfit(T, shapes[0], 1)[0], abs=0.02)


@pytest.mark.slow  # 2 x 200 simulated curves, each tested on two grids with 999 resamples
def test_calibration_size_is_at_most_q_and_power_finds_the_papers_order():
    """Size: straight lines must be claimed at most q = 0.05 of the time (one-sided binomial test at 0.001 against
    rate q over 200 curves). Power: a fast-then-slow curve (drops 0.3, 0.1) with noise sd 0.002, fifty times below the
    drop change per e-fold, must be claimed as fast-slow at q/m in at least 90% of curves (its misses come from BIC
    adding a third phase, a few percent on straight lines, docs/phases.md). A size reused for another noise level is
    returned as given.

    Kills: power counting any claim or simulating the reverse order (it would be near 0 for "fast-slow"); a size
    simulated without the two-grid rule (it would exceed q); thresholds swapped (power_low > power_high)."""
    rng = np.random.default_rng(5)
    cal = calibrate_claims(AMOUNTS, seeds=5, sigma=0.002, drop=0.2, q=0.05, family=6, n_curves=200, rng=rng)
    assert binomtest(round(cal.size * 200), 200, 0.05, alternative="greater").pvalue > 1e-3
    assert cal.power_low >= 0.9 and cal.power_low <= cal.power_high
    assert cal.knot_amount == pytest.approx(512) and cal.family == 6 and cal.n_resamples == 999
    none = calibrate_claims(AMOUNTS, seeds=5, sigma=0.0, drop=0.2, family=6, n_curves=10, rng=rng)
    assert none.power_low is None and none.power_high_ci is None and 0 <= none.size <= 1


def test_a_grid_whose_every_other_amounts_carry_no_order_test_can_never_claim():
    """n = 0, 4, 8 (the quick lm-rebound grid): every other amount is 0, 8, a line only, so size and power are 0.

    Kills: a calibration that simulates the full grid alone there (its power would be far above 0 for a drop of 0.5
    per e-fold at noise 0.01)."""
    cal = calibrate_claims([0, 4, 8], seeds=2, sigma=0.01, drop=0.5, family=4, n_curves=20,
                           rng=np.random.default_rng(7))
    assert (cal.size, cal.power_low, cal.power_high) == (0.0, 0.0, 0.0)


def test_noise_components_split_seed_offsets_from_point_noise():
    """Exact offsets and no point noise give tau = their sd and sigma = 0; many seeds of pure point noise give
    sigma^2 within 3 standard errors (relative sd sqrt(2/df), df = (S - 1)(L - 1)) and tau near 0.

    Kills: the total replicate spread as the point noise (offsets would leak into sigma); tau without the
    sigma^2/L correction (the second case would give tau = sigma/sqrt(8) = 0.35 sigma)."""
    offsets = np.array([0.3, -0.1, 0.0, 0.2, -0.4])
    y = -0.1 * T + np.repeat(offsets, AMOUNTS.size)
    sigma, tau = noise_components(N, y, SEED)
    assert sigma == pytest.approx(0.0, abs=1e-12) and tau == pytest.approx(np.std(offsets, ddof=1), rel=1e-12)
    S = 400
    n = np.tile(AMOUNTS, S)
    y = np.random.default_rng(6).standard_normal(n.size)
    sigma, tau = noise_components(n, y, np.repeat(np.arange(S), AMOUNTS.size))
    assert sigma ** 2 == pytest.approx(1.0, abs=3 * np.sqrt(2 / ((S - 1) * 7))) and tau < 0.15
