"""Phase fits in ln(1 + n): exact recovery, the exact knot search, the BIC choice, its stability, the pattern names.

Each test names in a comment the wrong implementation it kills. The design is the synthetic rebound experiment's:
n- in {0, 64, ..., 4096} (8 amounts, n- = 0 included), 5 seeds per amount unless a test says otherwise.
"""

import math

import numpy as np
import pytest

from elastic_theory.stats.phases import fit_phases, pattern_of, select_phases
from elastic_theory.theory.tolerances import EPS

AMOUNTS = np.array([0, 64, 128, 256, 512, 1024, 2048, 4096.0])
SEEDS = 5
#: float64 results of a few hundred operations on values of order 1: the house's 4 sqrt(eps) (about 6e-8)
TOL = 4 * math.sqrt(EPS)


def curve(amounts, intercept, slopes, knot_amounts):
    """The continuous piecewise-linear curve in t = ln(1 + n), written out independently of the library's basis."""
    t = np.log1p(np.asarray(amounts, dtype=np.float64))
    y = intercept + slopes[0] * t
    for j, k in enumerate(np.log1p(knot_amounts)):
        y = y + (slopes[j + 1] - slopes[j]) * np.maximum(t - k, 0.0)
    return y


CASES = {
    "one phase": ((-0.1,), ()),
    # knot at n = 100, between 64 and 128: outside the hinge range [128, 2048] of a fit that drops n = 0
    "two phases, early knot": ((-0.3, -0.05), (100.0,)),
    "two phases, knot on a data value": ((-0.05, -0.2), (512.0,)),
    "three phases, slow fast slow": ((-0.057, -0.237, -0.124), (200.0, 1500.0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_noiseless_curves_are_recovered_exactly_and_the_phase_count_is_right(case):
    """Noiseless 1-, 2- and 3-phase curves: slopes, knots and the score at n = 0 to 4 sqrt(eps); BIC picks the truth.

    Kills: knots confined to a fixed window (the knot at n = 100 lies below 128); n = 0 dropped (the early knot's
    first phase holds only n = 0 and 64, and the intercept is the score at n = 0); ln n for ln(1 + n) (ln 0);
    a grid search without refinement (n = 100, 200, 1500 are on no grid, the error would be the grid step);
    an RSS without the rounding floor (exact 2- and 3-phase fits of a line would tie at random)."""
    slopes, knots = CASES[case]
    n = np.tile(AMOUNTS, 2)
    y = curve(n, 0.8, slopes, knots)
    selection = select_phases(n, y)
    assert selection.phases == len(slopes)
    fit = selection.best
    assert fit.slopes == pytest.approx(slopes, abs=TOL)
    assert fit.knots == pytest.approx(tuple(np.log1p(knots)), abs=TOL)
    assert fit.knot_amounts == pytest.approx(knots, rel=TOL)
    assert fit.intercept == pytest.approx(0.8, abs=TOL)
    assert np.allclose(fit.predict(n), y, atol=TOL, rtol=0)


def _grid_rss(t, y, knot_tuples):
    """RSS of every knot tuple by brute force (normal equations per tuple), for the comparison below."""
    X = np.stack([np.column_stack([np.ones_like(t), t, *(np.maximum(t - k, 0.0) for k in ks)]) for ks in knot_tuples])
    coef = np.linalg.solve(np.einsum("gni,gnj->gij", X, X), np.einsum("gni,n->gi", X, y)[..., None])[..., 0]
    r = y - np.einsum("gni,gi->gn", X, coef)
    return np.einsum("gn,gn->g", r, r)


def test_the_knot_search_is_exact_least_squares():
    """On a noisy curve no knot tuple of a fine brute-force grid (about 0.01 apart in t) beats the search.

    Kills: a wrong closed form for a knot inside a gap (a sign error puts it elsewhere); a feasibility check that
    keeps knots outside their gap (its RSS is that of a discontinuous fit; the returned knots then fit worse);
    a search that misses the placements of a knot on a data value."""
    rng = np.random.default_rng(11)
    n = np.tile(AMOUNTS, SEEDS)
    t = np.log1p(n)
    y = curve(n, 0.8, (-0.057, -0.237, -0.124), (200.0, 1500.0)) + 0.02 * rng.standard_normal(n.size)
    u = np.unique(t)
    positions = np.linspace(u[1], u[-2], 300)
    singles = [(k,) for k in positions]
    pairs = [(a, b) for i, a in enumerate(positions[::2]) for b in positions[::2][i + 1:]
             if np.count_nonzero((u >= a) & (u <= b)) >= 2]
    for knots in (singles, pairs):
        fit = fit_phases(n, y, len(knots[0]) + 1)
        best = _grid_rss(t, y, knots).min()
        assert fit.rss <= best * (1 + 1e-9)
        assert fit.rss == pytest.approx(_grid_rss(t, y, [fit.knots])[0], rel=1e-9)


def test_a_slow_fast_slow_curve_with_small_noise_is_three_phases():
    """The issue's drops per e-fold 0.057, 0.237, 0.124 with noise sd 0.01: 3 phases, named slow-fast-slow.

    Kills: a two-phase model (it must call the curve slow-fast or fast-slow, whichever slow part weighs more);
    naming phases by their global rank ("slow-fast-medium")."""
    rng = np.random.default_rng(4)
    n = np.tile(AMOUNTS, SEEDS)
    y = curve(n, 0.8, (-0.057, -0.237, -0.124), (200.0, 1500.0)) + 0.01 * rng.standard_normal(n.size)
    selection = select_phases(n, y, n_bootstrap=99, rng=rng)
    assert selection.phases == 3 and selection.best.pattern == "slow-fast-slow"
    assert selection.best.drops == pytest.approx((0.057, 0.237, 0.124), abs=0.03)
    assert selection.stability >= 0.9
    assert selection.as_dict()["pattern"] == "slow-fast-slow"


def test_a_noisy_straight_line_is_one_phase():
    """200 seeded noisy lines: BIC chooses one phase in at least 90% (at least 180 of 200).

    The bound from the binomial: over 20,000 lines of this design BIC chooses one phase with probability 0.965
    (docs/phases.md, ``scripts/phases_study.py``), so a correct fit falls below 180 with probability
    P(Binomial(200, 0.965) <= 179) = 8e-6. Killed: AIC (4 per knot; 0.811, passes with probability 4e-4) and BIC
    counting one parameter per knot (0.777, passes with probability 4e-6). The selection is invariant to the
    line and the noise scale, so one line and one sd stand for all."""
    rng = np.random.default_rng(2)
    n = np.tile(AMOUNTS, SEEDS)
    line = 0.5 - 0.1 * np.log1p(n)
    ones = sum(select_phases(n, line + 0.02 * rng.standard_normal(n.size)).phases == 1 for _ in range(200))
    assert ones >= 180


def test_stability_is_seeded_and_grouped_resampling_keeps_whole_curves():
    """The bootstrap stability is a function of the seed; grouped residuals need every group on the same amounts.

    Kills: a global RNG (two runs with one seed differ); grouped draws that mix points of different amounts."""
    rng = np.random.default_rng(9)
    n = np.tile(AMOUNTS, SEEDS)
    seeds = np.repeat(np.arange(SEEDS), AMOUNTS.size)
    y = curve(n, 0.8, (-0.3, -0.05), (100.0,)) + 0.03 * rng.standard_normal(n.size)
    a, b = (select_phases(n, y, n_bootstrap=50, rng=np.random.default_rng(1), groups=seeds) for _ in range(2))
    assert a == b and a.phases == 2 and 0.5 <= a.stability <= 1
    with pytest.raises(ValueError, match="same amounts"):
        select_phases(n[1:], y[1:], n_bootstrap=5, rng=rng, groups=seeds[1:])


def test_pattern_names_each_phase_against_the_one_before():
    # Kills: naming by global rank (0.057, 0.237, 0.124 would read slow-fast-medium) and a drop/slope sign mix-up
    assert pattern_of([0.057, 0.237, 0.124]) == "slow-fast-slow"
    assert pattern_of([0.3, 0.05]) == "fast-slow" and pattern_of([0.05, 0.3]) == "slow-fast"
    assert pattern_of([0.3, 0.2, 0.1]) == "fast-slow-slow" and pattern_of([0.1]) == "single"
    fit = fit_phases(AMOUNTS, curve(AMOUNTS, 0.0, (-0.3, -0.05), (100.0,)), 2)
    assert fit.pattern == "fast-slow" and fit.drops == pytest.approx((0.3, 0.05), abs=TOL)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=">= 0"):
        fit_phases([-1, 1, 2, 3], [1, 2, 3, 4], 1)
    with pytest.raises(ValueError, match="phases must be 1, 2 or 3"):
        fit_phases(AMOUNTS, AMOUNTS, 4)
    with pytest.raises(ValueError, match=">= 4 distinct amounts"):
        fit_phases([0, 0, 1, 1, 2, 2, 2, 2], np.arange(8.0), 3)
    with pytest.raises(ValueError, match="explicit rng"):
        select_phases(AMOUNTS, AMOUNTS, n_bootstrap=5)
    with pytest.raises(ValueError, match="finite"):
        fit_phases(AMOUNTS, [math.nan] * 8, 1)
