r"""Sequential training in data amounts: pre-train once per seed, then fine-tune measured every N examples.

The paper's alignment and perturbation sizes are numbers of examples, each seen once. Here an
amount ``n`` of data is ``n / batch_size`` minibatch steps, each drawing ``batch_size`` sequences
afresh from the target distribution (one epoch of ``n`` fresh samples), at a constant learning
rate. One optimizer run measured at increasing cumulative amounts therefore equals separate runs
on nested datasets, so a curve over amounts costs one run, not one per amount.

:class:`SequentialWorld` holds what the resistance, rebound and scaling experiments share: the
world's pre-training mixture, aligned (:math:`P_2`) and unaligned (:math:`P_3`) answer sets as
tensors, pre-training (cached on disk per seed), fine-tuning curves, and the exact measurements
(behaviour score, full enumerated distribution).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..stats.behaviour import behaviour_score
from ..data.synthetic import SyntheticWorld, WeightedSequences
from .enumeration import aligned_probabilities, conditional_kl_bits, full_log_probs
from ..infra.trainconfig import ModelConfig, StageConfig
from .training import DTYPES, SequenceData, build_model, load_state, save_state, train_stage

__all__ = ["SequentialWorld", "finetune_curve"]


def finetune_curve(net, data: SequenceData, amounts: Sequence[int], *, optimizer: str, lr: float, batch_size: int,
                   generator: torch.Generator, measure: Callable[[object], dict]) -> list[dict]:
    """Fine-tune ``net`` in place on ``data`` up to ``max(amounts)`` examples; ``measure(net)`` at each amount.

    Amounts are multiples of ``batch_size``. Returns ``[{"amount": n, **measure(net)}, ...]`` in
    increasing ``n`` (``n = 0`` measures before any step).
    """
    amounts = sorted(set(int(n) for n in amounts))
    if any(n < 0 or n % batch_size for n in amounts):
        raise ValueError(f"fine-tuning amounts {amounts} must be non-negative multiples of batch_size = {batch_size}")
    by_step = {n // batch_size: n for n in amounts}
    out = [{"amount": 0, **measure(net)}] if 0 in by_step else []

    def on_step(step: int, _loss: float) -> None:
        if step in by_step:
            out.append({"amount": by_step[step], **measure(net)})

    steps = max(by_step)
    if steps:
        stage = StageConfig(optimizer=optimizer, lr=lr, steps=steps, schedule="constant", batch_size=batch_size)
        train_stage(net, data, stage, generator=generator, on_step=on_step)
    return out


class SequentialWorld:
    """The data and models of a :class:`~elastic_theory.experiments.synthetic._sequential.SequentialSetup`-like config."""

    def __init__(self, setup, device: str = "cpu"):
        self.setup, self.device = setup, device
        self.world = SyntheticWorld(setup.world)
        self.V, self.L = setup.world.data_vocab_size, setup.world.length
        dtype = DTYPES[setup.model.dtype]
        P1, P2, P3 = self.world.components
        self.mixture = self.world.datasets(k=1, l=0, w=setup.w).pretrain
        self.data = {name: SequenceData(d, self.V, device=device, dtype=dtype)
                     for name, d in (("pretrain", self.mixture), ("aligned", P2), ("unaligned", P3))}
        self.aligned_sequences = np.asarray(P2.sequences, dtype=np.int64)

    def model_config(self, **override) -> ModelConfig:
        """The setup's model with some fields replaced (the scaling sweep's sizes)."""
        return dataclasses.replace(self.setup.model, **override)

    def pretrained(self, seed: int, state_path: Path | None = None, *, steps: int | None = None,
                   model: ModelConfig | None = None):
        """Initialized from ``seed``, trained full batch on the exact mixture; loaded from ``state_path`` if there."""
        net = build_model(model or self.setup.model, self.V, self.L + 1, seed=seed, device=self.device)
        if state_path is not None and Path(state_path).is_file():
            return load_state(net, state_path)
        stage = self.setup.pretrain if steps is None else dataclasses.replace(self.setup.pretrain, steps=steps)
        train_stage(net, self.data["pretrain"], stage)
        if state_path is not None:
            save_state(net, state_path)
        return net

    def generator(self, *parts: int) -> torch.Generator:
        """A torch generator seeded from ``parts`` (seed, amount, ...): the minibatch order of one fine-tuning run."""
        return torch.Generator().manual_seed(int(np.random.SeedSequence(list(parts)).generate_state(1)[0]))

    def sequence_data(self, target: WeightedSequences) -> SequenceData:
        """A target distribution (e.g. a model's enumerated outputs) as training data of this world."""
        return SequenceData(target, self.V, device=self.device, dtype=DTYPES[self.setup.model.dtype])

    def finetune(self, net, data: str | SequenceData, amounts: Sequence[int], generator: torch.Generator,
                 measure: Callable[[object], dict] = lambda _net: {}) -> tuple[object, list[dict]]:
        """A copy of ``net`` fine-tuned on ``data`` (a dataset name: 'pretrain', 'aligned', 'unaligned', or
        :class:`SequenceData`) up to ``max(amounts)`` examples, and the curve measured at each amount."""
        net = copy.deepcopy(net)
        s = self.setup
        curve = finetune_curve(net, self.data[data] if isinstance(data, str) else data, amounts,
                               optimizer=s.finetune_optimizer, lr=s.finetune_lr, batch_size=s.batch_size, generator=generator,
                               measure=measure)
        return net, curve

    def checkpoints(self, net, data: str | SequenceData, amounts: Sequence[int], generator: torch.Generator) -> list:
        """Copies of ``net`` after each of ``amounts`` (sorted) examples of one fine-tuning run on ``data``."""
        kept = []
        self.finetune(net, data, amounts, generator, lambda m: kept.append(copy.deepcopy(m)) or {})
        return kept

    def behaviour(self, net) -> dict:
        """Behaviour score: mean over prompts of p(aligned answer | prompt), as probability and log-odds."""
        pi = aligned_probabilities(net, self.aligned_sequences, self.setup.world.prompt_length, self.V)
        return behaviour_score(pi).as_dict()

    def log_probs(self, net) -> np.ndarray:
        """ln p(x) of every sequence of the world's length (nats; enumeration order of ``all_sequences``)."""
        return full_log_probs(net, self.V, self.L)

    def answer_kl_bits(self, log_p: np.ndarray, log_q: np.ndarray) -> float:
        """Mean over the world's prompts of KL(answers given the prompt under p || under q), bits per response."""
        prompts = self.aligned_sequences[:, : self.setup.world.prompt_length]
        return conditional_kl_bits(log_p, log_q, self.V, self.L, self.setup.world.prompt_length, prompts)
