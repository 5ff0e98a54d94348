"""Behaviour scores on two scales, the paired drop comparison, and data to revert."""

import math

import numpy as np
import pytest

from elastic_theory.stats.behaviour import behaviour_score, compare_drops, data_to_revert, logit


def test_score_is_the_mean_probability_and_its_logit():
    s = behaviour_score([0.9, 0.7, 0.2])
    assert s.probability == pytest.approx(0.6) and s.log_odds == pytest.approx(math.log(1.5))
    assert s.n_prompts == 3
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        behaviour_score([0.5, 1.5])


def _drops(start, end):
    return {"probability": list(start - end), "log_odds": list(logit(start) - logit(end))}


def test_drop_comparison_flips_with_the_scale():
    """Less alignment starts at 0.7 and loses 0.28; more alignment starts at 0.97 and loses 0.20.

    In probability the less-aligned model falls faster; in log-odds (1.17 vs 2.27 nats) the more-aligned
    one does. Per-seed jitter of 0.002 keeps the intervals narrow but not degenerate."""
    jitter = np.array([0.0, 0.002, -0.002])
    small = _drops(0.7 + jitter, 0.42 + jitter)
    large = _drops(0.97 + jitter, 0.77 + jitter)
    cmp = compare_drops(small, large)
    assert cmp.faster_after_more == {"probability": False, "log_odds": True}
    assert not cmp.scales_agree and cmp.verdict.startswith("scale-dependent")
    same = compare_drops(small, _drops(0.7 + jitter, 0.30 + jitter))
    assert same.faster_after_more == {"probability": True, "log_odds": True} and same.scales_agree


def test_unresolved_when_the_interval_contains_zero():
    d = {"probability": [0.1, 0.2, 0.3], "log_odds": [1.0, 2.0, 3.0]}
    e = {"probability": [0.2, 0.1, 0.3], "log_odds": [2.0, 1.0, 3.0]}
    assert compare_drops(d, e).faster_after_more == {"probability": None, "log_odds": None}


def test_data_to_revert_interpolates_log_kl():
    """KL = exp(-n/100): ln KL is linear in n, so the interpolated crossing of eps is exact, -100 ln eps."""
    n = np.array([0, 100, 200, 400, 800.0])
    kl = np.exp(-n / 100)
    assert data_to_revert(n, kl, 0.01) == pytest.approx(-100 * math.log(0.01), rel=1e-12)
    assert data_to_revert(n, kl, 2.0) == 0.0
    assert data_to_revert(n, kl, 1e-9) == math.inf
    with pytest.raises(ValueError, match="strictly increasing"):
        data_to_revert([0, 0, 1], [1, 1, 1], 0.1)


def test_first_crossing_interpolates_linearly_in_the_amount():
    """A score falling linearly from 0.8 by 0.001 per example reaches 0.35 at exactly 450 examples.

    An interpolation in ln(amount) instead would land at 64 * (512/64)**((0.736 - 0.35)/(0.736 - 0.288)) != 450."""
    from elastic_theory.stats.behaviour import first_crossing

    n = np.array([0, 64, 128, 256, 512, 1024.0])
    score = 0.8 - 0.001 * n
    assert first_crossing(n, score, 0.35) == pytest.approx(450.0, rel=1e-12)
    assert first_crossing(n, score, 0.9) == 0.0 and first_crossing(n, score, -1.0) == math.inf
