r"""How the exact rates of :mod:`~elastic_theory.empirical.training` move: along the joint optimum, under one step.

* :func:`influence_dgamma_dl`: the implicit-function (influence) derivative of the rates along the
  joint optimum :math:`\theta^*(l)`, by Hessian-vector products and conjugate gradients;
* :func:`first_order_changes`: the first-order change of the rates under one SGD step, a gradient
  inner product.

Both work on any model :mod:`~elastic_theory.empirical.training`'s functions take (a transformers
model or a :class:`~elastic_theory.empirical.training.TabularModel`); rates in bits per token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from .training import SequenceData, gamma_tensor, nll

__all__ = ["first_order_changes", "influence_dgamma_dl"]


def _flat_grad(value: torch.Tensor, params, create_graph: bool = False, retain_graph: bool | None = None) -> torch.Tensor:
    grads = torch.autograd.grad(value, params, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def _conjugate_gradient(hvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, max_iter: int, rtol: float):
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rs = r @ r
    b_norm = float(b.norm())
    for it in range(1, max_iter + 1):
        Ap = hvp(p)
        alpha = rs / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rs_new = r @ r
        if math.sqrt(float(rs_new)) <= rtol * b_norm:
            return x, it, math.sqrt(float(rs_new)) / b_norm
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x, max_iter, math.sqrt(float(rs)) / b_norm


def influence_dgamma_dl(
    model,
    union: SequenceData,
    perturb: SequenceData,
    evaluate: Mapping[str, SequenceData],
    size_factor: float,
    *,
    damping: float = 0.0,
    max_iter: int = 500,
    rtol: float = 1e-8,
) -> dict:
    r"""Rate derivatives along the joint optimum by the implicit function theorem (influence functions).

    The joint objective at l is :math:`F(\theta, l) = (N\,CE_0(\theta) + l|D_a|\,CE_t(\theta))/(N + l|D_a|)`
    (``union`` is its data at the current l). At a minimum :math:`\nabla F = 0`, so

    .. math:: \frac{d\theta^*}{dl} = -H^{-1}\,\partial_l \nabla F
              = -\frac{|D_a|}{N + l|D_a|}\,H^{-1}(\nabla CE_t - \nabla F),
              \qquad \frac{d\gamma_i}{dl} = \nabla\gamma_i \cdot \frac{d\theta^*}{dl},

    with ``size_factor`` :math:`= |D_a|/(N + l|D_a|)`, :math:`H = \nabla^2 F + \text{damping}\,I`
    (Hessian-vector products by double backward, solved by conjugate gradients from 0, so the
    solution stays in H's range: the network is over-parameterized and H singular). Returns
    ``{"dgamma_dl": {name: bits per token per unit l}, "cg_iterations", "cg_relative_residual"}``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    grad_F = _flat_grad(nll(model, union), params, create_graph=True)
    rhs = (_flat_grad(nll(model, perturb), params) - grad_F.detach()) * size_factor

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return _flat_grad(grad_F @ v, params, retain_graph=True) + damping * v

    x, iters, resid = _conjugate_gradient(hvp, rhs, max_iter, rtol)
    dtheta = -x
    out = {name: float(_flat_grad(gamma_tensor(model, d), params) @ dtheta) for name, d in evaluate.items()}
    return {"dgamma_dl": out, "cg_iterations": iters, "cg_relative_residual": resid}


def first_order_changes(model, train: SequenceData, evaluate: Mapping[str, SequenceData], lr: float) -> dict[str, float]:
    r"""First-order change of each rate under one full-batch SGD step of size ``lr`` on ``train``.

    .. math:: \Delta\gamma_i \approx -\eta\,\nabla_\theta\gamma_i \cdot \nabla_\theta CE_{train}
    (bits per token): a gradient inner product, the tangent of sequential fine-tuning at its start.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    g = _flat_grad(nll(model, train), params)
    return {name: -lr * float(_flat_grad(gamma_tensor(model, d), params) @ g) for name, d in evaluate.items()}
