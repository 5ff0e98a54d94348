"""joint-ratio's analysis on hand-made rows (no training): each seed against its own prediction, and the verdict
certified only where the rate-error bound at the measured KL is below the measured changes."""

import math

import pytest
import scipy.stats  # noqa: F401  (the intervals import it lazily; at collection its import time is not a test's)

from elastic_theory.experiments.synthetic._joint_ratio_analysis import (
    rate_error_bound_bits, seed_comparison, summarize, summary_rows,
)

SHARES = {"align": 0.2, "pretrain": 0.8}
LENGTH = 3.0


def _rows(k: float, seed: int, *, optimum: tuple[float, float], measured: tuple[float, float], kl: float = 0.0):
    """Rows at l = 0 and l = 0.2 of one seed: the optimum's changes (d gamma_a, d gamma_p) and the measured ones,
    from rates of 1 bit per token at l = 0; both models at KL ``kl`` (bits) from their optima."""
    common = {"k": k, "seed": seed, "kl_to_optimum_bits": kl, "kl_rounding_bits": 0.0, "R_derivative_l0_predicted": k,
              **{f"share_{r}": s for r, s in SHARES.items()}, **{f"mean_length_{r}": LENGTH for r in SHARES}}
    base = {**common, "l": 0.0, "gamma_align": 1.0, "gamma_pretrain": 1.0,
            "gamma_align_optimum": 1.0, "gamma_pretrain_optimum": 1.0}
    moved = {**common, "l": 0.2, "gamma_align": 1.0 + measured[0], "gamma_pretrain": 1.0 + measured[1],
             "gamma_align_optimum": 1.0 + optimum[0], "gamma_pretrain_optimum": 1.0 + optimum[1]}
    return [base, moved]


def _summary(rows, seeds):
    ks = sorted({r["k"] for r in rows})
    thresholds = {(k, s): 1.0 for k in ks for s in seeds}
    return summary_rows(rows, ks, 0.2, seeds, {}, thresholds)


def _results(summary):
    return {"l_ratio": 0.2, "l_star": 0.25, "warm_start": True, "summary": summary}


def test_sampled_seeds_are_each_compared_with_the_prediction_for_their_own_data():
    """Two seeds with different data (predictions 36 and 30), each measured at its own prediction: every per-seed
    relative error is 0 and so is their mean. Kills a summary that compares every seed with seed 0's prediction
    (it reported seed 1 at 30/36 - 1 = -17%, the mean at -8%)."""
    rows = (_rows(16.0, 0, optimum=(3.6e-3, -1e-4), measured=(3.6e-3, -1e-4))
            + _rows(16.0, 1, optimum=(3.0e-3, -1e-4), measured=(3.0e-3, -1e-4)))
    (s,) = _summary(rows, (0, 1))
    assert s["R_predicted_per_seed"] == [pytest.approx(36.0), pytest.approx(30.0)]
    assert s["R_relative_error_per_seed"] == [pytest.approx(0.0, abs=1e-12)] * 2
    assert s["R_relative_error"] == pytest.approx(0.0, abs=1e-12) and s["ci_covers_prediction"] and s["within_10pct"]
    assert s["R_measured"] == pytest.approx(33.0) and s["R_predicted"] == pytest.approx(33.0)
    # a real per-seed disagreement still shows: seed 1 measured 10% above its own prediction
    rows[3]["gamma_align"] = 1.0 + 3.3e-3
    (s,) = _summary(rows, (0, 1))
    assert s["R_relative_error_per_seed"] == [pytest.approx(0.0, abs=1e-12), pytest.approx(0.1)]
    assert "| +0%, +10% |" in summarize(_results([s]))


def test_a_seed_whose_bound_exceeds_the_signal_is_not_certified_and_named():
    """Seed 0 at KL 0 (bound 0) is certified; seed 1 at KL 1e-6 bits, where rate_error_bound_bits is about 1e-3 bits per
    token against a change of gamma_p of 1e-4, is not, and is named with its bound/signal. Kills a verdict that always
    says certified, and one that ignores the KL."""
    change = (3.6e-3, -1e-4)
    rows = _rows(16.0, 0, optimum=change, measured=change) + _rows(16.0, 1, optimum=change, measured=change, kl=1e-6)
    (s,) = _summary(rows, (0, 1))
    assert s["certified_per_seed"] == [True, False] and s["seeds_not_certified"] == [1]
    bound_p = 2 * rate_error_bound_bits(1e-6, SHARES["pretrain"], LENGTH)
    assert bound_p > 1e-4
    assert s["bound_to_signal_pretrain_per_seed"] == [0.0, pytest.approx(bound_p / 1e-4)]
    assert s["bound_to_signal"] == pytest.approx(bound_p / 1e-4)
    assert s["verdict"] == "agrees within the optimizer's spread, not certified"
    text = summarize(_results([s]))
    assert f"k = 16, seed 1: KL 1e-06 bits, bound/signal {2 * rate_error_bound_bits(1e-6, 0.2, 3.0) / 3.6e-3:.2g} (dgamma_a), " \
           f"{bound_p / 1e-4:.2g} (dgamma_p)" in text
    assert "| 1/2 | agrees within the optimizer's spread, not certified |" in text
    (converged,) = _summary(rows[:2], (0,))
    assert converged["verdict"] == "certified" and converged["seeds_not_certified"] == []
    assert "Not certified" not in summarize(_results([converged]))


def test_the_certified_interval_of_R_is_the_bound_propagated_through_the_ratio():
    """Converged enough to certify (bound/signal rho_a, rho_p < 1): the optimum's R lies in
    R_meas [(1 - rho_a)/(1 + rho_p), (1 + rho_a)/(1 - rho_p)]; a prediction outside it is a certified disagreement.
    Kills an interval that ignores one of the two changes, and a check that never compares (a planted wrong
    prediction, R of k = 8 instead of 16, would pass as certified)."""
    kl = 1e-12
    rows = _rows(16.0, 0, optimum=(3.6e-3, -1e-4), measured=(3.6e-3, -1e-4), kl=kl)
    c = seed_comparison(*rows)
    ra, rp = (2 * rate_error_bound_bits(kl, SHARES[r], LENGTH) / abs(d) for r, d in (("align", 3.6e-3), ("pretrain", -1e-4)))
    assert 0 < ra < rp < 1 and c["certified"] and c["certified_agreement"]
    assert c["R_certified_interval"] == [pytest.approx(36 * (1 - ra) / (1 + rp), rel=1e-12),
                                         pytest.approx(36 * (1 + ra) / (1 - rp), rel=1e-12)]
    rows[1]["gamma_align_optimum"] = 1.0 + 1.8e-3  # the prediction halved: 18 where 36 is measured
    (s,) = _summary(rows, (0,))
    assert s["certified_per_seed"] == [True] and s["verdict"] == "certified disagreement"


def test_not_certified_and_outside_the_spread_is_said_so():
    """Both seeds unconverged and both 20% above their prediction: not 'agrees'. Kills a verdict that says "agrees"
    whenever it cannot certify."""
    rows = (_rows(4.0, 0, optimum=(3e-3, -1e-3), measured=(3.6e-3, -1e-3), kl=1e-3)
            + _rows(4.0, 1, optimum=(3e-3, -1e-3), measured=(3.61e-3, -1e-3), kl=1e-3))
    (s,) = _summary(rows, (0, 1))
    assert s["seeds_not_certified"] == [0, 1] and s["ci_covers_prediction"] is False
    assert s["verdict"] == "differs beyond the optimizer's spread, not certified"
    (one,) = _summary(rows[:2], (0,))
    assert one["verdict"] == "not certified (one seed: no spread)" and not math.isnan(one["bound_to_signal"])
