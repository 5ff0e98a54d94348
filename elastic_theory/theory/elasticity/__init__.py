r"""The elasticity theorem (Ji et al. 2025, Thm. 4.2) as a perturbation model with exact derivatives.

Layout: :mod:`.closed_forms` (§2.2 and the checks of k, l, w3), :mod:`.hooke` (the spring invariant),
:mod:`.precision` (sums to a stated relative precision), :mod:`.perturbation` (§2.1 on token trees),
:mod:`.inverse_alignment` (Def. 3.6). Import the names from here.

Setting (THEORY §2). Pre-training set :math:`D_p`, alignment set :math:`D_a`, perturbation set
:math:`D_t` with :math:`|D_t| = l\,|D_a|`. A model of unrestricted capacity trained to optimum
on :math:`D_p \cup D_a \cup D_t` is the size-weighted mixture (the joint-training lemma,
:func:`elastic_theory.theory.mixing.mixture`)

.. math:: p_l = \frac{N P + l |D_a| P_t}{N + l |D_a|}, \qquad N = |D_p| + |D_a|,
          \quad P = \frac{|D_p| P_p + |D_a| P_a}{N}.

**General formula (§2.1, exact, any supports).** For a dataset distribution :math:`P_i` whose
support :math:`p_l` covers,

.. math:: \frac{d}{dl} CE(P_i, p_l) = \frac{|D_a|}{N + l|D_a|}
          \Bigl(1 - E_{x \sim P_i}\Bigl[\frac{P_t(x)}{p_l(x)}\Bigr]\Bigr) \quad\text{nats per response},

since :math:`\frac{d}{dl}\ln p_l(x) = \frac{|D_a|}{N + l|D_a|}(P_t(x)/p_l(x) - 1)`.
:class:`PerturbationModel` evaluates it for real :class:`~elastic_theory.theory.tree.TokenTree` s and
converts to bits (divide by :math:`\ln 2`) and to bits per token (divide by :math:`E_{P_i}|x|`).

**Disjoint components (§2.2).** :math:`P_p = w_1 P_1 + w_2 P_2 + w_3 P_3`, :math:`P_a = P_2`,
:math:`P_t = P_3`, pairwise disjoint supports, :math:`k = |D_p|/|D_a|`. Then, per response,

.. math:: \frac{d\gamma_a}{dl} = \frac{1}{(1+k+l)\ln 2}, \qquad
          \frac{d\gamma_p}{dl} = \frac{1}{\ln 2}\Bigl(\frac{1}{1+k+l} - \frac{w_3}{k w_3 + l}\Bigr),

.. math:: R(k, l, w_3) = \frac{d\gamma_a/dl}{-d\gamma_p/dl} = \frac{w_3 k + l}{w_3 - (1-w_3) l}.

The sign claim :math:`d\gamma_p/dl < 0 < d\gamma_a/dl` holds iff :math:`l < l^* = w_3/(1-w_3)`;
on :math:`0 \le l \le \lambda < l^*`, :math:`1 \le R/k \le (1 + \lambda/(w_3 k))/(1 - (1-w_3)\lambda/w_3)`.
**Units.** :func:`elastic_theory.theory.rates.gamma` is bits *per token*; everything here is bits *per
response* unless its name says ``per_token``: the closed forms are named
:func:`dgamma_a_dl_per_response` / :func:`dgamma_p_dl_per_response` (divide by :math:`E|x|` of
that dataset for per token), :class:`DatasetRates` has ``dcross_entropy_dl_bits`` (per response)
next to ``dgamma_dl_bits_per_token``. A per-token :math:`R` is the per-response one times
:math:`E_{P_p}|x| / E_{P_a}|x|`. No derivative depends on the
normalizing offset of :func:`elastic_theory.theory.rates.normalized_gamma` (it is model-free).
"""

from __future__ import annotations

from .closed_forms import (
    ClosedForm,
    SignClaimWarning,
    check_k,
    check_l,
    check_w3,
    closed_form,
    closed_form_result,
    dgamma_a_dl_per_response,
    dgamma_p_dl_per_response,
    ratio_R,
    ratio_R_exact,
    sign_threshold,
    theta_constants,
    theta_upper_exact,
)
from .hooke import HookeInvariant, hooke_invariant
from .inverse_alignment import InverseAlignment, inverse_alignment, rho
from .perturbation import DatasetRates, LeafMasses, PerturbationModel, derivative_ratio
from .precision import PRECISION

__all__ = [
    "PRECISION",
    "LeafMasses",
    "ClosedForm",
    "DatasetRates",
    "HookeInvariant",
    "InverseAlignment",
    "PerturbationModel",
    "SignClaimWarning",
    "check_k",
    "check_l",
    "check_w3",
    "closed_form",
    "closed_form_result",
    "derivative_ratio",
    "dgamma_a_dl_per_response",
    "dgamma_p_dl_per_response",
    "hooke_invariant",
    "inverse_alignment",
    "ratio_R",
    "ratio_R_exact",
    "rho",
    "sign_threshold",
    "theta_constants",
    "theta_upper_exact",
]
