"""Paired rate changes and Fieller's ratio interval (elastic_theory.stats.comparison), on synthetic per-document numbers.

Coverage and power are shown by simulation: each rate below is a fraction of R independent
replications, so its binomial standard deviation is sqrt(p (1 - p) / R); acceptance bands are
nominal +- 3 of those (a false alarm about 3 times in 1000 runs of the suite), plus what is said
where a band is wider.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from elastic_theory.stats.comparison import DatasetScores, compare_rates, fieller_interval, resampling_counts

Z2 = norm.ppf(0.975) ** 2


def _pair(rng: np.random.Generator, n: int, delta: float, sd: float, tokenization: str = "same"):
    """Base and checkpoint scores of n documents whose base rates differ widely (1-3 bits per byte) and
    whose per-byte change is delta plus independent noise of sd: the population change is delta."""
    n_bytes = rng.integers(100, 2000, n)
    base_bits = n_bytes * rng.uniform(1.0, 3.0, n)
    ckpt_bits = base_bits + n_bytes * (delta + sd * rng.standard_normal(n))
    n_tokens = n_bytes // 3
    return (DatasetScores(base_bits, n_tokens, n_bytes, "same"),
            DatasetScores(ckpt_bits, n_tokens if tokenization == "same" else n_bytes // 4, n_bytes, tokenization))


def test_resampling_counts_are_draws_with_replacement():
    counts = resampling_counts(7, 500, np.random.default_rng(0))
    assert counts.shape == (500, 7) and (counts.sum(axis=1) == 7).all()
    # Each document's count is Binomial(7, 1/7): mean 1, variance 6/7; over 500 rows the mean's sd is 0.041.
    assert abs(counts.mean() - 1.0) < 3 * math.sqrt(6 / 7 / 3500)


def test_identical_models_have_a_zero_width_paired_interval():
    """Kills resampling each model on its own: then two identical models would show a spread of changes."""
    base, _ = _pair(np.random.default_rng(0), 30, 0.0, 0.0)
    result = compare_rates({"d": base}, {"same": {"d": base}}, np.random.default_rng(1), n_resamples=300)
    change = result.changes["same"]["d"]
    assert change.delta_bits_per_byte == 0.0 and change.delta_bits_per_byte_ci95 == (0.0, 0.0)
    lo, hi = change.bits_per_byte_ci95
    assert hi - lo > 0.1  # the rate's own interval is wide: documents range over 1-3 bits per byte


@pytest.mark.parametrize("delta", [0.0, 0.01])
def test_paired_interval_covers_and_resolves_a_shift_that_independent_intervals_miss(delta):
    """Coverage of the paired interval at the true change delta, its power to exclude 0, and the
    unpaired intervals' overlap, over R = 300 replications of 60 documents (500 resamples each).

    Measured once with R = 400, 1000 resamples: coverage 0.968 at both deltas; the paired interval
    excluded 0 in 93.5% of runs at delta = 0.01 and in 3.3% at delta = 0 (the false-rejection rate),
    while the two models' own intervals overlapped in 100% of runs at delta = 0.01.
    """
    rng = np.random.default_rng(7)
    R = 300
    covered = excluded = overlapped = 0
    for _ in range(R):
        base, ckpt = _pair(rng, 60, delta, 0.02)
        result = compare_rates({"d": base}, {"c": {"d": ckpt}}, rng, n_resamples=500)
        change = result.changes["c"]["d"]
        lo, hi = change.delta_bits_per_byte_ci95
        covered += lo <= delta <= hi
        excluded += not lo <= 0.0 <= hi
        (bl, bh), (cl, ch) = result.base_bits_per_byte_ci95["d"], change.bits_per_byte_ci95
        overlapped += cl <= bh and bl <= ch
    sd = math.sqrt(0.95 * 0.05 / R)
    assert abs(covered / R - 0.95) <= 3 * sd
    if delta == 0.0:
        assert excluded / R <= 0.05 + 3 * sd  # false rejections at the nominal 5%
    else:
        assert excluded / R >= 0.85  # power (measured 0.935; the band is 3 sd of a rate near 0.93 below it)
        assert overlapped == R  # the unpaired intervals never separate: this shift needs the pairing


def test_changes_equal_pooled_sums_and_token_changes_need_the_same_tokens():
    rng = np.random.default_rng(3)
    base, ckpt = _pair(rng, 20, 0.05, 0.01)
    _, other_tok = _pair(np.random.default_rng(3), 20, 0.05, 0.01, tokenization="other")
    result = compare_rates({"d": base}, {"c": {"d": ckpt}, "t": {"d": other_tok}}, rng, n_resamples=200)
    c = result.changes["c"]["d"]
    assert c.delta_bits_per_byte == pytest.approx((ckpt.bits.sum() - base.bits.sum()) / base.n_bytes.sum(), rel=1e-12)
    assert c.delta_bits_per_token == pytest.approx(ckpt.bits.sum() / ckpt.n_tokens.sum() - base.bits.sum() / base.n_tokens.sum(), rel=1e-12)
    t = result.changes["t"]["d"]
    assert not t.same_tokenization and t.delta_bits_per_token is None and t.delta_bits_per_token_ci95 is None
    assert t.delta_bits_per_byte == pytest.approx(c.delta_bits_per_byte, rel=1e-12)  # same bits, same bytes
    with pytest.raises(ValueError, match="tokenizes dataset 'd' differently from the base"):
        compare_rates({"d": base, "e": base}, {"t": {"d": other_tok, "e": other_tok}}, rng, ratio=("d", "e"), unit="token")


def test_fieller_endpoints_solve_the_quadratic_and_inner_points_satisfy_it():
    """The endpoints are where (N - rD)^2 = z^2 (v_NN - 2 r v_ND + r^2 v_DD), to 4 sqrt(eps) relative."""
    N, D = 10.0, 2.0
    v = np.array([[1.0, 0.1], [0.1, 0.04]])  # positive definite: det 0.03
    lo, hi = fieller_interval(N, D, v)

    def excess(r):
        return (N - r * D) ** 2 - Z2 * (v[0, 0] - 2 * r * v[0, 1] + r * r * v[1, 1])

    scale = (N + hi * D) ** 2
    assert abs(excess(lo)) <= 4 * math.sqrt(np.finfo(float).eps) * scale
    assert abs(excess(hi)) <= 4 * math.sqrt(np.finfo(float).eps) * scale
    assert excess((lo + hi) / 2) < 0 and lo < N / D < hi
    assert excess(lo - 0.1) > 0 and excess(hi + 0.1) > 0


def test_fieller_is_unbounded_exactly_when_the_denominator_is_not_resolved():
    v = np.diag([1.0, 1.0])
    assert fieller_interval(10.0, 1.01 * math.sqrt(Z2), v) is not None
    assert fieller_interval(10.0, 0.99 * math.sqrt(Z2), v) is None


def test_fieller_covers_the_true_ratio_at_the_nominal_rate():
    """Normal numerator and denominator with known covariance: Fieller's set is exact (95%). R = 4000
    draws, sd of the rate 0.0034. A percentile interval of N/D would not be needed to fail here; what
    this kills is a wrong z, a dropped covariance term or swapped roots."""
    rng = np.random.default_rng(11)
    mean = np.array([6.0, 1.5])  # true ratio 4; the denominator is 5 sd from 0
    v = np.array([[1.0, 0.05], [0.05, 0.09]])
    draws = rng.multivariate_normal(mean, v, size=4000)
    hits = 0
    for n_hat, d_hat in draws:
        ci = fieller_interval(float(n_hat), float(d_hat), v)
        hits += ci is not None and ci[0] <= 4.0 <= ci[1]
    assert abs(hits / 4000 - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / 4000)


def test_ratio_of_changes_with_its_interval():
    """R in the theory's convention: Delta(align) / -Delta(pre). Kills the plain Delta/Delta (sign flipped) and a
    set computed for one convention but reported for the other (the interval would hold -10, not 10)."""
    rng = np.random.default_rng(5)
    align_b, align_c = _pair(rng, 80, 0.2, 0.05)  # the alignment set's rate rises by 0.2 bits/byte
    pre_b, pre_c = _pair(rng, 80, -0.02, 0.005)   # the pre-training proxy's falls by 0.02: true R = 10
    result = compare_rates({"align": align_b, "pre": pre_b}, {"c": {"align": align_c, "pre": pre_c}}, rng,
                           n_resamples=1000, ratio=("align", "pre"))
    r = result.ratios["c"]
    changes = result.changes["c"]
    assert r.value == pytest.approx(changes["align"].delta_bits_per_byte / -changes["pre"].delta_bits_per_byte, rel=1e-12)
    assert r.ci95 is not None and r.ci95[0] < r.value < r.ci95[1] and r.rays is None and not r.same_sign
    assert r.ci95[0] < 10.0 < r.ci95[1] and r.df == 79  # one draw; the coverage itself is tested above
    assert r.to_dict()["convention"] == "R = delta(numerator) / -delta(denominator)"
    # both rates rising: the theorem's R is undefined; the number is negative and flagged
    pre_b, pre_c = _pair(rng, 80, 0.02, 0.005)
    same = compare_rates({"align": align_b, "pre": pre_b}, {"c": {"align": align_c, "pre": pre_c}}, rng,
                         n_resamples=10, ratio=("align", "pre")).ratios["c"]
    assert same.same_sign and same.value < 0 and not r.same_sign


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ratio": ("d", "x")}, "no dataset named 'x'"),
        ({"ratio": ("d", "d")}, "both 'd'"),
        ({"unit": "nats"}, "unit must be 'byte' or 'token'"),
        ({"n_resamples": 0}, "n_resamples must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    base, ckpt = _pair(np.random.default_rng(0), 5, 0.0, 0.1)
    with pytest.raises(ValueError, match=message):
        compare_rates({"d": base}, {"c": {"d": ckpt}}, np.random.default_rng(0), **kwargs)


def test_other_documents_and_single_documents_are_refused():
    base, ckpt = _pair(np.random.default_rng(0), 5, 0.0, 0.1)
    short = DatasetScores(ckpt.bits[:4], ckpt.n_tokens[:4], ckpt.n_bytes[:4], "same")
    with pytest.raises(ValueError, match="scored on other documents than the base"):
        compare_rates({"d": base}, {"c": {"d": short}}, np.random.default_rng(0))
    one = DatasetScores(base.bits[:1], base.n_tokens[:1], base.n_bytes[:1], "same")
    with pytest.raises(ValueError, match="needs at least 2"):
        compare_rates({"d": one}, {"c": {"d": one}}, np.random.default_rng(0))


def _constant_ratio_pair(rng: np.random.Generator):
    """Base and checkpoint of 5..39 documents, each model coding every document at its own fixed bits per byte:
    every resample has the same ratio as the whole, up to the rounding of its weighted sums (a few ulps)."""
    n = int(rng.integers(5, 40))
    n_tokens = rng.integers(20, 1000, n)
    n_bytes = 3 * n_tokens  # bits per token constant too
    base = DatasetScores(n_bytes * rng.uniform(0.5, 3.0), n_tokens, n_bytes, "same")
    return base, DatasetScores(n_bytes * rng.uniform(0.5, 3.0), n_tokens, n_bytes, "same")


def test_every_interval_holds_its_own_estimate_on_constant_ratio_datasets():
    """300 constant-ratio datasets: each interval (own rate, change per byte, change per token) holds its estimate
    and is at most 64 ulps (of the rates it is formed from) wide. Kills linearly interpolated percentiles without the estimate (3 and 7 of these 300
    own-rate and per-byte intervals missed their estimate by 1-3 ulps) and any guard that widens by more than the
    rounding (e.g. a fixed relative margin of 1e-12)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        base, ckpt = _constant_ratio_pair(rng)
        c = compare_rates({"d": base}, {"c": {"d": ckpt}}, rng, n_resamples=200).changes["c"]["d"]
        # rounding scale: a few ulps of the rates a value is a ratio of, or a difference of
        byte_scale, token_scale = c.bits_per_byte + base.bits_per_byte, c.bits_per_token + base.bits_per_token
        for (lo, hi), value, scale in ((c.bits_per_byte_ci95, c.bits_per_byte, byte_scale),
                                       (c.delta_bits_per_byte_ci95, c.delta_bits_per_byte, byte_scale),
                                       (c.delta_bits_per_byte_bootstrap_ci95, c.delta_bits_per_byte, byte_scale),
                                       (c.delta_bits_per_token_ci95, c.delta_bits_per_token, token_scale)):
            assert lo <= value <= hi and hi - lo <= 64 * np.spacing(scale), (lo, value, hi)


def test_percentile_endpoints_are_replicates_not_interpolations():
    """The endpoints of the paired bootstrap interval are resampled changes (order statistics): drawn again from
    the same seed, the replicates hold both endpoints. With 8 documents of different changes the 2.5% point falls
    between two different sorted replicates (checked), so an interpolated quantile is none of them."""
    base, ckpt = _pair(np.random.default_rng(4), 8, 0.05, 0.05)
    B = 1000
    counts = resampling_counts(8, B, np.random.default_rng(9))
    replicates = (counts @ (ckpt.bits - base.bits)) / (counts @ base.n_bytes.astype(float))
    # compare sums each model's bits before subtracting: its replicates differ from these by rounding of sums of
    # about 3 bits per byte, at most ~1e3 eps = 2e-13 each; an interpolated endpoint (linear, at position
    # 0.025 (B - 1) = 24.975) lies 2.5% of a gap between sorted replicates away from the nearest one.
    atol = 1e-12
    ordered = np.sort(replicates)
    assert 0.025 * (ordered[25] - ordered[24]) > 100 * atol and 0.025 * (ordered[975] - ordered[974]) > 100 * atol
    lo, hi = compare_rates({"d": base}, {"c": {"d": ckpt}}, np.random.default_rng(9), n_resamples=B).changes["c"]["d"].delta_bits_per_byte_bootstrap_ci95
    assert np.abs(replicates - lo).min() <= atol and np.abs(replicates - hi).min() <= atol
