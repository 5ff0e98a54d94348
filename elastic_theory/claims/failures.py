"""Where the theorem fails: beyond l*, without shared perturbation data, with overlapping supports."""

from __future__ import annotations

import warnings
from random import Random

import numpy as np

from ..theory import elasticity
from ..theory.units import LN2
from ..theory.tolerances import perturbation_derivative_tolerance
from .cases import dataset_json, disjoint_example, exact_margin, sign_warned
from .registry import Evidence, Worst, holds_or_fails, register


@register(
    "sign_beyond_threshold",
    "d gamma_p/dl < 0 for every l >= 0 (the sign claim without the bound l < w3/(1 - w3))",
    "Thm 4.2 read without its validity range",
    "fails",
)
def _beyond(rng: np.random.Generator) -> Evidence:
    """Counterexamples beyond l*, each confirmed twice.

    At every point the token-tree derivative (§2.1) and the closed form (§2.2) must agree within
    the trees' rounding bound, and the closed form must warn (SignClaimWarning) exactly when
    l >= l*. A counterexample is a point where both give d gamma_p/dl > 0 and the warning came.
    If agreement or warnings fail anywhere, the check reaches no verdict (``inconclusive``).
    """
    comps = disjoint_example()
    agree, warn_mismatch, counterexample, effect, n_beyond = Worst(), [], None, 0.0, 0
    for w3 in (0.01, 0.1, 0.5, 0.9):
        w = np.array([(1 - w3) / 2, (1 - w3) / 2, w3])
        for k in (10.0, 1e3, 1e6):
            model = elasticity.PerturbationModel.from_components(comps, w, k)
            for u in (0.5, 1.5, 4.0):
                l = u * elasticity.sign_threshold(w3)
                r = model.rates(model.pretrain, l)
                dp = r.dcross_entropy_dl_bits
                cf, warned = sign_warned(lambda: elasticity.dgamma_p_dl_per_response(k, l, w3))
                scale = 1.0 / ((1.0 + k + l) * LN2)
                point = {"k": k, "w3": w3, "l": l, "l_star": elasticity.sign_threshold(w3), "dgamma_p_dl_tree": dp,
                         "dgamma_p_dl_closed_form": cf, "warned": warned}
                agree.record(abs(dp - cf) / scale, perturbation_derivative_tolerance(model.pretrain.n_leaves, r.shared_mass),
                             point)
                beyond = exact_margin(l, w3) <= 0
                n_beyond += beyond
                if warned != beyond:
                    warn_mismatch.append(point)
                if dp > 0 and cf > 0 and warned and dp / scale > effect:
                    effect, counterexample = dp / scale, point
    consistent = not agree.violated and not warn_mismatch
    return Evidence(
        holds_or_fails(counterexample is not None) if consistent else "inconclusive", agree.cases, agree.error, agree.tolerance,
        f"beyond l* the pre-training rate rises: d gamma_p/dl up to {effect:.3g} x d gamma_a/dl; token trees and closed "
        f"form agree within {agree.ratio:.2g} x their rounding bound at all {agree.cases} points; SignClaimWarning at "
        f"{n_beyond - sum(p['l'] >= p['l_star'] and not p['warned'] for p in warn_mismatch)}/{n_beyond} points beyond "
        f"l*, {sum(p['l'] < p['l_star'] and p['warned'] for p in warn_mismatch)} below",
        counterexample,
        {"worst_case": agree.case, "warning_mismatches": warn_mismatch, "largest_dgamma_p_over_dgamma_a": effect},
    )


@register(
    "no_shared_perturbation",
    "R = Theta(k) also when the perturbation data is absent from pre-training (w3 = 0)",
    "Thm 4.2 without D_t inside D_p",
    "fails",
)
def _w3_zero(rng: np.random.Generator) -> Evidence:
    """R < 1 (no asymmetry) confirmed by token trees and the closed form R = -1, agreeing within rounding."""
    comps = disjoint_example()
    agree, counterexample = Worst(), None
    for k in (10.0, 1e3, 1e6):
        model = elasticity.PerturbationModel.from_components(comps, (0.5, 0.5, 0.0), k)
        for l in (1e-3, 0.1, 1.0):
            with warnings.catch_warnings():  # l >= l* = 0 always: the warning is the point here
                warnings.simplefilter("ignore", elasticity.SignClaimWarning)
                ra, rp = model.rates(model.align, l), model.rates(model.pretrain, l)  # what model.ratio(l) computes
                R_tree = elasticity.derivative_ratio(ra.dcross_entropy_dl_bits, rp.dcross_entropy_dl_bits)
                R_cf = elasticity.ratio_R(k, l, 0.0)
            # R = d_a/(-d_p): each derivative carries its rounding bound relative to its scale; |R| = 1 here.
            agree.record(abs(R_tree - R_cf), 2.0 * perturbation_derivative_tolerance(model.pretrain.n_leaves, rp.shared_mass),
                         {"k": k, "l": l, "R_tree": R_tree, "R_closed_form": R_cf})
            if R_tree < 1 and R_cf < 1 and counterexample is None:
                counterexample = {"k": k, "l": l, "R_tree": R_tree, "R_closed_form": R_cf}
    return Evidence(
        holds_or_fails(counterexample is not None) if not agree.violated else "inconclusive", agree.cases, agree.error,
        agree.tolerance,
        f"R = -1 (token trees within {agree.error:.1e} of the closed form): both rates rise at the same rate, no asymmetry",
        counterexample, {"worst_case": agree.case},
    )


@register(
    "overlapping_supports",
    "With D_t a component of D_p but supports overlapping, d gamma_p/dl < 0 < d gamma_a/dl still holds at small l",
    "Thm 4.2 beyond disjoint supports (THEORY §2.1)",
    "fails",
)
def _overlapping(rng: np.random.Generator) -> Evidence:
    import hypothesis
    from hypothesis import HealthCheck

    from ..testing import theorem_settings

    def violates(setting) -> bool:
        """A clear sign violation: a derivative on the wrong side by more than 1e-3 of its scale |D_a|/N_l."""
        comps, w, k = setting
        model = elasticity.PerturbationModel.from_components(comps, w, k)
        l = 0.1 * min(1.0, elasticity.sign_threshold(w[2]))
        scale = 1.0 / ((1.0 + k + l) * LN2)
        da, dp = (model.rates(t, l).dcross_entropy_dl_bits / scale for t in (model.align, model.pretrain))
        return k >= 10 and (da < -1e-3 or dp > 1e-3)

    settings = hypothesis.settings(
        database=None, max_examples=500, deadline=None, suppress_health_check=list(HealthCheck)
    )
    try:
        comps, w, k = hypothesis.find(theorem_settings(disjoint=False), violates, settings=settings,
                                      random=Random(int(rng.integers(2**32))))
    except hypothesis.errors.NoSuchExample:
        return Evidence("holds", 500, 0.0, 0.0, "no counterexample in 500 Hypothesis examples")
    model = elasticity.PerturbationModel.from_components(comps, w, k)
    l = 0.1 * min(1.0, elasticity.sign_threshold(w[2]))
    ra, rp = model.rates(model.align, l), model.rates(model.pretrain, l)
    example = {"P1": dataset_json(comps[0]), "P2 (= D_a)": dataset_json(comps[1]), "P3 (= D_t)": dataset_json(comps[2]),
               "vocab_size": comps[0].vocab_size, "w": w.tolist(), "k": k, "l": l, "dgamma_a_dl": ra.dcross_entropy_dl_bits,
               "dgamma_p_dl": rp.dcross_entropy_dl_bits, "E_Pa[P_t/p_l]": ra.shared_mass}
    scale = 1.0 / ((1.0 + k + l) * LN2)
    tol = max(perturbation_derivative_tolerance(t.n_leaves, r.shared_mass) for t, r in ((model.align, ra), (model.pretrain, rp)))
    return Evidence(
        "fails", 1, max(-ra.dcross_entropy_dl_bits, rp.dcross_entropy_dl_bits) / scale, tol,
        "Hypothesis found a counterexample (shrunk; in --json): with shared responses each sign is that of "
        "1 - E_{P_i}[P_t/p_l], not the theorem's",
        example,
    )
