"""Every planted fault (``elastic_theory.claims.FAULTS``) changes its claim's verdict: one test per fault, plus the
faults' finer expectations (by how much a fault is caught, which verdict it turns into) and the registry's plumbing."""

from __future__ import annotations

import numpy as np
import pytest

from elastic_theory import claims
from elastic_theory.claims import CLAIMS, FAULTS
from elastic_theory.theory.elasticity import perturbation

#: Claims whose check takes over 2 s on the shared machine under load (the mpmath path of the rates at 80 settings).
SLOW_CLAIMS = {"closed_form_ratio"}

#: Faults that the issue's audit planted (its table), each of which ``verify`` missed before and must catch now.
AUDIT_FAULTS = [
    "closed_form_ratio/float64 1 - shared", "theorem_signs/float64 1 - shared",
    "general_perturbation_formula/float64 1 - shared", "hooke_first_order/residual 0",
    "hooke_first_order/residual halved", "thm34_ceiling_formula/H_d for ceil(H_d)",
    "thm34_huffman_bounds/Shannon lengths", "thm34_ceiling_formula/Shannon lengths",
    "hooke_first_order/residual as a float difference", "theorem_signs/ln 2 missing", "mixture_lemma/token-weighted mixture",
]


def _param(name: str):
    fault = FAULTS[name]
    slow = fault.slow or fault.claim in SLOW_CLAIMS
    return pytest.param(name, marks=pytest.mark.slow, id=name) if slow else pytest.param(name, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in FAULTS])
def test_planted_fault_changes_the_verdict(name):
    """With the fault in place the claim's verdict is not its expected one; after it, the honest code is back."""
    fault = FAULTS[name]
    claim = CLAIMS[fault.claim]
    result = claims.run_fault(claim, fault)
    assert result.caught, f"{name}: verdict {result.verdict} = expected {claim.expected} with the fault in place"


def test_every_claim_has_a_fault_and_the_audit_faults_are_there():
    """Each of the 20 claims has at least one planted fault of its own; the audit's table is covered fault by fault."""
    assert {f.claim for f in FAULTS.values()} == set(CLAIMS)
    assert set(AUDIT_FAULTS) <= set(FAULTS)


def test_a_fault_is_taken_out_after_its_run_even_on_an_error():
    """``Fault.planted`` restores the patched attribute after the block, also when the block raises."""
    fault = FAULTS["closed_form_ratio/float64 1 - shared"]
    honest = perturbation.PerturbationModel.rates
    with pytest.raises(RuntimeError), fault.planted():
        assert perturbation.PerturbationModel.rates is not honest
        raise RuntimeError("inside")
    assert perturbation.PerturbationModel.rates is honest


def test_the_float64_complement_is_caught_at_large_k_only_by_a_bound_that_does_not_grow_with_k():
    """closed_form_ratio's old tolerance grew with k (1.2e-1 at k = 1e12); the derived one does not: the float64
    1 - E[P_t/p_l] is now outside it by a wide margin (its error is about k eps, the honest code's about 1e-14)."""
    claim = CLAIMS["closed_form_ratio"]
    with FAULTS["closed_form_ratio/float64 1 - shared"].planted():
        ev = claim.check(claims.claim_rng(claim.id, 0))
    assert ev.verdict == "fails" and ev.error_in_tolerances > 10 and ev.counterexample["k"] > 1e4
    assert ev.tolerance < 1e-11  # relative to R, independent of k


def test_the_token_weighted_mixture_is_far_outside():
    """The token-weighted joint model is off the union by more than a million times the rounding bound."""
    claim = CLAIMS["mixture_lemma"]
    with FAULTS["mixture_lemma/token-weighted mixture"].planted():
        ev = claim.check(claims.claim_rng(claim.id, 0))
    assert ev.verdict == "fails" and ev.error_in_tolerances > 1e6


def test_a_k_off_by_1e_8_is_caught_within_a_factor_1000_of_its_bound():
    """k off by one part in 10^8 leaves the derived tolerance by less than a factor 1000 (262 at seed 0), so a
    bound 1000 times looser than the derived one would pass it."""
    claim = CLAIMS["first_order_ratio_identity"]
    with FAULTS["first_order_ratio_identity/k off by 1e-8"].planted():
        ev = claim.check(claims.claim_rng(claim.id, 0))
    assert ev.verdict == "fails" and ev.counterexample is not None and 1.0 < ev.error_in_tolerances < 1000.0


def test_away_from_the_optimum_the_identity_is_inconclusive_not_failed():
    """A network stopped after 20 L-BFGS iterations: the ratio really is off k (more than the 1e-6 precision), the
    bound from its gradient norm covers it (no false 'fails'), and the claim reaches no verdict instead of 'holds'."""
    claim = CLAIMS["first_order_ratio_identity"]
    with FAULTS["first_order_ratio_identity/not at the optimum"].planted():
        ev = claim.check(claims.claim_rng(claim.id, 0))
    assert ev.verdict == "inconclusive" and ev.error_in_tolerances <= 1.0
    assert ev.details["largest_relative_error"] > 1e-6 and ev.details["largest_tolerance"] > 1e-6
    assert ev.details["grad_norm"] > 1e-4


@pytest.mark.parametrize("name, verdict", [
    ("first_order_signs/ascent step", "holds"), ("first_order_signs/wrong dataset's gradient", "inconclusive"),
    ("first_order_signs/measured change negated", "inconclusive"),
    ("sign_beyond_threshold/closed-form sign forced", "inconclusive"), ("sign_beyond_threshold/no warning", "inconclusive"),
    ("sign_beyond_threshold/tree signs forced", "inconclusive"),
])
def test_a_failure_claim_turns_into_the_right_verdict(name, verdict):
    """A counterexample claim with its evidence broken reaches no verdict (not 'fails'); without a counterexample it
    'holds'."""
    assert claims.run_fault(CLAIMS[FAULTS[name].claim], FAULTS[name]).verdict == verdict


def test_verification_with_faults_reports_each_fault():
    """``run_verification(faults=True)``: per claim the faults tried and whether each was caught, in the JSON too;
    all_agree needs every fault caught, so an uncaught one makes the run disagree."""
    report = claims.run_verification(0, ["ratio_upper_bound", "ratio_limit"], faults=True)
    data = report.to_json()
    assert [c["faults_caught"] for c in data["claims"]] == [1, 1] and report.all_agree
    assert {"name", "description", "verdict", "caught", "seconds"} <= set(data["claims"][0]["faults"][0])
    assert "planted faults caught: 2/2" in report.summary
    md = claims.render_faults_markdown(report)
    assert md.count("\n") == 4 and "| ratio_limit | denominator w3 |" in md
    assert "faults" not in claims.run_verification(0, ["ratio_limit"]).to_json()["claims"][0]


def test_an_uncaught_fault_makes_the_run_disagree():
    """A 'fault' that changes nothing is not caught, and the run's all_agree is False (verify would exit 1)."""
    fault = claims.Fault("ratio_limit", "no-op", "nothing changes", lambda patch: None)
    result = claims.run_fault(CLAIMS["ratio_limit"], fault)
    assert not result.caught and result.verdict == "holds"
    report = claims.VerificationReport(0, (claims.ClaimResult("ratio_limit", "", "", "holds", "holds", _evidence(),
                                                              0.0, (result,)),), 0.0)
    assert not report.all_agree


def _evidence() -> claims.Evidence:
    return claims.Evidence("holds", 1, 0.0, 0.0, "")


def test_patch_restores_in_reverse_order():
    """Two patches of one attribute are undone last first, back to the original."""
    ns = type("NS", (), {"x": 1})
    patch = claims.Patch()
    patch(ns, "x", 2)
    patch(ns, "x", 3)
    assert ns.x == 3
    patch.undo()
    assert ns.x == 1 and np.isfinite(ns.x)
