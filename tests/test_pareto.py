"""The Pareto mass assumption: entropy offset, its convergence rate, and the MLE fit with goodness of fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elastic_theory import pareto
from elastic_theory.tree import TokenTree


def test_entropy_offset_formula():
    """offset(M, alpha) = ln M + ln(alpha/(alpha-1)) - 1/(alpha-1): at alpha = 2 it is ln M + ln 2 - 1."""
    assert pareto.entropy_offset(1000, 2.0) == pytest.approx(math.log(1000) + math.log(2) - 1, rel=4 * np.finfo(float).eps)
    with pytest.raises(ValueError, match=r"alpha must be finite and > 1 \(no finite mean"):
        pareto.entropy_offset(1000, 1.0)
    with pytest.raises(ValueError, match="M must be >= 1"):
        pareto.entropy_offset(0, 2.0)


def test_sample_masses_is_a_distribution_and_seeded():
    """Masses are positive, sum to 1, and the same seed gives the same draw."""
    a = pareto.sample_masses(1000, 1.5, np.random.default_rng(1))
    b = pareto.sample_masses(1000, 1.5, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert (a > 0).all() and a.sum() == pytest.approx(1.0, abs=1000 * np.finfo(float).eps)  # n-term sum
    for bad, message in (
        (dict(M=0, alpha=2.0), "M .* must be an integer >= 1"),
        (dict(M=10, alpha=-1.0), r"alpha must be finite and > 0, got -1.0"),  # sampling needs only alpha > 0
        (dict(M=10, alpha=2.0, x_m=0.0), "x_m must be finite and > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            pareto.sample_masses(rng=np.random.default_rng(0), **bad)


def test_entropy_converges_at_the_clt_rate():
    """alpha = 4 (finite variance): median |H - offset| ~ M^(-1/2); fitted slope within 0.2, error < 0.01 nats at 2^16."""
    run = pareto.entropy_convergence(4.0, (2**10, 2**12, 2**14, 2**16), 48, np.random.default_rng(0))
    # Measured over 10 seeds (64 repetitions): slope mean -0.45, std 0.05; 0.2 is about 4 std.
    assert abs(run.fitted_exponent - (-0.5)) <= 0.2
    assert run.points[-1].median_abs_error < 0.01
    assert run.predicted_exponent == -0.5


def test_predicted_exponent_heavy_tail():
    """1 < alpha < 2: exponent 1/alpha - 1 (stable-law fluctuations)."""
    assert pareto.predicted_exponent(1.5) == 1 / 1.5 - 1  # the same two float operations
    with pytest.raises(ValueError, match="at least two values of M to fit a rate"):
        pareto.entropy_convergence(2.0, (100,), 4, np.random.default_rng(0))


def test_fit_recovers_alpha():
    """MLE on 2000 Pareto(1, 2.5) draws lies within 4 standard errors (alpha/sqrt(n)) of 2.5; bootstrap p not small."""
    rng = np.random.default_rng(3)
    x = 1.0 + rng.pareto(2.5, size=2000)
    fit = pareto.fit_pareto(x, rng, n_bootstrap=100)
    assert abs(fit.alpha - 2.5) <= 4 * 2.5 / math.sqrt(2000)
    assert fit.bootstrap_pvalue > 0.01
    assert fit.x_m == x.min()


def test_fit_is_scale_free():
    """Masses and counts give the same alpha and KS statistic (only ratios matter)."""
    x = 1.0 + np.random.default_rng(4).pareto(2.0, size=300)
    f1 = pareto.fit_pareto(x, np.random.default_rng(0), n_bootstrap=10)
    f2 = pareto.fit_pareto(7.0 * x, np.random.default_rng(0), n_bootstrap=10)
    assert f1.alpha == pytest.approx(f2.alpha, rel=1e-12)  # log ratios of scaled values: a few eps each
    assert f1.ks_statistic == pytest.approx(f2.ks_statistic, abs=1e-12)


def test_fit_rejects_non_pareto():
    """Exponential data shifted to start at 1 are rejected by the parametric bootstrap (p < 0.05)."""
    rng = np.random.default_rng(5)
    fit = pareto.fit_pareto(1.0 + rng.exponential(size=500), rng, n_bootstrap=100)
    assert fit.bootstrap_pvalue < 0.05
    assert fit.ks_pvalue_plain >= 0.0


def test_fit_on_token_tree():
    """A token tree's leaf masses can be fitted directly."""
    tree = TokenTree.from_sequences([[0], [1], [0, 1], [1, 1]], 2, counts=[100, 10, 3, 1])
    fit = pareto.fit_pareto(tree, np.random.default_rng(0), n_bootstrap=20)
    assert fit.n == 4 and fit.x_m == 1 / 114  # smallest mass: count 1 of 114, one correctly rounded division


def test_fit_bad_input():
    """Fewer than 2 masses, non-positive masses, all-equal masses and n_bootstrap < 1 raise."""
    rng = np.random.default_rng(0)
    for bad, message in (([1.0], "at least 2"), ([1.0, -1.0], "at least 2"), ([2.0, 2.0, 2.0], "all masses are equal")):
        with pytest.raises(ValueError, match=message):
            pareto.fit_pareto(np.array(bad), rng)
    with pytest.raises(ValueError, match="n_bootstrap must be >= 1"):
        pareto.fit_pareto(np.array([1.0, 2.0]), rng, n_bootstrap=0)
