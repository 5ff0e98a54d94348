r"""Planted faults of the coding, joint-training and elasticity-theorem claims: known wrong implementations that each
claim must catch (its verdict must change). See :class:`~elastic_theory.claims.registry.Fault`.

Each fault replaces one library function (or method) by the wrong version, through the name the claim's check or
the library calls; ``elastic-theory verify --faults`` and ``tests/claims/test_planted_faults.py`` run them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..theory import coding, elasticity, mixing
from ..theory.elasticity import closed_forms, hooke, perturbation
from ..theory.tree import TokenTree
from ..theory.units import LN2
from .registry import Patch, planted_fault

_SHARED = "float64 1 - shared"
_SHARED_TEXT = ("the §2.1 derivative as |D_a|/(N + l|D_a|) (1 - E[P_t/p_l]) with the float64 sum E[P_t/p_l] "
                "(the old bug: k eps relative)")


def _wrong_derivative(patch: Patch, derivative) -> None:
    """``rates`` with its derivative replaced by ``derivative(model, rates, N, |D_a|, l in responses)`` (bits)."""
    real = perturbation.PerturbationModel.rates

    def rates(self, data, l):
        r = real(self, data, l)
        N, a = self.size_pretrain + self.size_align, self.size_align
        return dataclasses.replace(r, dcross_entropy_dl_bits=derivative(self, r, N, a, self.l_responses(l)))

    patch(perturbation.PerturbationModel, "rates", rates)


def float_one_minus_shared(patch: Patch) -> None:
    """``rates`` forms the derivative from the float64 ``1 - shared_mass`` instead of the controlled sum."""
    _wrong_derivative(patch, lambda m, r, N, a, l: (a / (N + l * a)) * (1.0 - r.shared_mass) / LN2 * m.l_scale)


for _claim in ("closed_form_ratio", "theorem_signs", "general_perturbation_formula"):
    planted_fault(_claim, _SHARED, _SHARED_TEXT)(float_one_minus_shared)


# ----------------------------------------------------------------------------------------------------- Thm 3.4
def _shannon(patch: Patch) -> None:
    def shannon_code(probs):
        p = np.asarray(probs, dtype=np.float64)
        return coding.HuffmanCode(p / p.sum(), np.ceil(-np.log2(p / p.sum())).astype(np.int64))

    patch(coding, "huffman_code", shannon_code)


def _reversed_lengths(patch: Patch) -> None:
    real = coding.huffman_code
    patch(coding, "huffman_code", lambda probs: dataclasses.replace(real(probs), lengths=real(probs).lengths[::-1].copy()))


for _claim in ("thm34_huffman_bounds", "thm34_ceiling_formula"):
    planted_fault(_claim, "Shannon lengths", "Huffman code lengths replaced by Shannon's ceil(-log2 q) "
                  "(also inside [H_d, H_d + 1))")(_shannon)
planted_fault("thm34_huffman_bounds", "lengths reversed", "the Huffman lengths assigned to the symbols in reverse "
              "order (a valid code, not the optimal one)")(_reversed_lengths)


@planted_fault("thm34_ceiling_formula", "H_d for ceil(H_d)", "the paper's length with H_d in place of ceil(H_d)")
def _no_ceiling(patch: Patch) -> None:
    patch(coding, "_ceil_bits", lambda h, n: h)


@planted_fault("thm34_ceiling_formula", "ceiling + 1", "ceil(H_d) one bit too high")
def _ceiling_plus_one(patch: Patch) -> None:
    patch(coding, "_ceil_bits", lambda h, n: math.ceil(h) + 1)


@planted_fault("thm34_ceiling_formula", "chunks of the mean length", "E[chunks] as max(1, ceil(E|x|/d)) instead "
               "of E[max(1, ceil(|x|/d))]")
def _mean_length_chunks(patch: Patch) -> None:
    patch(TokenTree, "mean_chunks", lambda self, d: float(max(1, math.ceil(self.mean_length / d))))


# -------------------------------------------------------------------------------------------- joint training
@planted_fault("mixture_lemma", "token-weighted mixture", "the joint model weights each dataset by its tokens "
               "instead of its responses")
def _token_weighted(patch: Patch) -> None:
    real = mixing.mixture

    def by_tokens(trees, sizes=None):
        sizes = [t.n_sequences for t in trees] if sizes is None else sizes
        return real(trees, [s * t.mean_length for t, s in zip(trees, sizes)])

    patch(perturbation, "mixture", by_tokens)


@planted_fault("mixture_lemma", "perturbation ignored", "the joint model leaves D_t out (p_l = p_0 for every l)")
def _no_perturbation(patch: Patch) -> None:
    patch(perturbation.PerturbationModel, "model", lambda self, l: self.base_model)


@planted_fault("general_perturbation_formula", "prefactor |D_a|/N", "the prefactor |D_a|/N instead of "
               "|D_a|/(N + l|D_a|)")
def _prefactor_without_l(patch: Patch) -> None:
    _wrong_derivative(patch, lambda m, r, N, a, l: r.dcross_entropy_dl_bits * (N + l * a) / N)


# ------------------------------------------------------------------------------------------- §2.2 closed forms
def _both(patch: Patch, name: str, value) -> None:
    """Replace ``name`` where users call it (``elasticity``) and where the closed forms call it (``closed_forms``)."""
    for module in (elasticity, closed_forms):
        patch(module, name, value)


@planted_fault("closed_form_ratio", "(1 - w3) dropped", "R = (w3 k + l)/(w3 - l): the (1 - w3) of the denominator "
               "dropped")
def _ratio_without_one_minus_w3(patch: Patch) -> None:
    patch(elasticity, "ratio_R", lambda k, l, w3: (w3 * k + l) / (w3 - l))


@planted_fault("theorem_signs", "ln 2 missing", "d gamma_a/dl in nats reported as bits (a wrong prefactor)")
def _nats_as_bits(patch: Patch) -> None:
    _both(patch, "dgamma_a_dl_per_response", lambda k, l: 1.0 / (1.0 + k + l))


@planted_fault("theorem_signs", "sign_valid always", "closed_form's sign_valid always True")
def _flip_sign_valid(patch: Patch) -> None:
    real = elasticity.closed_form
    patch(elasticity, "closed_form", lambda *a, **kw: dataclasses.replace(real(*a, **kw), sign_valid=True))


def abs_dgamma_p(patch: Patch) -> None:
    """The closed-form d gamma_p/dl forced negative (the theorem's sign everywhere)."""
    real = elasticity.dgamma_p_dl_per_response
    _both(patch, "dgamma_p_dl_per_response", lambda k, l, w3: -abs(real(k, l, w3)))


def no_warning(patch: Patch) -> None:
    """No SignClaimWarning beyond l*."""
    patch(closed_forms, "_warn_beyond", lambda *a, **kw: None)


def tree_signs_always_theorem(patch: Patch) -> None:
    """The token trees' d gamma_p/dl forced negative and d gamma_a/dl positive (the theorem's signs)."""
    real = perturbation.PerturbationModel.rates

    def rates(self, data, l):
        r = real(self, data, l)
        sign = -1.0 if data is self.pretrain else 1.0 if data is self.align else None
        return r if sign is None else dataclasses.replace(r, dcross_entropy_dl_bits=sign * abs(r.dcross_entropy_dl_bits))

    patch(perturbation.PerturbationModel, "rates", rates)


_SIGN_FAULTS = (
    ("closed-form sign forced", "the closed-form d gamma_p/dl forced negative", abs_dgamma_p),
    ("no warning", "no SignClaimWarning at or beyond l*", no_warning),
    ("tree signs forced", "the token trees' derivatives forced to the theorem's signs", tree_signs_always_theorem),
)
for _name, _text, _plant in _SIGN_FAULTS:
    planted_fault("theorem_signs", _name, _text)(_plant)


@planted_fault("ratio_lower_bound", "R = k (1 - l)", "the exact R replaced by k (1 - l) (below k for every l > 0)")
def _ratio_below_k(patch: Patch) -> None:
    _both(patch, "ratio_R_exact", lambda k, l, w3: k * (1 - l))


@planted_fault("ratio_lower_bound", "float R without l", "the float64 R = w3 k/(w3 - (1 - w3) l) (the l of the "
               "numerator dropped)")
def _float_ratio_without_l(patch: Patch) -> None:
    patch(elasticity, "ratio_R", lambda k, l, w3: w3 * k / (w3 - (1 - w3) * l))


@planted_fault("ratio_upper_bound", "upper constant without its denominator", "the upper Theta constant as "
               "1 + lam/(w3 k), its 1/(1 - (1 - w3) lam/w3) dropped")
def _upper_without_denominator(patch: Patch) -> None:
    patch(elasticity, "theta_upper_exact", lambda k, w3, lam: 1 + lam / (w3 * k))


@planted_fault("ratio_limit", "denominator w3", "the exact R with denominator w3 (the (1 - w3) l term dropped)")
def _limit_denominator(patch: Patch) -> None:
    patch(elasticity, "ratio_R_exact", lambda k, l, w3: (w3 * k + l) / w3)


# ------------------------------------------------------------------------------------------------------ Hooke
def _hooke_fields(transform):
    """A ``hooke_invariant`` whose residual (and relative residual) go through ``transform(h) -> residual in bits``."""
    real = elasticity.hooke_invariant

    def wrong(k, l, w3):
        h = real(k, l, w3)
        r = transform(h)
        return dataclasses.replace(h, residual=r, relative_residual=r / h.delta_gamma_a)

    return wrong


def _float_difference(h) -> float:
    x1, x2 = h.k * h.w3, 1.0 + h.k
    return (x2 * math.log1p(h.l / x2) - x1 * math.log1p(h.l / x1)) / LN2


_HOOKE_FAULTS = (
    ("residual 0", "the Hooke residual set to 0 (inside [0, bound])", lambda h: 0.0),
    ("residual halved", "the Hooke residual halved (the second-order term's factor wrong)", lambda h: h.residual / 2),
    ("residual as a float difference", "the residual x2 ln(1 + l/x2) - x1 ln(1 + l/x1) formed in float64",
     _float_difference),
)
for _name, _text, _transform in _HOOKE_FAULTS:
    planted_fault("hooke_first_order", _name, _text)(lambda patch, t=_transform: patch(elasticity, "hooke_invariant",
                                                                                          _hooke_fields(t)))


@planted_fault("hooke_first_order", "series of one term", "the residual's series stopped after its first term (u^2/2)")
def _one_term_series(patch: Patch) -> None:
    patch(hooke, "_hooke_series", lambda u, rho: 0.5)


@planted_fault("symbolic_derivation", "float64 difference for d gamma_p/dl", "d gamma_p/dl as the float64 difference "
               "1/(1+k+l) - w3/(k w3 + l) (cancels at large k)")
def _float_dgamma_p(patch: Patch) -> None:
    _both(patch, "dgamma_p_dl_per_response", lambda k, l, w3: (1 / (1 + k + l) - w3 / (k * w3 + l)) / LN2)
