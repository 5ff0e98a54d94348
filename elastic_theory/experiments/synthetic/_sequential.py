"""The setting shared by the resistance, rebound and scaling experiments: world, model, pre-training, fine-tuning.

No torch import: a config is built and checked before anything expensive starts. Fine-tuning is
in data amounts (examples, each a fresh draw; see :mod:`elastic_theory.empirical.sequential`), so
its fields are an optimizer, a constant learning rate and a batch size rather than a step count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..._validation import check_count
from ...infra.rundir import RunDir, unit_key
from ...data.synthetic import SyntheticWorld, WorldConfig, check_weights
from ...infra.trainconfig import ModelConfig, StageConfig
from .. import Context

__all__ = ["SequentialSetup", "export_data", "run_experiment", "run_seeds"]


@dataclass(frozen=True)
class SequentialSetup:
    """World and mixture ``w``; ``model`` pre-trained by ``pretrain`` on the exact mixture (full batch);
    fine-tuning with ``finetune_optimizer`` at constant ``finetune_lr``, ``batch_size`` fresh examples a step."""

    world: WorldConfig = WorldConfig(vocab_size=8, length=4, prompt_length=2, n_general=32, n_prompts=32, resolution=1000)
    w: tuple[float, float, float] = (0.6, 0.2, 0.2)
    model: ModelConfig = ModelConfig(n_layer=2, n_embd=32, n_head=2, dtype="float32")
    pretrain: StageConfig = StageConfig(optimizer="adam", lr=1e-2, steps=600, schedule="cosine")
    finetune_optimizer: str = "adam"
    finetune_lr: float = 3e-4
    batch_size: int = 64
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __post_init__(self):
        check_weights(self.w)
        if self.world.min_length is not None:
            raise ValueError("this experiment enumerates fixed-length sequences: set world.min_length to None")
        if self.pretrain.batch_size is not None:
            raise ValueError("pretrain.batch_size must be None: pre-training is full batch on the exact mixture")
        check_count(self.batch_size, "batch_size", 1)
        if self.finetune_optimizer not in ("adam", "sgd"):
            raise ValueError(f"finetune_optimizer must be 'adam' or 'sgd' (fine-tuning draws minibatches), "
                             f"got {self.finetune_optimizer!r}")
        if not (isinstance(self.finetune_lr, (int, float)) and self.finetune_lr > 0 and math.isfinite(self.finetune_lr)):
            raise ValueError(f"finetune_lr must be finite and > 0, got {self.finetune_lr!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be at least one distinct integer, got {list(self.seeds)}")

    def check_amounts(self, name: str, amounts, minimum_distinct: int) -> None:
        """Raise unless ``amounts`` has ``minimum_distinct`` distinct positive multiples of ``batch_size``."""
        values = list(amounts)
        if len(set(values)) < minimum_distinct:
            raise ValueError(f"{name} needs >= {minimum_distinct} distinct amounts, got {values}")
        for n in values:
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or n % self.batch_size:
                raise ValueError(f"{name}: {n!r} must be a positive multiple of batch_size = {self.batch_size} "
                                 "(amounts are whole minibatches of fresh examples)")


def export_data(cfg: SequentialSetup, run_dir: RunDir) -> dict[str, str]:
    """Write the data distributions trained on as token files (pre-training mixture, P2, P3 with their counts).

    Minibatches are drawn from exactly these multisets' empirical distributions.
    """
    d = SyntheticWorld(cfg.world).datasets(k=1, l=1, w=cfg.w)
    folder = run_dir.path("data", "pretrain.jsonl").parent
    paths = d.export_jsonl(folder)
    return {role: run_dir.relative(p) for role, p in paths.items()}


def run_seeds(cfg: SequentialSetup, run_dir: RunDir, ctx: Context, name: str, measure_seed) -> list[dict]:
    """One cached unit per seed: ``measure_seed(cfg, seed, state_path, device)`` (resumable; progress bar).

    ``state_path`` is where the seed's pre-trained model is kept if ``measure_seed`` saves it; its folder
    is created only when it does.
    """
    bar = ctx.bar(len(cfg.seeds), f"{name} seeds")
    units = []
    for seed in cfg.seeds:
        # not run_dir.path: that creates checkpoints/ even for an experiment that keeps no pre-trained state
        state = run_dir.root / "checkpoints" / f"{unit_key(pretrain=1, seed=seed)}.pt"
        units.append(run_dir.unit(unit_key(seed=seed), lambda: measure_seed(cfg, seed, state, ctx.device)))
        bar.update()
    bar.close()
    return units


def run_experiment(cfg: SequentialSetup, run_dir: RunDir, ctx: Context, name: str, measure_seed, analyse) -> dict:
    """The ``run`` of a sequential experiment: export the data, measure every seed (:func:`run_seeds`),
    then ``analyse(cfg, units)``; the results name the exported data files under ``"data"``."""
    data = export_data(cfg, run_dir)
    return {**analyse(cfg, run_seeds(cfg, run_dir, ctx, name, measure_seed)), "data": data}
