r"""Planted faults of the first-order, numerics, Pareto and failure claims (see
:mod:`~elastic_theory.claims.planted_theorem` and :class:`~elastic_theory.claims.registry.Fault`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..theory import elasticity, highprec
from ..theory.pareto import counts_test, masses
from ..theory.units import LN2
from . import first_order
from .planted_theorem import abs_dgamma_p, no_warning, tree_signs_always_theorem
from .registry import Patch, planted_fault


# ---------------------------------------------------------------------------------------------- first order
def _gradient_of(row: int):
    """Gradients where D_p's row is replaced by another dataset's (a wrong-dataset gradient)."""
    real = first_order.gradients

    def wrong(s, theta):
        losses, grads, rounding = real(s, theta)
        grads = grads.copy()
        grads[0] = grads[row]
        return losses, grads, rounding

    return wrong


def _replace_setting(patch: Patch, **changes) -> None:
    honest = first_order.setting()
    patch(first_order, "setting", lambda: dataclasses.replace(honest, **changes))


def _wrong_dataset(patch: Patch) -> None:
    patch(first_order, "gradients", _gradient_of(2))


for _claim in ("first_order_ratio_identity", "first_order_signs"):
    planted_fault(_claim, "wrong dataset's gradient", "D_t's gradient used as D_p's")(_wrong_dataset)


@planted_fault("first_order_ratio_identity", "k off by 1e-8", "k (and k per token) off by one part in 10^8")
def _k_off(patch: Patch) -> None:
    honest = first_order.setting()
    _replace_setting(patch, k=honest.k * (1 + 1e-8), k_tokens=honest.k_tokens * (1 + 1e-8))


@planted_fault("first_order_ratio_identity", "per token against k in responses", "per-token rates compared with k "
               "in responses")
def _units_mixed(patch: Patch) -> None:
    _replace_setting(patch, k_tokens=first_order.setting().k)


@planted_fault("first_order_ratio_identity", "not at the optimum", "a network stopped after 20 L-BFGS iterations "
               "(no Newton steps): the ratio is off k, and the claim must not say 'holds'")
def _early_stop(patch: Patch) -> None:
    from ..theory import tiny_network

    honest = first_order.setting()
    early = tiny_network.fit(honest.net, honest.table, honest.weights[3],
                             honest.net.init(np.random.default_rng(first_order.INIT_SEED), first_order.INIT_SCALE),
                             max_iterations=20, newton_steps=0)
    _replace_setting(patch, optimum=early)


@planted_fault("first_order_signs", "ascent step", "steps against D_a (negative learning rates): no counterexample")
def _ascent(patch: Patch) -> None:
    patch(first_order, "STEP_LRS", tuple(-lr for lr in first_order.STEP_LRS))


@planted_fault("first_order_signs", "measured change negated", "the measured rate changes with the wrong sign")
def _negated_step(patch: Patch) -> None:
    real = first_order._step
    patch(first_order, "_step", lambda *a: {**real(*a), "measured": -real(*a)["measured"]})


# ------------------------------------------------------------------------------------------------- numerics
@planted_fault("highprec_closed_forms", "float64 difference for d gamma_p/dl", "d gamma_p/dl as the float64 "
               "difference 1/(1+k+l) - w3/(k w3 + l) (k eps relative)")
def _float_difference_dgamma_p(patch: Patch) -> None:
    patch(elasticity, "dgamma_p_dl_per_response", lambda k, l, w3: (1 / (1 + k + l) - w3 / (k * w3 + l)) / LN2)


@planted_fault("float64_finite_differences", "exact differences", "the finite differences reported as exact "
               "(17 digits): the claim's counterexample disappears")
def _exact_differences(patch: Patch) -> None:
    rows = [dataclasses.replace(r, finite_difference_digits=17.0) for r in highprec.precision_table()]
    patch(highprec, "precision_table", lambda: rows)


# --------------------------------------------------------------------------------------------------- Pareto
@planted_fault("pareto_entropy_offset", "offset without -1/(alpha - 1)", "the entropy offset without its "
               "-1/(alpha - 1) term (a constant error that does not shrink with M)")
def _offset_missing_term(patch: Patch) -> None:
    patch(masses, "entropy_offset", lambda M, alpha: math.log(M) + math.log(alpha / (alpha - 1.0)))


@planted_fault("pareto_assumption_text", "p-value point estimate decides", "'holds' when the p-value's point "
               "estimate exceeds the level, its Monte Carlo interval and the test's power ignored", slow=True)
def _naive_decision(patch: Patch) -> None:
    patch(counts_test.CountsVerdict, "verdict",
          property(lambda self: "holds" if self.test.pvalue > self.level else "fails"))


# ------------------------------------------------------------------------------------------------- failures
for _name, _text, _plant in (
    ("closed-form sign forced", "the closed-form d gamma_p/dl forced negative", abs_dgamma_p),
    ("no warning", "no SignClaimWarning at or beyond l*", no_warning),
    ("tree signs forced", "the token trees' derivatives forced to the theorem's signs", tree_signs_always_theorem),
):
    planted_fault("sign_beyond_threshold", _name, _text)(_plant)

planted_fault("overlapping_supports", "tree signs forced", "the token trees' derivatives forced to the theorem's "
              "signs: no counterexample in 500 examples", slow=True)(tree_signs_always_theorem)


@planted_fault("no_shared_perturbation", "R = 1 at w3 = 0", "the closed form's w3 = 0 case returns R = 1 "
               "(no asymmetry either, but not the trees' -1)")
def _ratio_one_at_w3_zero(patch: Patch) -> None:
    real = elasticity.ratio_R
    patch(elasticity, "ratio_R", lambda k, l, w3: 1.0 if w3 == 0 else real(k, l, w3))
