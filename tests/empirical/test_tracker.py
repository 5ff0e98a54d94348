"""Rate tracking during training: a plain torch loop and transformers.Trainer feed the JSONL."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elastic_theory.empirical import byte_bpe_tokenizer, measure_rates, tiny_gpt2
from elastic_theory.empirical.data import check_documents
from elastic_theory.empirical.scoring import encode_documents
from elastic_theory.empirical.tracker import RateTracker
from elastic_theory.theory.tolerances import Float32Forward

CONTEXT = 32  # n_positions of the tiny model


@pytest.fixture(scope="module")
def corpus():
    from pydoc_data.topics import topics  # real English prose shipped with Python

    texts = [topics[k][:200] for k in sorted(topics)[:12]]
    return byte_bpe_tokenizer(texts, vocab_size=300), texts[:6], texts[6:]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_plain_training_loop_feeds_the_jsonl(corpus, tmp_path):
    tok, train, held_out = corpus
    model = tiny_gpt2(tok, seed=0, n_positions=CONTEXT)
    tracker = RateTracker({"train": train, "held_out": held_out}, tok, tmp_path / "rates.jsonl", every=2, context=CONTEXT)
    batch = torch.tensor([[tok.bos_token_id] + tok(t, add_special_tokens=False).input_ids[: CONTEXT - 1] for t in train])
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    tracker.maybe_measure(model, 0)
    for step in range(1, 6):
        ids = batch[torch.randperm(len(batch), generator=gen)[:4]]
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        tracker.maybe_measure(model, step)
        assert model.training  # measuring puts the model back in training mode
    lines = _lines(tmp_path / "rates.jsonl")
    assert [(r["step"], r["dataset"]) for r in lines] == [(s, d) for s in (0, 2, 4) for d in ("train", "held_out")]
    train_bpb = [r["bits_per_byte"] for r in lines if r["dataset"] == "train"]
    assert train_bpb[-1] < train_bpb[0]  # four AdamW steps at lr 1e-2 on these texts must lower the rate
    model.eval()
    final = measure_rates(model, tok, train, rng=np.random.default_rng(0), context=CONTEXT)
    step4_train = lines[-2]
    assert step4_train["n_tokens"] == final.n_tokens and step4_train["n_bytes"] == final.n_bytes


def test_the_last_line_matches_a_direct_measurement(corpus, tmp_path):
    tok, train, _ = corpus
    model = tiny_gpt2(tok, seed=3, n_positions=CONTEXT)
    tracker = RateTracker({"train": train}, tok, tmp_path / "r.jsonl", every=1, context=CONTEXT, stride=8)
    [record] = tracker.measure(model, 7)
    direct = measure_rates(model, tok, train, rng=np.random.default_rng(0), context=CONTEXT, stride=8)
    # two float32 evaluations: within twice Float32Forward.rate_tolerance (2.4e-4 bits per byte, 3.6e-4 per token).
    # Kills the tracker's stride ignored (8.1 bounds per byte, 8.5 per token) and another dataset scored (560).
    n = [len(ids) for ids in encode_documents(tok, check_documents(train))]
    f32 = Float32Forward.of(model, context=CONTEXT)
    tol_byte = 2 * f32.rate_tolerance(n, [len(t.encode("utf-8")) for t in train])
    assert record["bits_per_byte"] == pytest.approx(direct.bits_per_byte, rel=0, abs=tol_byte)
    assert record["bits_per_token"] == pytest.approx(direct.bits_per_token, rel=0, abs=2 * f32.rate_tolerance(n, n))
    assert _lines(tmp_path / "r.jsonl") == [record]


@pytest.mark.slow  # runs a transformers Trainer
def test_transformers_trainer_callback_feeds_the_jsonl(corpus, tmp_path):
    from transformers import Trainer, TrainingArguments

    tok, train, held_out = corpus
    model = tiny_gpt2(tok, seed=0, n_positions=CONTEXT)
    rows = [tok(t, add_special_tokens=False).input_ids[:CONTEXT] for t in train]
    dataset = [{"input_ids": r, "labels": r} for r in rows]
    tracker = RateTracker({"held_out": held_out}, tok, tmp_path / "rates.jsonl", every=2, context=CONTEXT)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=1, learning_rate=1e-3,
        report_to="none", use_cpu=True, save_strategy="no", logging_strategy="no", seed=0, disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=dataset, callbacks=[tracker.as_trainer_callback()]).train()
    assert [r["step"] for r in _lines(tmp_path / "rates.jsonl")] == [0, 2, 4]


def test_bad_tracker_settings_are_errors(corpus, tmp_path):
    tok, train, _ = corpus
    with pytest.raises(ValueError, match="every must be"):
        RateTracker({"t": train}, tok, tmp_path / "x.jsonl", every=0)
    with pytest.raises(ValueError, match="at least one named dataset"):
        RateTracker({}, tok, tmp_path / "x.jsonl", every=1)
    with pytest.raises(ValueError, match="empty document"):
        RateTracker({"t": ["ok", ""]}, tok, tmp_path / "x.jsonl", every=1)
