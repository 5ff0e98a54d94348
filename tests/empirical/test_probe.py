"""The probe's arithmetic on a tiny float64 GPT-2: gradients accumulated over batches, the optimizer's step, the
curvature, the first- and second-order predictions against the measured step, and planted faults caught."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from elastic_theory.empirical import probe_text
from elastic_theory.empirical.probe import (
    ProbeSettings, displaced, dot, elastic_limit, error_slope, gradient, optimizer_update, quadratic_form, run_probe,
)
from elastic_theory.empirical.probe_text import dataset_scores, encode_dataset, rate_pieces
from elastic_theory.theory.units import LN2

ROLES = {"align": "a", "pretrain": "p", "perturb": "t"}
LRS = (1e-4, 2e-4, 4e-4, 8e-4)
"""Four SGD learning rates a factor 2 apart, small enough that the first neglected term dominates each error (the
smallest second-order error, ~3e-10 bits, is four orders above float64 rounding of a rate near 8 bits, ~1e-14)."""


@pytest.fixture(scope="module")
def tiny():
    from pydoc_data.topics import topics  # real English prose shipped with Python

    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2

    texts = [topics[k][:160] for k in sorted(topics)[:24]]
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    model = tiny_gpt2(tok, seed=0, n_positions=48).double()
    model.set_attn_implementation("eager")  # double backward (curvature)
    datasets = {n: encode_dataset(tok, texts[i * 8:(i + 1) * 8], n, context=48, stride=32) for i, n in enumerate("apt")}
    return model, tok, datasets, texts


@pytest.fixture(scope="module")
def report(tiny):
    model, _, datasets, _ = tiny
    return run_probe(model, datasets, ROLES, ProbeSettings(lrs=LRS, second_order=True, batch_size=3))


def test_rates_are_measures(tiny):
    """The probe's rates are measure's: same documents, windows and prefix token. measure takes its log-softmax in
    float32, so the two agree to float32 rounding of per-token log-probabilities (relative 1e-6 leaves 10x room
    over 2^-24 per token); a different window rule or a scored prefix token moves the rate by 1e-2 or more."""
    from elastic_theory.empirical import score_documents

    model, tok, datasets, texts = tiny
    want = score_documents(model, tok, texts[:8], context=48, stride=32)
    got = dataset_scores(model, datasets["a"], batch_size=3)
    assert np.array_equal(got.n_tokens, [s.n_tokens for s in want])
    np.testing.assert_allclose(got.bits, [s.bits for s in want], rtol=1e-6)


def test_batch_size_accumulation_is_one_batch(tiny):
    """--batch-size only splits the sum: the gradient from one window at a time equals the one from all windows in
    one padded batch. Float64 sums of ~1e3 terms of different order differ by ~1e-13 relative, so 1e-10 is a
    bound; normalizing each piece by its own tokens instead of the dataset's (a factor of the number of batches)
    or dropping the last partial batch fails by far more."""
    model, _, datasets, _ = tiny
    params = [p for p in model.parameters()]
    d = datasets["t"]
    n = len(d.windows())
    one = gradient(params, rate_pieces(model, d, batch_size=n))
    assert len(list(rate_pieces(model, d, batch_size=n))) == 1
    for bs in (1, 4):
        assert len(list(rate_pieces(model, d, batch_size=bs))) == math.ceil(n / bs)
        many = gradient(params, rate_pieces(model, d, batch_size=bs))
        for x, y in zip(many, one):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-13)


def test_optimizer_steps_are_torchs_first_steps(tiny):
    """SGD's u is -lr g; Adam's first step is -lr g/(|g| + eps) (bias-corrected moments of one gradient); the
    parameters come back unchanged. Float64: agreement to 1e-12 relative."""
    model, _, datasets, _ = tiny
    params = [p for p in model.parameters()]
    before = [p.detach().clone() for p in params]
    g = gradient(params, rate_pieces(model, datasets["t"], 4))
    u = optimizer_update(params, g, "sgd", 0.1)
    for x, y in zip(u, g):
        torch.testing.assert_close(x, -0.1 * y, rtol=1e-12, atol=1e-15)
    u = optimizer_update(params, g, "adam", 0.01)
    for x, y in zip(u, g):
        torch.testing.assert_close(x, -0.01 * y / (y.abs() + 1e-8), rtol=1e-9, atol=1e-15)
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    with displaced(params, u) as applied:
        assert not all(torch.equal(p, b) for p, b in zip(params, before))
        assert dot(applied, u) == pytest.approx(dot(u, u), rel=1e-12)
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_quadratic_form_of_a_quadratic():
    """u^T H u of f = x^T A x / 2 + b.x is u^T A u exactly, summed over pieces (f split in two)."""
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    a, b = m @ m.T, torch.randn(5, generator=gen, dtype=torch.float64)
    x = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    u = torch.randn(5, generator=gen, dtype=torch.float64)
    pieces = lambda: iter([0.25 * x @ a @ x + b @ x, 0.25 * x @ a @ x])  # noqa: E731
    assert quadratic_form([x], pieces(), [u]) == pytest.approx(float(u @ a @ u), rel=1e-12)
    assert dot(gradient([x], pieces()), [u]) == pytest.approx(float((a @ x + b).detach() @ u), rel=1e-12)


def test_elastic_limit():
    assert elastic_limit(-0.3, 0.2) == (pytest.approx(3.0), "")
    assert elastic_limit(0.1, 0.2)[0] is None and "does not fall" in elastic_limit(0.1, 0.2)[1]
    assert elastic_limit(-0.1, -0.2)[0] is None and "curvature" in elastic_limit(-0.1, -0.2)[1]


def _errors(report, key: str, name: str) -> list[float]:
    steps = [e for e in report["steps"] if e["direction"] == "perturb"]
    assert [e["lr"] for e in steps] == list(LRS)
    return [e[key][name] - e["measured"][name]["value"] for e in steps]


@pytest.mark.slow  # the probe at four learning rates with curvatures: about 6 s on a loaded 2-core CPU
@pytest.mark.parametrize("name", ["a", "p", "t"])
def test_prediction_errors_shrink_like_lr2_and_lr3(report, name):
    """The measured change minus the first-order prediction is the second-order term, so it scales like lr^2;
    minus the second-order prediction, like lr^3. Over a factor 8 in lr the next order's share of each error is at
    most lr times the ratio of consecutive terms (< 3% here), which moves a log-log slope by < 0.05: 0.1 is the
    issue's bound and holds with room. A wrong gradient, unit or factor leaves a first-order error: slope 1."""
    assert error_slope(LRS, _errors(report, "predicted_first_order", name)) == pytest.approx(2.0, abs=0.1)
    assert error_slope(LRS, _errors(report, "predicted_second_order", name)) == pytest.approx(3.0, abs=0.1)
    assert all(report["steps"][i]["prediction_inside_ci"][name] for i in range(len(LRS)))


@pytest.mark.slow  # shares the four-lr probe of the test above
def test_report_is_consistent(report, tiny):
    _, _, datasets, _ = tiny
    e = report["steps"][0]
    assert e["R_first_order"] == pytest.approx(e["predicted_first_order"]["a"] / -e["predicted_first_order"]["p"])
    assert e["R_measured"]["value"] == pytest.approx(e["measured"]["a"]["value"] / -e["measured"]["p"]["value"])
    lo, hi = e["R_measured"]["ci95"]
    assert lo <= e["R_measured"]["value"] <= hi
    for name, d in datasets.items():
        assert e["predicted_first_order_per_byte"][name] == pytest.approx(e["predicted_first_order"][name] * d.tokens_per_byte)
        assert report["datasets"][name]["bits_per_byte"] == pytest.approx(
            report["datasets"][name]["bits_per_token"] * d.tokens_per_byte)
    assert report["cosines"]["a"]["a"] == pytest.approx(1.0) and report["cosines"]["a"]["p"] == report["cosines"]["p"]["a"]
    limit = report["elastic_limit"]
    s, why = elastic_limit(e["predicted_first_order"]["p"], e["curvature"]["p"])
    assert limit["step_scale"] == s and limit["lr"] == (None if s is None else s * LRS[0]) and (limit["reason"] or "") == why


def _faulty(monkeypatch, fault: str) -> None:
    """Plant ``fault`` into the gradient side only (the measured side stays as it is)."""
    real = probe_text.rate_pieces

    def pieces(model, data, batch_size, shard=(0, 1)):
        if fault == "wrong dataset" and data.name == "a":
            data = FAULT_DATA["p"]
        factor = {"missing ln 2": LN2, "per byte for per token": data.tokens_per_byte}.get(fault, 1.0)
        for piece in real(model, data, batch_size, shard):
            yield piece * factor

    monkeypatch.setattr(probe_text, "rate_pieces", pieces)


FAULT_DATA: dict = {}


@pytest.mark.slow  # the probe at five learning rates per fault: about 2 s each on a loaded 2-core CPU
@pytest.mark.parametrize("fault", ["wrong dataset", "missing ln 2", "per byte for per token"])
def test_planted_faults_are_caught(tiny, monkeypatch, fault):
    """Each fault leaves an error of first order in lr, so the lr^2 check fails on the dataset it touches (slope
    near 1, not 2 +- 0.1). The unit faults (a factor ln 2 = 0.69 or T/B = 0.65 on the change) also put the prediction
    outside the measured step's 95% interval at lr = 0.01; the wrong dataset's gradient need not (at this random
    initialization the gradients' cosine is 0.9 and the datasets' changes lie inside each other's intervals),
    which is why the lr^2 check is the one that has to catch it."""
    model, _, datasets, _ = tiny
    FAULT_DATA.update(datasets)
    _faulty(monkeypatch, fault)
    rep = run_probe(model, datasets, ROLES, ProbeSettings(lrs=LRS + (1e-2,), batch_size=3))
    slope = error_slope(LRS, [e["predicted_first_order"]["a"] - e["measured"]["a"]["value"] for e in rep["steps"][:4]])
    assert abs(slope - 2.0) > 0.5, slope
    if fault != "wrong dataset":
        assert not rep["steps"][-1]["prediction_inside_ci"]["a"]


def test_measured_interval_is_compares_leave_one_out_t(tiny, monkeypatch):
    """The measured change's 95% interval is the one compare reports, recomputed here from the per-document bits by
    its definition: each document d left out under both models, delta_(-d) the change of the pooled bits per token
    of the others, se^2 = sum_d (delta_(-d) - delta)^2, delta +- t_{0.975, n-1} se. Killed: compare's percentile
    bootstrap reported instead (its endpoints are order statistics of resamples, not symmetric about delta), a
    normal quantile (1.96 for t_{0.975,7} = 2.36: 17% narrower), the two rates' unpaired spreads, the per-byte
    interval given for the per-token change. Tolerance: the rates (~8 bits) carry float64 rounding of ~1e-15 per
    sum of 8 documents; 1e-12 bits on endpoints of order 1e-3 leaves a thousandfold margin and no wrong rule."""
    from scipy.stats import t

    from elastic_theory.stats import comparison

    seen = {}
    real = comparison.compare_rates

    def spy(base, checkpoints, *args, **kwargs):
        seen.update(base=base, checkpoints=checkpoints)
        return real(base, checkpoints, *args, **kwargs)

    monkeypatch.setattr(comparison, "compare_rates", spy)
    model, _, datasets, _ = tiny
    rep = run_probe(model, datasets, ROLES, ProbeSettings(lrs=(1e-2,), batch_size=3))
    (label, after), = seen["checkpoints"].items()
    for name in "apt":
        c0, c1, n_tok = seen["base"][name].bits, after[name].bits, seen["base"][name].n_tokens
        delta = c1.sum() / n_tok.sum() - c0.sum() / n_tok.sum()
        rest = n_tok.sum() - n_tok
        loo = (c1.sum() - c1) / rest - (c0.sum() - c0) / rest
        half = t.ppf(0.975, c0.size - 1) * math.sqrt(np.sum((loo - delta) ** 2))
        got = rep["steps"][0]["measured"][name]
        assert got["value"] == pytest.approx(delta, abs=1e-12)
        assert got["ci95"] == pytest.approx([delta - half, delta + half], abs=1e-12)
        assert half > 1e-6  # a real spread, so the check above compares widths and not only centres
