"""The cached safetensors copy of the bundled SmolLM2 GGUF file: converted once, exactly the de-quantized weights,
the configuration and the tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from elastic_theory.empirical import score_documents
from elastic_theory.empirical.loading import smollm2_gguf_path, smollm2_local_copy
from elastic_theory.theory.tolerances import Float32Forward
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
    # the configuration (but for the GGUF quantization entry the copy drops and the class name it records) and tokens
    same = {"_name_or_path", "quantization_config", "architectures"}
    assert ({k: v for k, v in model.config.to_dict().items() if k not in same}
            == {k: v for k, v in ref.config.to_dict().items() if k not in same})
    encode = {"add_special_tokens": False, "split_special_tokens": True}  # as scoring encodes
    assert tok(TEXT, **encode).input_ids == ref_tok(TEXT, **encode).input_ids
    [a], [b] = score_documents(model, tok, [TEXT]), score_documents(ref, ref_tok, [TEXT])
    # The same weights in other memory layouts: two float32 evaluations, each per-token log-probability within
    # Float32Forward's bound of exact, so within twice it of each other: 27 nats for SmolLM2 (Delta = 6.8 nats per
    # logit), which separates no conversion fault that keeps the weights: rope_theta left at the default 1e4 instead
    # of 1e5 moves a token by 0.89 nats at most (0.03 bounds), rms_norm_eps 1e-6 instead of 1e-5 by 0.006 (2e-4
    # bounds). The exact configuration check above kills both, the exact token ids a tokenizer that encodes otherwise.
    assert a.n_tokens == b.n_tokens
    tol = 2 * Float32Forward.of(model, ref, context=a.n_tokens + 1).logprob_tolerance()
    np.testing.assert_allclose(a.log_probs, b.log_probs, rtol=0, atol=tol)

    def no_conversion(*args, **kwargs):
        raise AssertionError("the copy exists; nothing may be converted again")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_conversion)
    assert smollm2_local_copy(tmp_path) == copy


def test_export_is_a_plain_folder_that_transformers_fine_tunes(tmp_path):
    """`models export smollm2-135m DIR`: the cached copy's files (the copy is keyed by the GGUF file's content), with
    the chat template, loadable by plain transformers, and one optimizer step on it lowers the loss on its batch. A
    model still carrying the GGUF quantization entry would refuse save_pretrained after fine-tuning; so the step is
    followed by a save and reload."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from typer.testing import CliRunner

    from elastic_theory.cli import app
    from elastic_theory.empirical.builtin_models import BUILTIN_MODELS, cached_copy_path

    out = tmp_path / "smollm2"
    res = CliRunner().invoke(app, ["models", "export", "smollm2-135m", str(out)])
    assert res.exit_code == 0, res.output
    copy = cached_copy_path("smollm2-135m")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in copy.iterdir())
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert model.num_parameters() == BUILTIN_MODELS["smollm2-135m"].parameters  # what `models` lists
    tok = AutoTokenizer.from_pretrained(out)
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert chat.startswith("<|im_start|>") and "user\nHi<|im_end|>" in chat, chat
    batch = tok([TEXT], return_tensors="pt")
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[1] < losses[0]  # a small gradient step on one batch lowers its loss (first-order descent)
    model.save_pretrained(tmp_path / "tuned")
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "tuned").num_parameters() == model.num_parameters()
