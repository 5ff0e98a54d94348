"""The two-phase fit: exact recovery, breakpoint-interval coverage, and the two-phase test's size and power."""

import math

import numpy as np
import pytest

from elastic_theory.stats.twophase import fit_two_phase, hinge

AMOUNTS = np.array([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000.0])


@pytest.mark.parametrize("breakpoint", [4.0, 30.0, 300.0])
def test_noiseless_hinge_is_recovered_exactly(breakpoint):
    """On a noiseless curve the RSS is 0 only at the true breakpoint: recovered to the optimizer's tolerance.

    A fit linear in x (not ln x), or a discontinuous two-line fit, would put the break elsewhere."""
    y = hinge(AMOUNTS, 0.5, -0.2, -0.02, math.log(breakpoint))
    fit = fit_two_phase(AMOUNTS, y)
    assert fit.breakpoint == pytest.approx(breakpoint, rel=1e-6)
    assert (fit.slope_before, fit.slope_after, fit.intercept) == pytest.approx((-0.2, -0.02, 0.5), abs=1e-8)
    assert fit.ci[0] <= breakpoint <= fit.ci[1] and fit.ci[1] / fit.ci[0] < 1 + 1e-5
    assert np.allclose(fit.predict(AMOUNTS), y, atol=1e-9)


def test_breakpoint_interval_covers_the_truth_at_about_the_nominal_level():
    """Profile-likelihood 95% intervals on 3 replicates x 10 amounts, noise sd 0.02 (a tenth of the early drop).

    Breakpoints are non-regular, so coverage is approximate: measured 0.915 on 200 replicates. The
    binomial sd at 200 replicates is 0.02, so >= 0.85 is a 3-sd floor. Wrong critical values are
    caught: chi2_1(0.95) = 3.84 replaced by 1 (a 68% interval) covers about 0.7; the bound on the mean
    width (a factor exp(0.6) = 1.8 either side of a true break at 30) catches a much too wide one."""
    rng = np.random.default_rng(3)
    true_c = math.log(30.0)
    x = np.repeat(AMOUNTS, 3)
    y0 = hinge(x, 0.5, -0.2, -0.02, true_c)
    fits = [fit_two_phase(x, y0 + 0.02 * rng.standard_normal(x.size)) for _ in range(200)]
    coverage = np.mean([f.ci_log[0] <= true_c <= f.ci_log[1] for f in fits])
    assert coverage >= 0.85
    assert np.mean([f.ci_log[1] - f.ci_log[0] for f in fits]) < 1.2


def test_two_phase_test_has_its_size_under_a_line_and_power_under_a_hinge():
    """Parametric-bootstrap p-value (19 resamples, so p <= 0.05 means 'beyond every resample').

    Size: 30 straight lines; expected 1.5 rejections at 5%, P(>= 7 | Binomial(30, 0.05)) = 3e-4.
    Power: 10 clear hinges (slopes -0.2 then -0.02, noise 0.02): all but at most one rejected."""
    rng = np.random.default_rng(7)
    x = np.repeat(AMOUNTS, 3)
    line = 0.5 - 0.1 * np.log(x)
    false = sum(fit_two_phase(x, line + 0.02 * rng.standard_normal(x.size), n_bootstrap=19, rng=rng).p_two_phase
                <= 0.05 for _ in range(30))
    assert false <= 6
    bent = hinge(x, 0.5, -0.2, -0.02, math.log(30.0))
    hits = sum(fit_two_phase(x, bent + 0.02 * rng.standard_normal(x.size), n_bootstrap=19, rng=rng).p_two_phase
               <= 0.05 for _ in range(10))
    assert hits >= 9


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="every data amount x must be > 0"):
        fit_two_phase([0, 1, 2, 3, 4], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match=">= 4 distinct data amounts"):
        fit_two_phase([1, 1, 2, 2, 3], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="explicit rng"):
        fit_two_phase(AMOUNTS, AMOUNTS, n_bootstrap=5)
