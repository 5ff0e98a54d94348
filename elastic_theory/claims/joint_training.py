"""Claims about the joint optimum: the mixture lemma and the general perturbation formula (THEORY §1, §2.1)."""

from __future__ import annotations

import math

import numpy as np

from ..theory import elasticity, highprec, symbolic
from ..theory.divergence import model_leaf_probs
from ..theory.tolerances import roundings, sum_tolerance
from ..theory.tree import TokenTree
from .cases import random_setting
from .registry import Evidence, Worst, register


def _response_lists(rng: np.random.Generator, n: int, V: int) -> list[list[list[int]]]:
    """``n`` datasets as plain response lists (1..30 responses of 1..4 tokens, with repeats) from one pool."""
    lens = rng.integers(1, 5, size=int(rng.integers(1, 9)))
    pool = [rng.integers(0, V, size=m).tolist() for m in lens]
    return [[pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(1, 31)))] for _ in range(n)]


@register(
    "mixture_lemma",
    "Training to optimum on D_1 ∪ ... ∪ D_n gives p_D = sum_i |D_i| P_i / sum_i |D_i|, |D_i| in responses",
    "joint-training lemma (THEORY §1)",
    "holds",
)
def _mixture_lemma(rng: np.random.Generator) -> Evidence:
    """The library's joint model against the empirical distribution of the concatenated responses, and its optimality.

    For each draw, three response lists D_p, D_a, D_t; the union is ``TokenTree.from_sequences`` of
    their concatenation (each response once). ``PerturbationModel.from_trees(...).model(l)`` with l
    = |D_t|/|D_a| in each size unit must equal it leaf by leaf (the unit changes how l is
    expressed, never the model). Optimality among mixtures of the three: with P_i(x) on the
    union's leaves and q the library's model, the KKT condition of maximizing
    sum_x p(x) log sum_i pi_i P_i(x) over the simplex is g_i = sum_x p(x) P_i(x)/q(x) = 1 for every
    i with pi_i > 0; and 20 random perturbations of the weights must not raise the likelihood.
    A mixture weighted by tokens instead of responses fails all three.
    """
    worst, n, max_gain = Worst(), 0, -math.inf
    for _ in range(40):
        V = int(rng.integers(2, 6))
        lists = _response_lists(rng, 3, V)
        trees = [TokenTree.from_sequences(r, V) for r in lists]
        union = TokenTree.from_sequences([x for r in lists for x in r], V)
        lv = union.leaves
        P = np.stack([model_leaf_probs(data=union, model=t)[1] for t in trees])  # P_i on the union's leaves
        pi = np.array([len(r) for r in lists], dtype=np.float64) / sum(len(r) for r in lists)
        for unit in ("responses", "tokens"):
            model = elasticity.PerturbationModel.from_trees(*trees, size_unit=unit)
            size = "n_sequences" if unit == "responses" else "n_tokens"
            l = getattr(trees[2], size) / getattr(trees[1], size)
            q = model_leaf_probs(data=union, model=model.model(l))[1]
            n += 1
            case = lambda quantity, unit=unit, l=l: {"quantity": quantity, "size_unit": unit, "l": l,  # noqa: E731
                                                     "datasets": lists, "vocab_size": V}
            worst.record(float(np.abs(lv.prob - q).max()), sum_tolerance(lv.prob.size), lambda: case("max |p_union - p_model|"))
            kkt = np.abs((lv.prob * P / np.where(q > 0, q, 1.0)).sum(axis=1) - 1.0).max()
            worst.record(float(kkt), sum_tolerance(lv.prob.size, ulps_per_term=8), lambda: case("max |g_i - 1| (KKT)"))
            ll = float((lv.prob * np.log(np.where(q > 0, q, np.finfo(np.float64).tiny))).sum())
            alt = pi + rng.uniform(1e-3, 0.5, size=(20, 1)) * (rng.dirichlet(np.ones(3), size=20) - pi)
            gain = float(((lv.prob * np.log(alt @ P)).sum(axis=1) - ll).max())
            max_gain = max(max_gain, gain)
            worst.record(max(gain, 0.0), sum_tolerance(lv.prob.size, -ll), lambda: case("log-likelihood gain of a perturbed mixture"))
    return worst.evidence(
        f"library model = empirical union of the concatenated responses (both size units), KKT g_i = 1, "
        f"no gain from perturbed weights (max gain {max_gain:.1e} nats) over {n} cases",
        {"max_perturbation_gain_nats": max_gain}, cases=n,
    )


@register(
    "general_perturbation_formula",
    "d/dl CE(P_i, p_l) = |D_a|/(N + l|D_a|) * (1 - E_{P_i}[P_t/p_l]) for any supports",
    "THEORY §2.1",
    "holds",
)
def _general_formula(rng: np.random.Generator) -> Evidence:
    """sympy, then ``rates`` on random overlapping supports against ``mpmath.diff`` of the mpmath cross-entropy.

    Relative comparison: ``rates`` promises each derivative within PRECISION (1e-12) relative of the stored trees'
    exact value, plus 8 roundings of its final products (|D_a|/(N + l|D_a|), 1/ln 2); the reference differentiates
    the cross-entropy built in mpmath from the same stored masses at 40 + 2 log10(1 + k) digits (the derivative of
    D_p's rate is about 1/k^2 of the rate), far below that. An absolute bound in units of |D_a|/(N + l|D_a|) would
    let the float64 ``1 - E[P_t/p_l]`` (k eps relative) pass.
    """
    symbolic_zero = symbolic.general_formula_residual() == 0
    worst = Worst()
    worst.record(0.0 if symbolic_zero else math.inf, 0.0, {"sympy residual zero": bool(symbolic_zero)})
    for comps, w, k in [random_setting(rng, disjoint=False) for _ in range(30)]:
        model = elasticity.PerturbationModel.from_components(comps, w, k)
        l = float(rng.uniform(1e-3, 2.0))
        dps = 40 + 2 * math.ceil(math.log10(1.0 + k))
        for name, data in (("pretrain", model.pretrain), ("align", model.align), ("perturb", model.perturb)):
            got = model.rates(data, l).dcross_entropy_dl_bits
            ref = highprec.mp_dcross_entropy_dl(data=data, model=model, l=l, dps=dps)
            worst.record(abs(got - ref) / abs(ref) if ref else abs(got), elasticity.PRECISION + roundings(8) if ref else 0.0,
                         lambda: {"dataset": name, "l": l, "k": k, "w": w.tolist(), "rates": got, "mpmath": ref})
    return worst.evidence(
        f"sympy residual 0: {symbolic_zero}; rates vs mpmath.diff: relative error up to {worst.error:.1e} "
        f"({worst.ratio:.2g} x PRECISION + 8 eps) over {worst.cases - 1} rates (overlapping supports)",
        {"symbolic_residual_zero": bool(symbolic_zero)}, cases=worst.cases - 1,
    )
