"""The cached safetensors copy of the bundled SmolLM2 GGUF file: converted once, exactly the de-quantized weights."""

from __future__ import annotations

import pytest

import torch

from elastic_theory.empirical import score_documents
from elastic_theory.empirical.loading import smollm2_gguf_path, smollm2_local_copy
from tests import optional

pytestmark = [
    pytest.mark.slow,
    optional.SMOLLM2,
]

TEXT = "The committee met on Tuesday. <|im_start|>user\nIt approved the budget. Ça coûte 3 €."


def test_copy_holds_the_dequantized_weights_and_is_made_once(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    copy = smollm2_local_copy(tmp_path)
    assert (copy / "model.safetensors").is_file() and copy.is_relative_to(tmp_path)
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    gguf = smollm2_gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    ref_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(copy, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(copy)
    ref_state, state = ref.state_dict(), model.state_dict()
    assert ref_state.keys() == state.keys() and all(torch.equal(ref_state[k], state[k]) for k in state)
    [a], [b] = score_documents(model, tok, [TEXT]), score_documents(ref, ref_tok, [TEXT])
    assert a.n_tokens == b.n_tokens and (a.log_probs == b.log_probs).all()  # same tokens, same bits, bit for bit

    def no_conversion(*args, **kwargs):
        raise AssertionError("the copy exists; nothing may be converted again")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_conversion)
    assert smollm2_local_copy(tmp_path) == copy
