"""Real coding with a model: exact round trip, size near the ideal code length, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic_theory.empirical import byte_bpe_tokenizer, score_documents, tiny_gpt2
from elastic_theory.empirical.model_coding import compress_text, decompress_text
from elastic_theory.empirical.tiny import SPECIAL_TOKEN

CONTEXT = 24  # the tiny model's n_positions: the 200-character texts below span several windows
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def tiny():
    from pydoc_data.topics import topics  # real English prose shipped with Python

    texts = [topics[k][:200] for k in sorted(topics)[:8]]
    tok = byte_bpe_tokenizer(texts, vocab_size=320)
    return tiny_gpt2(tok, seed=1, n_positions=CONTEXT), tok, texts


def _check_round_trip(model, tok, text, stride=None):
    code = compress_text(model, tok, text, context=CONTEXT, stride=stride)
    assert decompress_text(model, tok, code.payload) == text
    # The bound: within 1% + 64 bytes of the ideal code length.
    assert code.n_bits <= 1.01 * code.ideal_bits + 8 * 64
    return code


@pytest.mark.parametrize("stride", [None, 9])
def test_round_trip_is_exact_and_near_the_ideal_length(tiny, stride):
    model, tok, texts = tiny
    code = _check_round_trip(model, tok, texts[2], stride)
    [score] = score_documents(model, tok, [texts[2]], context=CONTEXT, stride=stride)
    # The ideal length is the scored code length: float64 softmax vs float32 log-softmax, a few
    # eps32 relative per token on terms of size ~ln V.
    assert code.ideal_bits == pytest.approx(score.bits, rel=0, abs=16 * score.n_tokens * EPS32 * np.log2(len(tok)))


@settings(max_examples=8)
@given(text=st.text(min_size=1, max_size=30))
def test_round_trip_of_any_unicode_text(tiny, text):
    model, tok, _ = tiny
    _check_round_trip(model, tok, text + SPECIAL_TOKEN)  # a special-token literal is coded as plain text


def test_a_tokenizer_that_loses_text_is_an_error(tiny):
    from tokenizers import normalizers

    model, _, texts = tiny
    lossy = byte_bpe_tokenizer(texts, vocab_size=320)
    lossy.backend_tokenizer.normalizer = normalizers.Lowercase()
    with pytest.raises(ValueError, match="does not decode its tokens back"):
        compress_text(model, lossy, "Capital Letters", context=CONTEXT)


def test_empty_text_and_bad_payloads_are_errors(tiny):
    model, tok, _ = tiny
    with pytest.raises(ValueError, match="empty text"):
        compress_text(model, tok, "", context=CONTEXT)
    with pytest.raises(ValueError, match="wrong length"):
        decompress_text(model, tok, b"\x00" * 5)
