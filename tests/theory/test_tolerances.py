"""The float64 and float32 error bounds of elastic_theory.theory.tolerances hold for the computations they are written for."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch

from elastic_theory.theory.tolerances import (
    EPS,
    EPS32,
    Float32Forward,
    closed_form_tolerance,
    gamma32,
    probability_sum_tolerance,
    roundings,
    sum_tolerance,
    sum_tolerance32,
)
from elastic_theory.theory.tree import TokenTree


def test_roundings_bounds_a_product_chain():
    """A product of n random float64 factors is within n eps of the exact product (Higham's gamma_n <= n eps)."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 10, 100):
        for _ in range(200):
            x = rng.uniform(0.5, 2.0, size=n)
            got = 1.0
            for v in x:
                got *= float(v)
            exact = Fraction(1)
            for v in x:
                exact *= Fraction(float(v))
            assert abs(Fraction(got) / exact - 1) <= Fraction(roundings(n))


@pytest.mark.parametrize("n", [1, 3, 50, 2000])
def test_sum_tolerance_bounds_tree_entropy(n):
    """TokenTree.entropy of n leaves with counts spanning six decades is within sum_tolerance(n, H) of the 50-digit value."""
    rng = np.random.default_rng(n)
    counts = np.floor(10.0 ** rng.uniform(0.0, 6.0, size=n)).astype(np.int64)
    tree = TokenTree.from_sequences([[int(t) for t in np.base_repr(i, 7)] for i in range(n)], 7, counts=counts)
    with mpmath.workdps(50):
        total = mpmath.mpf(int(counts.sum()))
        exact = -mpmath.fsum(mpmath.mpf(int(c)) / total * mpmath.log(mpmath.mpf(int(c)) / total, 2) for c in counts)
        err = abs(mpmath.mpf(tree.entropy()) - exact)
    assert err <= sum_tolerance(n, tree.entropy())


def test_probability_sum_tolerance_bounds_normalized_vectors():
    """Vectors normalized in float64 sum to 1 within max(8, n) eps, also when the entries span 15 decades."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 10, 1000, 100_000):
        w = 10.0 ** -rng.uniform(0.0, 15.0, size=n)
        p = w / w.sum()
        assert abs(float(np.sum(p)) - 1.0) <= probability_sum_tolerance(n)
        assert abs(sum(p.tolist()) - 1.0) <= probability_sum_tolerance(n)  # recursive (left-to-right) summation


def test_closed_form_tolerance_is_16_eps_away_from_the_threshold():
    """Far from l* (condition number 1) the closed-form bound is 16 eps; it grows like w3/(w3 - (1 - w3) l)."""
    assert closed_form_tolerance(Fraction(10), Fraction(0), Fraction(1, 2)) == 16 * EPS
    assert closed_form_tolerance(Fraction(10), Fraction(1, 2), Fraction(1, 2)) == 32 * EPS  # kappa = 2
    assert closed_form_tolerance(Fraction(10), Fraction(5), Fraction(0)) == 16 * EPS  # w3 = 0: no subtraction


# ------------------------------------------------------------------------------------------- float32
def test_gamma32_is_highams_gamma_with_the_float32_unit_roundoff():
    """gamma32(n) = n u/(1 - n u), u = 2^-24; defined only while n u < 1/2."""
    u = Fraction(1, 2**24)
    for n in (0, 1, 2, 1000, 2**22):
        assert gamma32(n) == pytest.approx(float(n * u / (1 - n * u)), rel=4 * EPS)
    assert gamma32(1) == pytest.approx(EPS32 / 2, rel=4 * EPS)
    with pytest.raises(ValueError, match="n u < 1/2"):
        gamma32(2**23)


@pytest.mark.parametrize("n", [2, 64, 1000, 50_000])
def test_sum_tolerance32_bounds_float32_sums_in_every_order(n):
    """Left to right, pairwise (numpy), and torch's vectorized sum on 1 and 2 threads, of float32-rounded terms of
    mixed signs, are within gamma_n sum|x| of the exact sum of the float64 terms. Not vacuous for a window of
    n <= 64 terms of size >= 1: leaving one out moves the sum by more than 100 bounds."""
    rng = np.random.default_rng(n)
    x = rng.uniform(1.0, 10.0, size=n) * rng.choice([-1.0, 1.0], size=n)
    exact = math.fsum(x.tolist())
    x32 = x.astype(np.float32)
    tol = sum_tolerance32(n, np.abs(x).sum())
    sums = [float(np.cumsum(x32, dtype=np.float32)[-1]), float(np.sum(x32, dtype=np.float32))]
    threads = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            sums.append(float(torch.from_numpy(x32).sum()))
    finally:
        torch.set_num_threads(threads)
    for s in sums:
        assert abs(s - exact) <= tol
    if n <= 64:
        assert 1.0 > 100 * tol


@pytest.mark.parametrize("vocab", [2, 300, 49_152])
@pytest.mark.parametrize("scale", [0.5, 10.0, 100.0])
def test_log_softmax_tolerance_bounds_a_float32_log_softmax(vocab, scale):
    """torch's float32 log-softmax of logits in [-S, S] is within delta_lsm of the float64 log-softmax of the same
    float32 logits (exact to float64 rounding, 2^-29 times smaller), on 1 and 2 threads."""
    rng = np.random.default_rng(vocab)
    z = torch.from_numpy(rng.uniform(-scale, scale, size=(8, vocab)).astype(np.float32))
    want = torch.log_softmax(z.double(), dim=-1)
    tol = Float32Forward(1, 1, 1, 1, vocab, scale).log_softmax_tolerance()
    threads = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            assert (torch.log_softmax(z, dim=-1).double() - want).abs().max().item() <= tol
    finally:
        torch.set_num_threads(threads)


def _tiny_lm(arch: str, n_layer: int, width: int, context: int, kind: str, seed: int = 0):
    """A tiny GPT-2 or LLaMA over a 300-token vocabulary, initialized with ``seed``: random, with its matrices
    scaled up 10x (logits of several nats), or after 30 Adam steps (lr 1e-2) on random tokens; and a batch of
    4 random sequences of ``context`` tokens."""
    from pydoc_data.topics import topics

    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2, tiny_llama

    tok = byte_bpe_tokenizer([topics[k][:300] for k in sorted(topics)[:12]], 300)  # as the scoring tests' texts
    build = tiny_gpt2 if arch == "gpt2" else tiny_llama
    size = {"n_embd": width} if arch == "gpt2" else {"hidden": width}
    model = build(tok, seed=seed, n_layer=n_layer, n_positions=context, **size)
    gen = torch.Generator().manual_seed(1)
    if kind == "scaled":
        with torch.no_grad():
            for w in model.parameters():
                if w.dim() == 2:
                    w.mul_(10.0)
    elif kind == "trained":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(30):
            x = torch.randint(0, 300, (4, 32), generator=gen)
            loss = model(input_ids=x, labels=x).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
    return model, torch.randint(0, 300, (4, context), generator=gen)


def _log_probs(model, x, threads: int | None = None) -> torch.Tensor:
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads or old)
        with torch.no_grad():
            return torch.log_softmax(model(input_ids=x).logits, dim=-1)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("kind", ["random", "scaled", "trained"])
@pytest.mark.parametrize("n_layer, width, context", [(2, 32, 64), (4, 64, 128)])
def test_float32_forward_bounds_cover_a_float64_forward_pass(arch, kind, n_layer, width, context):
    """Against the same model run in float64 (the same count of roundings with eps64 = 2^-29 eps32: exact at this
    scale), one float32 forward pass has every logit within Delta (and |z| <= S), every log-probability within
    delta, every sum of n of them within sum_tolerance(n), a margin within margin_tolerance, the KL to another
    random model within kl_bits_tolerance; the 1- and 2-thread float32 passes are within twice delta of each
    other. The float32 errors are at most 0.01 of the bounds here (logits 0.009, log-probabilities 0.005, KL
    2e-4): the count is worst case, and the assumption of unamplified errors is checked here, not proven."""
    model, x = _tiny_lm(arch, n_layer, width, context, kind)
    base, _ = _tiny_lm(arch, n_layer, width, context, "random", seed=1)
    f32 = Float32Forward.of(model, base, context=context)
    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        z, z64 = model(input_ids=x).logits.double(), exact(input_ids=x).logits
    assert z64.abs().max().item() <= f32.logit_scale
    assert (z - z64).abs().max().item() <= f32.logit_tolerance()
    got, want = _log_probs(model, x).double(), torch.log_softmax(z64, dim=-1)
    assert (got - want).abs().max().item() <= f32.logprob_tolerance()
    targets = x[:, 1:, None]
    sums = got[:, :-1].gather(2, targets).sum(dim=(1, 2))
    sums64 = want[:, :-1].gather(2, targets).sum(dim=(1, 2))
    assert (sums - sums64).abs().max().item() <= f32.sum_tolerance(context - 1)
    margins, margins64 = sums[0] - sums[1], sums64[0] - sums64[1]
    assert abs(float(margins - margins64)) <= f32.margin_tolerance(context - 1, "response")
    with torch.no_grad():
        q64 = torch.log_softmax(copy.deepcopy(base).double()(input_ids=x).logits, dim=-1)
    p32, q32 = _log_probs(model, x), _log_probs(base, x)  # the KL's terms in float32, summed in float64, as measured
    kl = float((p32.exp() * (p32 - q32)).sum(-1, dtype=torch.float64).mean()) / math.log(2)
    kl64 = float((want.exp() * (want - q64)).sum(-1).mean()) / math.log(2)
    assert abs(kl - kl64) <= f32.kl_bits_tolerance(kl)
    one, two = _log_probs(model, x, threads=1), _log_probs(model, x, threads=2)
    assert (one - two).abs().max().item() <= 2 * f32.logprob_tolerance()


def test_float32_bounds_are_not_vacuous_for_a_tiny_model():
    """For the tests' tiny GPT-2 (2 layers, width 32, V = 300, T = 64): an off-by-one token (a document's first
    token left out of its sum, or the sum taken over targets shifted by one) moves a 63-token sum by more than
    100 times sum_tolerance(63), and the bound per token is below 1e-3 nats."""
    model, x = _tiny_lm("gpt2", 2, 32, 64, "random")
    f32 = Float32Forward.of(model, context=64)
    assert f32.logprob_tolerance() < 1e-3
    lp = _log_probs(model, x).double()
    right = lp[:, :-1].gather(2, x[:, 1:, None])[..., 0]
    shifted = lp[:, :-1].gather(2, x[:, :-1, None])[..., 0]
    tol = f32.sum_tolerance(63)
    assert right[:, 0].abs().min().item() > 100 * tol
    assert (right.sum(1) - shifted.sum(1)).abs().min().item() > 100 * tol


def test_float32_forward_reads_the_shape_and_refuses_what_it_does_not_bound():
    model, _ = _tiny_lm("gpt2", 2, 32, 64, "random")
    f32 = Float32Forward.of(model)
    assert (f32.n_layer, f32.width, f32.ffn_width, f32.context, f32.vocab) == (2, 32, 128, 64, 300)
    assert f32.roundings() == 2 * (8 * 32 + 128 + 2 * 64 + 35) + 3 * 32 + 7
    assert Float32Forward.of(model, adapter_rank=8).roundings() == f32.roundings() + 2 * 4 * 10
    llama, _ = _tiny_lm("llama", 2, 32, 64, "random")
    assert Float32Forward.of(llama).ffn_width == 64
    with pytest.raises(ValueError, match="float32 forward passes"):
        Float32Forward.of(copy.deepcopy(model).double())
    with pytest.raises(ValueError, match="differ in shape"):
        Float32Forward.of(model, llama)
    with pytest.raises(ValueError, match="context must be"):
        Float32Forward(2, 32, 128, 0, 300, 1.0)


def test_rate_tolerance_bounds_pooled_rates_and_bootstrap_ends():
    """Document bits each moved by up to sum_tolerance(n_d)/ln 2 (worst signs, and random) move the pooled rate
    and both ends of the bootstrap interval by at most rate_tolerance, per token and per byte."""
    from elastic_theory.empirical.scoring import bootstrap_ci

    f32 = Float32Forward(2, 32, 128, 64, 300, 0.85)
    rng = np.random.default_rng(5)
    n = rng.integers(1, 400, size=12)
    nbytes = n * rng.uniform(1.0, 4.0, size=12)
    bits = n * rng.uniform(4.0, 9.0, size=12)
    e = np.array([f32.sum_tolerance(int(k)) for k in n]) / math.log(2)
    for moved in (bits + e, bits - e, bits + e * rng.uniform(-1, 1, size=12)):
        for denominators in (n.astype(float), nbytes):
            tol = f32.rate_tolerance(n, denominators)
            assert abs(moved.sum() / denominators.sum() - bits.sum() / denominators.sum()) <= tol
            ci = bootstrap_ci(bits, denominators, np.random.default_rng(0), 200)
            ci_moved = bootstrap_ci(moved, denominators, np.random.default_rng(0), 200)
            assert max(abs(a - b) for a, b in zip(ci, ci_moved)) <= tol
