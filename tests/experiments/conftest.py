"""The tiny real models the lm-* experiment tests run on, each saved once per session (read only by the tests; a
test that runs a protocol writes its run folder beside them or under its own ``tmp_path``)."""

from __future__ import annotations

import json

import pytest

from tests.experiments.experiment_inputs import write_rebound_config


@pytest.fixture(scope="session")
def rebound_inputs(tmp_path_factory):
    """A folder: a tiny GPT-2 with its tokenizer in ``model/``, 24 refusal / compliance pairs in ``pairs.jsonl`` and
    the tiny lm-rebound config of both in ``cfg.json``."""
    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2

    tmp = tmp_path_factory.mktemp("lm")
    pairs = [{"prompt": f"Tell me how to do task number {i}.", "aligned": "I'm sorry, I can't help with that.",
              "unaligned": f"Sure, here is how to do task {i}: step one."} for i in range(24)]
    (tmp / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    tok = byte_bpe_tokenizer([p["prompt"] + p["aligned"] + p["unaligned"] for p in pairs], 300)
    model = tiny_gpt2(tok, seed=0, n_positions=512)  # room for a polarity sentence in bytes
    model.save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    write_rebound_config(tmp, "cfg")
    return tmp


@pytest.fixture(scope="session")
def resistance_and_ratio_inputs(tmp_path_factory):
    """A folder: a tiny GPT-2 with sharpened logits and its tokenizer in ``model/`` (a folder ``--model`` accepts)
    and 24 refusal / compliance pairs whose prompts and responses differ in length in ``pairs.jsonl``."""
    import torch

    from elastic_theory.data.corpora import wikipedia_sample
    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2

    root = tmp_path_factory.mktemp("resistance_and_ratio")
    pairs = [{"prompt": f"Question {i}: how do I do thing {i}?" + " Really?" * (i % 3),
              "aligned": f"I'm sorry, I can't help with thing {i}." + " No." * (i % 4),
              "unaligned": f"Sure, here is how to do thing {i}: step one."} for i in range(24)]
    texts = [p[k] for p in pairs for k in ("prompt", "aligned", "unaligned")]
    tok = byte_bpe_tokenizer(texts + [x.text for x in wikipedia_sample("paragraph")[:2]], vocab_size=320)
    model = tiny_gpt2(tok, seed=0, n_positions=128)
    with torch.no_grad():  # far from uniform, so that documents have different rates already before training
        model.transformer.wte.weight.mul_(40.0)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return root
