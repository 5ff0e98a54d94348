r"""The first-order identity at an approximate stationary point: how far the ratio may be from k (THEORY §5.1).

Let :math:`J = (|D_p| CE_p + |D_a| CE_a)/(|D_p| + |D_a|)` be the joint loss (mean per response over the union;
equivalently the pooled mean per token times a constant), :math:`k = |D_p|/|D_a|` in responses, and
:math:`g_p, g_a, G` the gradients of :math:`CE_p, CE_a, J`. Then :math:`k g_p + g_a = (k+1) G` exactly, at every
parameter point. Along a direction u, with :math:`a = g_a\cdot u`,

.. math:: -g_p\cdot u = \frac{a - (k+1) G\cdot u}{k}, \qquad
          R_1 = \frac{g_a\cdot u}{-g_p\cdot u} = \frac{k}{1 - \delta}, \qquad \delta = \frac{(k+1)\,G\cdot u}{a},

so :math:`|R_1/k - 1| = |\delta|/|1 - \delta| \le \bar\delta/(1 - \bar\delta)` with
:math:`\bar\delta = (k+1)\|G\|\|u\|/|a|` (Cauchy-Schwarz) whenever :math:`\bar\delta < 1`. At an exact stationary point
:math:`G = 0` and :math:`R_1 = k` along every u; at the point an optimizer reached, the achieved gradient norm
bounds the deviation. Per-token rates :math:`\gamma_i = CE_i/(L_i \ln 2)` give
:math:`R_1^{tok} = R_1 L_p/L_a` and :math:`k_{tok} = k L_p/L_a` (token counts), so :math:`R_1^{tok}/k_{tok} = R_1/k`:
the same bound holds with k in tokens. The bound is tight up to the factor :math:`|G\cdot u|/(\|G\|\|u\|)`, about
:math:`1/\sqrt{n}` for a random direction in n parameters: a bound looser by much more would let a wrong k or a
wrong gradient through.
"""

from __future__ import annotations

import math

import numpy as np

from .tolerances import EPS

__all__ = ["first_order_ratio", "ratio_tolerance"]


def first_order_ratio(g_align: np.ndarray, g_pretrain: np.ndarray, u: np.ndarray) -> float:
    r""":math:`R_1 = (g_a\cdot u)/(-g_p\cdot u)`: the first-order ratio of the two rates' changes along ``u``."""
    return float(np.dot(g_align, u) / -np.dot(g_pretrain, u))


def ratio_tolerance(k: float, joint_grad_norm: float, u: np.ndarray, g_align: np.ndarray, g_pretrain: np.ndarray,
                    gradient_rounding: float = 0.0) -> float:
    r"""Bound on :math:`|R_1/k - 1|` at a point whose joint-loss gradient has norm ``joint_grad_norm`` (module docstring).

    :math:`\bar\delta = ((k+1)\|G\| + \rho)\|u\|/|a|`, where ``gradient_rounding`` :math:`\rho` bounds the norm of
    :math:`k\hat g_p + \hat g_a - (k+1)\hat G` that float64 rounding of the three computed gradients can produce
    (0 for exact gradients); returns :math:`\bar\delta/(1-\bar\delta)` plus the rounding of the two dot products
    (each :math:`n\varepsilon\sum_j|g_j u_j|` absolute, relative to :math:`|g\cdot u|`) and of the final division,
    and ``inf`` when :math:`\bar\delta \ge 1` (the point is too far from stationary to say anything along u).
    """
    u, ga, gp = (np.asarray(x, dtype=np.float64) for x in (u, g_align, g_pretrain))
    a, b = abs(float(ga @ u)), abs(float(gp @ u))
    if a == 0.0 or b == 0.0:
        return math.inf
    delta = ((k + 1.0) * joint_grad_norm + gradient_rounding) * float(np.linalg.norm(u)) / a
    if not delta < 1.0:
        return math.inf
    n = u.size + 4
    dots = n * EPS * (float(np.abs(ga * u).sum()) / a + float(np.abs(gp * u).sum()) / b)
    return delta / (1.0 - delta) + dots + 4 * EPS
