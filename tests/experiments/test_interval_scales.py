"""The experiments' intervals on their quantities' scales: rates, KLs, amounts, and the one definition of min KL."""

import math

import numpy as np
import pytest

from elastic_theory.experiments._stats import amount_interval, format_amount, min_kl_per_seed, quantity_interval
from elastic_theory.stats.behaviour import data_to_revert


def test_each_quantity_gets_its_scale_and_stays_inside_its_bounds():
    """Two seeds: a raw t-interval would cross 0 for the probability and the KL (t = 12.7); on their scales they
    cannot, and margins stay linear (a margin may be negative: a log scale would refuse it)."""
    p = quantity_interval("probability", [0.05, 0.3])
    kl = quantity_interval("kl_bits_per_token", [0.0448, 0.074])
    assert p["scale"] == "logit" and 0 < p["low"] < 0.05 and 0.3 < p["high"] < 1
    assert kl["scale"] == "log" and 0 < kl["low"] < 0.0448 and kl["mean"] == pytest.approx(math.sqrt(0.0448 * 0.074))
    margin = quantity_interval("margin_per_token", [-0.5, 0.3])
    assert margin["scale"] == "linear" and margin["mean"] == pytest.approx(-0.1) and margin["low"] < -0.5
    refusals = quantity_interval("refusal_rate", [0.0, 0.5], trials=4)  # the "0.25 [-2.93, 3.43]"
    assert 0 < refusals["low"] < refusals["high"] < 1
    sentiment = quantity_interval("sentiment", [0.7, 0.95])  # a mean VADER compound: raw interval passes 1
    assert sentiment["scale"] == "artanh" and -1 < sentiment["low"] and sentiment["high"] < 1
    with pytest.raises(ValueError, match="no interval scale for the quantity 'entropy'"):
        quantity_interval("entropy", [1.0, 2.0])


def test_amounts_get_a_log_interval_or_their_per_seed_values():
    """'back to base 4 [-46.8, 54.8]': amounts 1 and 7 of two seeds. On the log scale the interval is positive; a seed
    at 0 (back at once) or never back has no log-scale interval, and the cell shows every seed instead."""
    ci = amount_interval([1.0, 7.0])
    assert ci["low"] > 0 and ci["mean"] == pytest.approx(math.sqrt(7.0))
    assert amount_interval([0.0, 7.0]) is None and amount_interval([3.0, math.inf]) is None
    assert format_amount(None, [0.0, math.inf, 12.5]) == "per seed 0, never, 12.5"
    assert format_amount(None, [0.0, None, 12.5]) == "per seed 0, never, 12.5"  # never, as a results.json saves it
    assert format_amount(None, [math.inf, None]) == "never"
    assert format_amount(ci, [1.0, 7.0]).startswith("2.65 [")


def test_min_kl_includes_the_unperturbed_point_so_it_agrees_with_data_to_revert():
    """One definition: the minimum over every point of the curve, m = 0 included, the points data_to_revert searches.
    Then min KL <= eps exactly when data to revert is finite. Skipping m = 0 (the old table) breaks that on a curve
    that starts within eps and then moves away: data to revert 0, "min KL" 0.2."""
    amounts = [0, 8, 16, 32]
    curve = [0.005, 0.2, 0.3, 0.25]
    assert min_kl_per_seed([curve]) == [0.005] and data_to_revert(amounts, curve, 0.01) == 0.0
    rng = np.random.default_rng(3)
    for _ in range(200):
        kl = list(np.exp(rng.normal(-3.5, 1.5, 4)))
        reached = math.isfinite(data_to_revert(amounts, kl, 0.01))
        assert (min_kl_per_seed([kl])[0] <= 0.01) == reached
