"""Configurations of model and training stages for the synthetic experiments (plain dataclasses, no torch).

:mod:`elastic_theory.empirical.training` runs them; experiment configs nest them, and the
command line's ``--set model.n_embd=32`` or ``--set pretrain.steps=500`` reaches their fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validation import check_count

__all__ = ["ALGORITHMS", "DTYPE_NAMES", "OPTIMIZERS", "SCHEDULES", "FinetuneConfig", "ModelConfig", "StageConfig"]

#: Parameter dtypes a built model may have.
DTYPE_NAMES = ("float64", "float32")
#: Optimizers a training stage may use.
OPTIMIZERS = ("adam", "sgd", "lbfgs")
#: Learning-rate schedules of a training stage.
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class ModelConfig:
    """A GPT-2 built from a config (dropout 0): ``n_layer`` blocks of width ``n_embd``, ``dtype`` float64 or float32."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    dtype: str = "float64"

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "n_head"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"model.{name} must be an integer >= 1, got {v!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"model.n_embd = {self.n_embd} must be a multiple of model.n_head = {self.n_head}")
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"model.dtype must be one of {list(DTYPE_NAMES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: ``steps`` optimizer steps of ``optimizer`` at ``lr`` (cosine to 0 or constant).

    ``lbfgs``: full batch, strong-Wolfe line search, one iteration per step (``lr`` 1 is usual), no
    tolerances: the result is that of exactly ``steps`` steps. It stops early only at a fixed point of
    the iteration, a step after the first that leaves every parameter bit-for-bit unchanged: the
    gradient, the curvature history and the line search of every later step are then the same, so
    each later step would change nothing either. A converged run reaches one. (A rule on the loss,
    such as stopping when it repeats, can stop while the parameters still move: the result would
    then depend on where rounding made two losses equal, not on ``steps``.)

    ``batch_size`` None trains full batch on the exact weighted loss; an integer draws that many
    sequences per step from the data's distribution (adam/sgd only).
    """

    optimizer: str = "adam"
    lr: float = 3e-3
    steps: int = 2500
    schedule: str = "cosine"
    batch_size: int | None = None
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be finite and > 0, got {self.lr!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {self.steps!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be None (full batch) or an integer >= 1, got {self.batch_size!r}")
        if self.batch_size is not None and self.optimizer == "lbfgs":
            raise ValueError("lbfgs needs the full batch: set batch_size to None")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


#: Fine-tuning algorithms: supervised fine-tuning on the responses, or direct preference optimization on pairs.
ALGORITHMS = ("sft", "dpo")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning a pretrained causal LM on preference pairs (:mod:`elastic_theory.empirical.finetune`).

    ``algorithm``: ``sft`` (next-token loss on the target response, prompt masked; trl's
    ``SFTTrainer``) or ``dpo`` (the target response chosen over the other one; trl's
    ``DPOTrainer``, strength ``beta``). ``lora``: train a LoRA adapter (peft) of rank ``lora_r``
    on the modules named in ``lora_targets`` instead of every weight. ``batch_size`` examples per
    optimizer step (over all processes), ``epochs`` passes over the examples in their given order,
    sequences cut to ``max_length`` tokens, AdamW at a constant ``lr``. ``fsdp``: shard the model
    with FSDP when launched on several processes (torchrun / accelerate launch).
    """

    algorithm: str = "sft"
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 1e-4
    batch_size: int = 8
    epochs: int = 1
    max_length: int = 128
    beta: float = 0.1
    weight_decay: float = 0.0
    fsdp: bool = False

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; known: {', '.join(ALGORITHMS)}")
        for name in ("lora_r", "lora_alpha", "batch_size", "epochs", "max_length"):
            check_count(getattr(self, name), name, 1)
        if not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets):
            raise ValueError(f"lora_targets must be non-empty module names, got {self.lora_targets!r}")
        for name in ("lr", "beta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
