r"""The probe: predict how one optimizer step moves each dataset's rate, from gradients and curvature, and check it.

For datasets i (each a rate :math:`\gamma_i(\theta)` in bits per token, :mod:`~elastic_theory.empirical.probe_text`)
and a parameter change u (the trained parameters: all of them, or a LoRA adapter's):

* **gradients** :math:`g_i = \nabla_\theta \gamma_i` (bits per token per unit parameter), their norms and cosines;
* **the step** u: one step of a torch optimizer (``sgd``, ``adam``, ``adamw``; fresh state, so Adam's first step is
  what Adam does) on the loss fine-tuning uses, the mean per-token cross-entropy in nats over all the perturbation
  documents as one batch, :math:`L = -\sum_d\sum_t \ln p / T_t = \ln 2\cdot\gamma_t`; its gradient is
  :math:`\ln 2\, g_t` (accumulated over ``--batch-size`` pieces, the same sum). u is the change the optimizer
  applied, read back from the parameters (so a float32 rounding of the update is in u, as in the measured step);
* **first order** :math:`\Delta\gamma_i \approx g_i\cdot u` bits per token, :math:`g_i\cdot u\,T_i/B_i` bits per byte,
  and :math:`R_1 = (g_a\cdot u)/(-g_p\cdot u)`;
* **second order** :math:`\Delta\gamma_i \approx g_i\cdot u + \tfrac12 u^\top H_i u`, the curvature by a
  Hessian-vector product (double backward, :func:`quadratic_form`);
* **measured** :math:`\gamma_i(\theta + u) - \gamma_i(\theta)` on the same documents, with the paired document
  interval of :func:`~elastic_theory.stats.comparison.compare_rates` (95%, leave-one-out t), and whether each prediction is inside;
* **elastic limit**: along :math:`\theta + s u`, :math:`\Delta\gamma_p(s) \approx s\,g_p\cdot u + \tfrac{s^2}{2}
  u^\top H_p u`; with :math:`g_p\cdot u < 0` and :math:`u^\top H_p u > 0` the pre-training rate falls, is lowest at
  :math:`s^*/2` and is back where it started at :math:`s^* = 2(-g_p\cdot u)/(u^\top H_p u)`, beyond which the
  step has made it worse (:func:`elastic_limit`); undefined (None) otherwise;
* **controls**: the same for one step of the same optimizer on the alignment data, on the pre-training data, and a
  Gaussian direction, each rescaled to :math:`\|u\|` (the same lr is not the same step size).

Every step is taken from the same :math:`\theta` and undone exactly (the parameters are copied back).

**Sharded** (``shard = (rank, world)``, under ``torchrun``): each process runs every ``world``-th batch of windows of
each dataset (:func:`~elastic_theory.empirical.probe_text.batches`), and the sums that make a gradient, a document's
code length and a curvature are added over the processes (all-reduce); every process then holds the same gradients,
takes the same step and reports the same numbers. They equal one process's up to the order of floating-point
additions: each batch's terms are computed identically, and only their association changes (none at all when each
process holds one batch per dataset).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..theory.units import LN2

__all__ = [
    "OPTIMIZERS", "ProbeSettings", "cosine", "displaced", "dot", "elastic_limit", "error_slope", "gradient", "optimizer_update", "quadratic_form",
    "probe_steps", "ratio", "run_probe", "trainable_parameters",
]

OPTIMIZERS = ("sgd", "adam", "adamw")
"""The optimizers whose first step the probe takes, with torch's defaults (weight decay as given)."""


def trainable_parameters(model) -> list[torch.Tensor]:
    """The parameters a step changes: those with ``requires_grad`` (every weight, or a LoRA adapter's)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return params


def gradient(params: Sequence[torch.Tensor], pieces: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """The gradient of ``sum(pieces)`` with respect to ``params``, one piece at a time (only one piece's graph held)."""
    total = [torch.zeros_like(p) for p in params]
    for piece in pieces:
        for acc, g in zip(total, torch.autograd.grad(piece, params, allow_unused=True)):
            if g is not None:
                acc += g
    return total


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """:math:`a\\cdot b` over all parameter tensors, summed in float64."""
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


def cosine(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """:math:`a\\cdot b/(\\|a\\|\\|b\\|)`; NaN when either is 0."""
    den = math.sqrt(dot(a, a) * dot(b, b))
    return dot(a, b) / den if den > 0 else math.nan


def quadratic_form(params: Sequence[torch.Tensor], pieces: Iterable[torch.Tensor], u: Sequence[torch.Tensor]) -> float:
    r""":math:`u^\top H u` of ``sum(pieces)`` (H its Hessian) by one Hessian-vector product per piece: the gradient
    with a graph, :math:`\nabla f\cdot u`, differentiated again (double backward; attention must support it:
    transformers' eager attention does, the CPU SDPA kernel does not)."""
    total = 0.0
    for piece in pieces:
        grads = torch.autograd.grad(piece, params, create_graph=True, allow_unused=True)
        pairs = [(g, v) for g, v in zip(grads, u) if g is not None]
        gu = sum((g * v.to(g.dtype)).sum() for g, v in pairs)
        if not gu.requires_grad:  # the piece is linear in the parameters: no curvature
            continue
        hv = torch.autograd.grad(gu, params, allow_unused=True)
        total += dot([h if h is not None else torch.zeros_like(v) for h, v in zip(hv, u)], u)
    return total


def _optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def optimizer_update(params: Sequence[torch.Tensor], grad: Sequence[torch.Tensor], optimizer: str, lr: float,
                     weight_decay: float = 0.0) -> list[torch.Tensor]:
    """The change u one step of ``optimizer`` (a fresh torch optimizer: no momentum, no moment estimates yet) makes
    with gradient ``grad``, read back from the parameters; the parameters and their ``.grad`` are restored."""
    saved = [p.detach().clone() for p in params]
    before = [p.grad for p in params]
    try:
        for p, g in zip(params, grad):
            p.grad = g.detach().to(p.dtype).clone()
        _optimizer(optimizer, params, lr, weight_decay).step()
        return [p.detach() - s for p, s in zip(params, saved)]
    finally:
        with torch.no_grad():
            for p, s, g in zip(params, saved, before):
                p.copy_(s)
                p.grad = g


@contextlib.contextmanager
def displaced(params: Sequence[torch.Tensor], u: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """The parameters moved to :math:`\\theta + u` inside the block; yields the change actually applied (u rounded to
    the parameters' dtype, :math:`(\\theta + u) - \\theta`), and copies :math:`\\theta` back afterwards."""
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p, v in zip(params, u):
                p.add_(v.to(p.dtype))
        yield [p.detach() - s for p, s in zip(params, saved)]
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def error_slope(lrs: Sequence[float], errors: Sequence[float]) -> float:
    r"""The least-squares slope of :math:`\ln|\text{error}|` on :math:`\ln \text{lr}`: the order at which a prediction's
    error shrinks (2 for a right first-order prediction, 3 for a right second-order one, 1 for a wrong gradient,
    unit or factor, whose error is itself first order)."""
    x, y = np.log(np.asarray(lrs, dtype=np.float64)), np.log(np.abs(np.asarray(errors, dtype=np.float64)))
    return float(np.polyfit(x, y, 1)[0])


def ratio(align: float, pretrain: float) -> float:
    r""":math:`\Delta\gamma_a / (-\Delta\gamma_p)`, the theory's R; NaN when the pre-training change is 0."""
    return align / -pretrain if pretrain != 0 else math.nan


def elastic_limit(pretrain_slope: float, pretrain_curvature: float) -> tuple[float | None, str]:
    r"""``(s*, why)``: the step scale :math:`s^* = 2(-g_p\cdot u)/(u^\top H_p u)` at which the second-order change
    of the pre-training rate along :math:`\theta + s u` is back at 0 and turns positive (module docstring), or
    ``(None, reason)`` when it never does: the first-order change is not a decrease, or the curvature is not positive."""
    if not pretrain_slope < 0:
        return None, "the pre-training rate does not fall to first order along this step (g_p.u >= 0)"
    if not pretrain_curvature > 0:
        return None, "the curvature u^T H_p u is not positive: to second order the pre-training rate keeps falling"
    return 2.0 * -pretrain_slope / pretrain_curvature, ""


@dataclass(frozen=True)
class Step:
    """One step the probe takes: its ``direction`` (perturb, align, pretrain, random), ``lr`` and applied change ``u``."""

    direction: str
    lr: float
    u: list[torch.Tensor]

    @property
    def label(self) -> str:
        return f"{self.direction}@{self.lr:g}"


def probe_steps(params, grads: dict[str, list[torch.Tensor]], roles: dict[str, str], optimizer: str,
                lrs: Sequence[float], weight_decay: float, controls: bool, seed: int) -> list[Step]:
    r"""The steps to probe, per lr: the optimizer's step on the perturbation loss :math:`L = \ln 2\,\gamma_t` (gradient
    :math:`\ln 2\,g_t`) and, with ``controls``, its step on the alignment loss and on the pre-training loss and a
    Gaussian direction (drawn from ``seed``, the same for every lr), each rescaled to the perturbation step's norm.
    ``roles`` maps ``"align"``, ``"pretrain"``, ``"perturb"`` to dataset names. Each u is the change applied."""
    out = []
    for lr in lrs:
        u = optimizer_update(params, [g * LN2 for g in grads[roles["perturb"]]], optimizer, lr, weight_decay)
        with displaced(params, u) as applied:
            out.append(Step("perturb", lr, applied))
        if not controls:
            continue
        norm = math.sqrt(dot(u, u))
        others = {role: optimizer_update(params, [g * LN2 for g in grads[roles[role]]], optimizer, lr, weight_decay)
                  for role in ("align", "pretrain")}
        generator = torch.Generator().manual_seed(seed)
        others["random"] = [torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) for p in params]
        for direction, v in others.items():
            size = math.sqrt(dot(v, v))
            with displaced(params, [x * (norm / size) if size > 0 else x for x in v]) as applied:
                out.append(Step(direction, lr, applied))
    return out


def eager_attention(model) -> None:
    """Switch a transformers model (or the base of a peft model) to eager attention, which has a double backward
    (torch's CPU SDPA kernel has none); the numbers are the same up to the order of floating-point sums."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(getattr(base, "config", None), "_attn_implementation", "eager") != "eager":
        base.set_attn_implementation("eager")


@dataclass(frozen=True)
class ProbeSettings:
    """How :func:`run_probe` steps and measures: the ``optimizer`` (:data:`OPTIMIZERS`) at each of ``lrs`` with
    ``weight_decay``; ``second_order`` (curvatures, second-order predictions, the elastic limit); ``controls``;
    ``batch_size`` windows per forward pass; ``seed`` of the random direction of the controls (the intervals are
    leave-one-out t intervals, :func:`~elastic_theory.stats.comparison.compare_rates`: nothing in them is random)."""

    optimizer: str = "sgd"
    lrs: tuple[float, ...] = (1e-3,)
    weight_decay: float = 0.0
    second_order: bool = False
    controls: bool = False
    batch_size: int = 1
    seed: int = 0


def run_probe(model, datasets: dict, roles: dict[str, str], settings: ProbeSettings, progress: bool = False,
              shard: tuple[int, int] = (0, 1)) -> dict:
    """Probe ``model`` on ``datasets`` (name -> :class:`~elastic_theory.empirical.probe_text.TextDataset`) with
    ``roles`` (``align``, ``pretrain``, ``perturb`` -> a dataset name): the report of ``elastic-theory probe``
    (docs/probe.md), every number as the module docstring defines it. The model is evaluated in eval mode and left
    with its parameters as they were. ``shard = (rank, world)``: this process's part of a sharded run (module
    docstring; every rank of the process group calls it)."""
    from tqdm.auto import tqdm

    from ..stats.comparison import compare_rates
    from .distributed import sum_across_ranks
    from .probe_text import dataset_scores, rate_pieces
    from .scoring import eval_mode

    params, bs = trainable_parameters(model), settings.batch_size
    if settings.second_order:
        eager_attention(model)
    n_steps = len(settings.lrs) * (4 if settings.controls else 1)
    passes = len(datasets) * (2 + n_steps * (1 + settings.second_order))
    with eval_mode(model), tqdm(total=passes, desc="probe passes", unit="pass", disable=not progress) as bar:
        base = {}
        grads = {}
        for name, data in datasets.items():
            base[name] = dataset_scores(model, data, bs, shard)
            grads[name] = sum_across_ranks(gradient(params, rate_pieces(model, data, bs, shard)), shard[1])
            bar.update(2)
        steps = probe_steps(params, grads, roles, settings.optimizer, settings.lrs, settings.weight_decay,
                            settings.controls, settings.seed)
        measured, curvature = {}, {}
        for step in steps:
            with displaced(params, step.u):
                measured[step.label] = {name: dataset_scores(model, data, bs, shard) for name, data in datasets.items()}
            bar.update(len(datasets))
            if settings.second_order:
                parts = torch.tensor([quadratic_form(params, rate_pieces(model, data, bs, shard), step.u)
                                      for data in datasets.values()], dtype=torch.float64)
                curvature[step.label] = dict(zip(datasets, sum_across_ranks([parts], shard[1])[0].tolist()))
                bar.update(len(datasets))
    # The intervals reported are compare_rates' leave-one-out t intervals; the percentile bootstrap that compare
    # prints beside them is not reported here, and one resample makes it cost nothing.
    comparison = compare_rates(base, measured, np.random.default_rng(0), n_resamples=1,
                               ratio=(roles["align"], roles["pretrain"]), unit="token")
    entries = [_step_entry(step, datasets, grads, roles, comparison, curvature.get(step.label)) for step in steps]
    role_of = {name: role for role, name in roles.items()}
    return {
        "datasets": {name: {
            "role": role_of.get(name), "bits_per_token": base[name].bits_per_token,
            "bits_per_byte": base[name].bits_per_byte, "grad_norm": math.sqrt(dot(grads[name], grads[name])),
            "n_tokens": data.n_tokens, "n_bytes": int(np.sum(data.n_bytes)), "n_documents": len(data.token_ids),
        } for name, data in datasets.items()},
        "roles": dict(roles),
        "n_trained_parameters": int(sum(p.numel() for p in params)),
        "steps": entries,
        "elastic_limit": _top_elastic_limit(entries, settings),
        "cosines": {a: {b: cosine(grads[a], grads[b]) for b in datasets} for a in datasets},
    }


def _step_entry(step: Step, datasets: dict, grads: dict, roles: dict[str, str], comparison, curvature: dict | None) -> dict:
    """One entry of the report's ``steps``: predictions (bits per token, and per byte), measured changes with their
    paired 95% intervals, the ratios, the signs and whether each prediction lies inside its interval."""
    first = {name: dot(grads[name], step.u) for name in datasets}
    second = None if curvature is None else {name: first[name] + 0.5 * curvature[name] for name in datasets}
    changes = comparison.changes[step.label]
    measured = {name: {"value": ch.delta_bits_per_token, "ci95": list(ch.delta_bits_per_token_ci95),
                       "value_per_byte": ch.delta_bits_per_byte, "ci95_per_byte": list(ch.delta_bits_per_byte_ci95)}
                for name, ch in changes.items()}

    def inside(pred: dict | None) -> dict | None:
        return None if pred is None else {
            name: bool(measured[name]["ci95"][0] <= pred[name] <= measured[name]["ci95"][1]) for name in datasets}

    a, p = roles["align"], roles["pretrain"]
    r = comparison.ratios[step.label]
    limit, why = (None, "needs --second-order") if curvature is None else elastic_limit(first[p], curvature[p])
    return {
        "direction": step.direction, "lr": step.lr, "step_norm": math.sqrt(dot(step.u, step.u)),
        "predicted_first_order": first,
        "predicted_first_order_per_byte": {name: first[name] * datasets[name].tokens_per_byte for name in datasets},
        "curvature": curvature, "predicted_second_order": second,
        "predicted_second_order_per_byte": None if second is None else {
            name: second[name] * datasets[name].tokens_per_byte for name in datasets},
        "measured": measured,
        "R_first_order": ratio(first[a], first[p]),
        "R_second_order": None if second is None else ratio(second[a], second[p]),
        # compare_rates' ratio is the theory's R = Delta_a / -Delta_p (align and pretrain in their roles)
        "R_measured": {"value": r.value, "ci95": None if r.ci95 is None else list(r.ci95)},
        "signs_hold": bool(measured[a]["value"] > 0 and measured[p]["value"] < 0),
        "signs_hold_first_order": bool(first[a] > 0 and first[p] < 0),
        "prediction_inside_ci": inside(first),
        "second_order_inside_ci": inside(second),
        "elastic_limit": {"step_scale": limit, "reason": why or None},
    }


def _top_elastic_limit(entries: list[dict], settings: ProbeSettings) -> dict:
    """The elastic limit of the perturbation step at the first lr: the step scale s*, as the learning rate of one
    step that reaches it (SGD: u is proportional to lr) or as a number of steps at that lr (Adam, AdamW)."""
    entry = next(e for e in entries if e["direction"] == "perturb")
    s = entry["elastic_limit"]["step_scale"]
    sgd = settings.optimizer == "sgd"
    return {"step_scale": s, "at_lr": entry["lr"], "lr": s * entry["lr"] if s is not None and sgd else None,
            "steps": s if s is not None and not sgd else None, "reason": entry["elastic_limit"]["reason"]}
