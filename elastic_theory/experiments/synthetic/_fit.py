"""Training units shared by the experiments: fit a model on a dataset through stages, cached in the run directory.

Imports torch (call it from an experiment's ``run``, not at module import). A fitted model is a
unit: its parameters go to ``checkpoints/KEY.pt`` and its summary to ``units/KEY.json``; a second
call with the same key loads them instead of training (resume after an interruption).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch

from ...empirical.training import (
    DTYPES,
    ExactRateTracker,
    SequenceData,
    build_model,
    kl_bits,
    load_state,
    nll,
    rates_bits_per_token,
    save_state,
    train_stage,
)
from ...infra.rundir import RunDir
from ...data.synthetic import SyntheticWorld, WeightedSequences
from ...infra.trainconfig import ModelConfig, StageConfig

__all__ = ["Fitter"]


class Fitter:
    """Builds, trains and caches models of one architecture on one world's data, in one run directory."""

    def __init__(self, run: RunDir, world: SyntheticWorld, model: ModelConfig, device: str = "cpu"):
        self.run, self.world, self.model_config, self.device = run, world, model, device
        self.vocab = world.config.data_vocab_size
        self.max_length = world.config.length + (world.config.end_token is not None)
        self.dtype = DTYPES[model.dtype]
        c = world.config
        self.end_lengths = None if c.min_length is None else (c.min_length, c.length)

    def data(self, ws: WeightedSequences) -> SequenceData:
        """``ws`` as tensors on this device and dtype."""
        return SequenceData(ws, self.vocab, end_lengths=self.end_lengths, device=self.device, dtype=self.dtype)

    def new_model(self, seed: int):
        """A fresh model initialized from ``seed``."""
        return build_model(self.model_config, self.vocab, self.max_length, seed=seed, device=self.device)

    def checkpoint(self, key: str):
        """Path of the checkpoint of unit ``key``."""
        return self.run.path("checkpoints", f"{key}.pt")

    def load(self, key: str, seed: int = 0):
        """The model saved by unit ``key``."""
        return load_state(self.new_model(seed), self.checkpoint(key))

    def fit(
        self,
        key: str,
        train: WeightedSequences,
        stages: Sequence[StageConfig],
        *,
        seed: int,
        init: str | None = None,
        track: Mapping[str, WeightedSequences] | None = None,
        track_every: int = 1,
        measure: Mapping[str, WeightedSequences] | None = None,
    ) -> tuple[torch.nn.Module, dict]:
        """Train on ``train`` through ``stages`` (from scratch with ``seed``, or warm from unit ``init``); cache as ``key``.

        Returns the model and its unit: ``{"steps", "seconds", "loss_nats", "kl_to_optimum_bits",
        "rates": {name: bits/token of measure}, "track": path or None}``. ``kl_to_optimum_bits`` is
        KL(train || model): the distance to the joint optimum of exactly this data. ``track`` rates
        go to ``tracks/KEY.jsonl`` every ``track_every`` steps (step 0 included), across stages.
        """
        if self.run.has_unit(key) and self.checkpoint(key).is_file():
            return self.load(key, seed), self.run.read_unit(key)
        model = self.new_model(seed) if init is None else self.load(init, seed)
        data = self.data(train)
        tracker = None
        if track:
            path = self.run.path("tracks", f"{key}.jsonl")
            path.unlink(missing_ok=True)
            tracker = ExactRateTracker({n: self.data(d) for n, d in track.items()}, path, every=track_every)
            tracker.measure(model, 0)
        gen = torch.Generator().manual_seed(seed)
        t0, done = time.perf_counter(), [0]

        def on_step(step: int, loss: float) -> None:
            done[0] += 1
            if tracker is not None:
                tracker.maybe_measure(model, done[0])

        for stage in stages:
            train_stage(model, data, stage, generator=gen, on_step=on_step)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            loss = float(nll(model, data))
        unit = {
            "steps": done[0], "seconds": seconds, "loss_nats": loss, "kl_to_optimum_bits": kl_bits(model, data),
            "rates": rates_bits_per_token(model, {n: self.data(d) for n, d in (measure or {}).items()}),
            "track": None if tracker is None else self.run.relative(tracker.path),
        }
        save_state(model, self.checkpoint(key))
        return model, self.run.unit(key, lambda: unit)
