r"""The direction controls of ``sequential-ratio``: one step of the same size from the same base along D_t, D_a, D_p
and a random direction.

Why they are needed: at a stationary point of the joint loss of :math:`D_p \cup D_a`,
:math:`|D_p|\nabla CE_p + |D_a|\nabla CE_a = 0`, so for *any* small parameter change u the first-order
changes satisfy :math:`\nabla CE_a\cdot u = -k\,\nabla CE_p\cdot u`: the ratio is k (per token R(k, 0))
whichever data the step comes from. A ratio near k after one small step on D_t therefore says nothing
about fine-tuning on D_t; only the signs (gamma_a up and gamma_p down, the theorem's content) and the
second-order behaviour can tell it from a step along D_a (which reinforces alignment), D_p or a random
direction.

"The same step size" is made exact by the update norm: the arm's first step on D_t is taken as it is
(:math:`u_t = \theta_1 - \theta_0`); the arm's first step on D_a and on D_p (same optimizer, same lr) and a
Gaussian direction drawn from the seed are each rescaled to :math:`\|u_t\|`. (The same lr would not be the
same step: an SGD step is lr times a gradient whose norm differs between datasets; for Adam the first
steps nearly agree in norm but not exactly.)

Imports torch: call it from ``run``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ...empirical.training import gamma_tensor, rates_bits_per_token, train_stage
from ...infra.trainconfig import StageConfig
from .._stats import ratio_of_changes
from ._sequential_ratio_analysis import DIRECTIONS

__all__ = ["direction_controls"]


def direction_controls(model, data: dict, arm: StageConfig, seed: int) -> list[dict]:
    r"""One step of norm :math:`\|u_t\|` from ``model``'s parameters along each of :data:`DIRECTIONS`.

    ``data`` maps ``"perturb"``, ``"align"`` and ``"pretrain"`` to the :class:`~elastic_theory.empirical.training.SequenceData`
    of D_t, D_a and D_p (the rates are measured on the last two). Per direction: the step's norm, the
    first-order (linearized) changes :math:`\nabla\gamma_i\cdot u` and their ratio, the exact changes after the
    step and their ratio (bits per token). The model's parameters are restored at the end.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    theta0 = torch.nn.utils.parameters_to_vector(params).detach().clone()
    rated = {"align": data["align"], "pretrain": data["pretrain"]}
    base = rates_bits_per_token(model, rated)
    grads = {name: torch.cat([g.reshape(-1) for g in torch.autograd.grad(gamma_tensor(model, d), params)])
             for name, d in rated.items()}
    one_step = replace(arm, steps=1)
    steps = {}
    for direction, role in (("D_t", "perturb"), ("D_a", "align"), ("D_p", "pretrain")):
        _set(params, theta0)
        train_stage(model, data[role], one_step)
        steps[direction] = torch.nn.utils.parameters_to_vector(params).detach() - theta0
    generator = torch.Generator().manual_seed(seed)
    steps["random"] = torch.randn(theta0.numel(), generator=generator, dtype=torch.float64).to(theta0)
    norm = float(steps["D_t"].norm())
    out = []
    for direction in DIRECTIONS:
        u = steps[direction]
        if direction != "D_t":
            u = u * (norm / float(u.norm()))
        first = {name: float(g @ u) for name, g in grads.items()}
        _set(params, theta0 + u)
        after = rates_bits_per_token(model, rated)
        da, dp = after["align"] - base["align"], after["pretrain"] - base["pretrain"]
        out.append({"direction": direction, "step_norm": float(u.norm()),
                    "first_order_delta_gamma_align": first["align"], "first_order_delta_gamma_pretrain": first["pretrain"],
                    "first_order_ratio": ratio_of_changes(first["align"], first["pretrain"]),
                    "delta_gamma_align": da, "delta_gamma_pretrain": dp, "ratio": ratio_of_changes(da, dp)})
    _set(params, theta0)
    return out


@torch.no_grad()
def _set(params, theta: torch.Tensor) -> None:
    # copy in place: vector_to_parameters would make the parameters views of theta, and a training step would then
    # overwrite theta0 itself (every later step difference would be 0)
    pointer = 0
    for p in params:
        p.copy_(theta[pointer:pointer + p.numel()].view_as(p))
        pointer += p.numel()
