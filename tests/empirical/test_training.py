"""Training on weighted sequences: the tracker's one-pass rates equal the direct ones; the loss is the exact CE."""

import json
import math

import numpy as np
import pytest
import torch

from elastic_theory.empirical.training import (
    ExactRateTracker,
    SequenceData,
    build_model,
    kl_bits,
    nll,
    rates_bits_per_token,
    sequence_log_probs,
)
from elastic_theory.data.synthetic import SyntheticWorld, WeightedSequences, WorldConfig
from elastic_theory.infra.trainconfig import ModelConfig


def setting():
    world = SyntheticWorld(WorldConfig(vocab_size=2, length=3, min_length=2, prompt_length=1, n_prompts=2, resolution=24))
    d = world.datasets(4, 0.5, (0.5, 0.25, 0.25))
    V, ends = world.config.data_vocab_size, (2, 3)
    model = build_model(ModelConfig(n_layer=1, n_embd=8, n_head=1), V, 4, seed=3)
    return d, V, ends, model


def test_tracker_one_pass_equals_direct_rates_and_kl(tmp_path):
    d, V, ends, model = setting()
    ev = {r: SequenceData(d.role(r), V, end_lengths=ends) for r in ("pretrain", "align", "perturb")}
    lines = ExactRateTracker(ev, tmp_path / "t.jsonl").measure(model, 7)
    direct, kls = rates_bits_per_token(model, ev), {n: kl_bits(model, e) for n, e in ev.items()}
    for line in lines:
        assert line["bits_per_token"] == pytest.approx(direct[line["dataset"]], rel=1e-13)
        assert line["kl_bits"] == pytest.approx(kls[line["dataset"]], rel=1e-12, abs=1e-15)
    saved = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert {"step", "dataset", "bits_per_token", "bits_per_byte", "n_tokens", "n_bytes", "seconds", "time"} <= saved[0].keys()
    assert [s["step"] for s in saved] == [7, 7, 7]


def test_masked_model_is_a_distribution_over_the_worlds_sequences():
    """With the logit mask, the model's probabilities of all sequences the world allows sum to 1 (the
    wrong model, a softmax over BOS too or an end token anywhere, leaks mass and sums below 1)."""
    d, V, ends, model = setting()
    world = SyntheticWorld(WorldConfig(vocab_size=2, length=3, min_length=2, prompt_length=1, n_prompts=2, resolution=24))
    every = tuple(s for c in world.components for s in c.sequences)
    data = SequenceData(WeightedSequences(every, np.ones(len(every), dtype=np.int64)), V, end_lengths=ends)
    with torch.no_grad():
        total = float(torch.exp(sequence_log_probs(model, data)).sum())
    assert total == pytest.approx(1.0, abs=1e-12)
    # the loss is the exact cross-entropy per response, in nats
    union = SequenceData(d.union, V, end_lengths=ends)
    with torch.no_grad():
        ce_bits = float(nll(model, union)) / math.log(2)
    assert ce_bits == pytest.approx(rates_bits_per_token(model, {"u": union})["u"] * union.mean_length, rel=1e-13)


def test_lbfgs_stopping_early_gives_the_parameters_of_every_step():
    """StageConfig's LBFGS rule: it stops only at a fixed point of the iteration, so its result is bit-for-bit that of
    running all ``steps`` steps (a convex tabular learner started off its optimum reaches one within the budget)."""
    from elastic_theory.empirical.training import TabularModel, _optimizer, train_stage
    from elastic_theory.infra.trainconfig import StageConfig

    d, V, ends, _ = setting()
    data = SequenceData(d.union, V, end_lengths=ends)
    stage = StageConfig("lbfgs", 1.0, 40, "constant")
    stopped, steps = TabularModel(d.without_perturbation().union, V), []
    train_stage(stopped, data, stage, on_step=lambda step, loss: steps.append(step))
    assert 1 < len(steps) < stage.steps  # it did stop early

    every = TabularModel(d.without_perturbation().union, V)
    opt = _optimizer(stage, list(every.parameters()))

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = nll(every, data)
        loss.backward()
        return loss

    for _ in range(stage.steps):
        opt.step(closure)
    assert torch.equal(stopped.logit_table, every.logit_table)
    assert kl_bits(stopped, data) < 1e-12  # at the optimum: the stop is convergence, not a stall
