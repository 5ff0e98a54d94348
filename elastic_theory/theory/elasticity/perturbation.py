r"""The §2.1 perturbation model on token trees: the joint-training mixture :math:`p_l` and the exact derivative of
every dataset's cross-entropy and rate in l, for any supports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from ..divergence import check_support, model_leaf_mass
from ..mixing import mixture
from ..tolerances import probability_sum_tolerance
from ..tree import LeafDistribution, TokenTree
from ..units import LN2
from .closed_forms import check_k, check_l
from .precision import _FLOAT, _accurate_sum, _Backend


SizeUnit = Literal["responses", "tokens"]


@dataclass(frozen=True)
class LeafMasses:
    r"""Everything :math:`p_l` needs at the leaves of one dataset, as stored in the trees (no rounding yet).

    ``data``: the dataset's own leaf masses; ``pretrain``, ``align``, ``perturb``: each tree's mass of those leaves
    (:func:`~elastic_theory.theory.divergence.model_leaf_mass`); ``all_leaves``: every leaf mass of the data tree and of the three
    trees, in that order, whose sums :math:`T` normalize them: :math:`P_i = \text{data}/T_i` and
    :math:`P = (|D_p|\,\text{pretrain}/T_p + |D_a|\,\text{align}/T_a)/N`. (The sums are formed in the arithmetic of
    the evaluation: a total rounded to float64 is an error of eps in :math:`E[P_t/p_l]`, k eps relative in its
    complement.)
    """

    leaves: LeafDistribution
    data: np.ndarray
    pretrain: np.ndarray
    align: np.ndarray
    perturb: np.ndarray
    all_leaves: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _leaf_mass_array(tree: TokenTree) -> np.ndarray:
    mass = np.concatenate([tree.eos_weight, tree.cut_weight])
    return mass[mass > 0]


@dataclass(frozen=True)
class DatasetRates:
    r"""Rates of one dataset under :math:`p_l` and their exact l-derivatives (§2.1).

    ``cross_entropy_bits``: :math:`CE(P_i, p_l)` bits per response; ``dcross_entropy_dl_bits`` its
    derivative per unit of ``l`` (in the model's ``size_unit``); ``gamma_bits_per_token`` = CE / E|x| and its derivative; ``kl_bits``:
    :math:`KL(P_i \| p_l)` bits per response (the default normalized rate times E|x|);
    ``shared_mass`` = :math:`E_{P_i}[P_t/p_l]` (the derivative's sign is that of 1 - shared_mass).
    """

    l: float
    cross_entropy_bits: float
    dcross_entropy_dl_bits: float
    mean_length: float
    kl_bits: float
    shared_mass: float

    def _per_token(self, value: float) -> float:
        if not self.mean_length > 0:
            raise ValueError("the dataset has only empty responses (mean length 0): a per-token rate is undefined")
        return value / self.mean_length

    @property
    def gamma_bits_per_token(self) -> float:
        r""":math:`\gamma = CE/E|x|` bits per token (raises for a dataset of empty responses)."""
        return self._per_token(self.cross_entropy_bits)

    @property
    def dgamma_dl_bits_per_token(self) -> float:
        r""":math:`d\gamma/dl` bits per token per unit l (raises for a dataset of empty responses)."""
        return self._per_token(self.dcross_entropy_dl_bits)


@dataclass(frozen=True)
class PerturbationModel:
    r"""The joint optimum on :math:`D_p \cup D_a \cup D_t` as a function of :math:`l = |D_t|/|D_a|`.

    Build it with :meth:`from_trees`. ``size_pretrain`` = |D_p| and ``size_align`` = |D_a| are
    response counts: they weight the mixture, which is the maximum-likelihood model of all
    responses together however |D| is measured. The perturbation set's own size never enters
    (|D_t| = l |D_a| by definition). The trees may have any supports; they are the finite datasets
    an experiment trains on.

    ``size_unit`` only says how k and l are expressed. ``"responses"`` (default):
    :math:`k = |D_p|/|D_a|`, :math:`l = |D_t|/|D_a|` in responses. ``"tokens"``: both in tokens,
    :math:`k = |D_p|_{tok}/|D_a|_{tok}` and :math:`|D_t|_{tok} = l\,|D_a|_{tok}`, i.e.
    :math:`|D_t| = l\,|D_a|_{tok}/E_t|x|` responses: every method taking ``l`` reads it so, and
    derivatives are per unit of that l (:attr:`l_scale` converts). The model itself is the same.
    """

    pretrain: TokenTree
    align: TokenTree
    perturb: TokenTree
    size_pretrain: float
    size_align: float
    size_unit: SizeUnit = "responses"

    @classmethod
    def from_trees(
        cls,
        pretrain: TokenTree,
        align: TokenTree,
        perturb: TokenTree,
        size_unit: SizeUnit = "responses",
        sizes: tuple[float, float] | None = None,
    ) -> PerturbationModel:
        """The model with |D_p|, |D_a| in responses read from the trees (``n_sequences``) or given as ``sizes``.

        ``size_unit`` (how k and l are expressed, see the class docstring) does not change the model;
        ``"tokens"`` needs D_p, D_a and D_t to have tokens (mean length > 0).
        """
        if size_unit not in ("responses", "tokens"):
            raise ValueError(f"size_unit must be 'responses' or 'tokens', got {size_unit!r}")
        if sizes is None:
            sizes = (pretrain.n_sequences, align.n_sequences)
        s_p, s_a = (float(s) for s in sizes)
        for name, s in (("|D_p|", s_p), ("|D_a|", s_a)):
            if not (s > 0 and math.isfinite(s)):
                raise ValueError(f"{name} must be finite and > 0 responses, got {s!r}")
        V = {t.vocab_size for t in (pretrain, align, perturb)}
        if len(V) != 1:
            raise ValueError(f"the three datasets must share one alphabet, got vocab sizes {sorted(V)}")
        if size_unit == "tokens":
            for name, t in (("D_p", pretrain), ("D_a", align), ("D_t", perturb)):
                if not t.mean_length > 0:
                    raise ValueError(f"size_unit='tokens' needs tokens in every dataset, but {name} has only empty "
                                     "responses; use size_unit='responses'")
        return cls(pretrain, align, perturb, s_p, s_a, size_unit)

    @classmethod
    def from_components(
        cls, components: tuple[TokenTree, TokenTree, TokenTree], w: tuple[float, float, float], k: float
    ) -> PerturbationModel:
        r"""The theorem's setting: :math:`D_p = w_1 P_1 + w_2 P_2 + w_3 P_3`, :math:`D_a = P_2`, :math:`D_t = P_3`.

        Sizes :math:`|D_p| = k`, :math:`|D_a| = 1` (only ratios matter). Components with zero
        weight are left out of :math:`D_p`; the supports may overlap (then §2.2 does not apply).
        """
        k = float(check_k(k))
        w_arr = np.asarray(w, dtype=np.float64)
        if w_arr.shape != (3,) or (w_arr < 0).any() or abs(w_arr.sum() - 1.0) > probability_sum_tolerance(3):
            raise ValueError(f"w must be three non-negative weights summing to 1, got {w!r}")
        keep = [j for j in range(3) if w_arr[j] > 0]
        pretrain = mixture([components[j] for j in keep], [k * w_arr[j] for j in keep])
        return cls.from_trees(pretrain, components[1], components[2], sizes=(k, 1.0))

    @property
    def k(self) -> float:
        """:math:`k = |D_p|/|D_a|` in ``size_unit`` (tokens: :math:`k_{responses} E_p|x| / E_a|x|`)."""
        if self.size_unit == "tokens":
            return self.size_pretrain * self.pretrain.mean_length / (self.size_align * self.align.mean_length)
        return self.k_responses

    @property
    def k_responses(self) -> float:
        """:math:`|D_p|/|D_a|` in responses: the ratio of the mixture weights."""
        return self.size_pretrain / self.size_align

    @property
    def l_scale(self) -> float:
        """:math:`dl_{responses}/dl`: 1, or :math:`E_a|x|/E_t|x|` when l is in tokens."""
        return self.align.mean_length / self.perturb.mean_length if self.size_unit == "tokens" else 1.0

    def l_responses(self, l: float) -> float:
        """:math:`|D_t|/|D_a|` in responses for ``l`` in ``size_unit``: the perturbation's weight in the mixture."""
        return float(check_l(l)) * self.l_scale

    @cached_property
    def base_model(self) -> TokenTree:
        """:math:`P = (|D_p| P_p + |D_a| P_a)/N`: the model before perturbation (l = 0)."""
        return mixture([self.pretrain, self.align], [self.size_pretrain, self.size_align])

    def model(self, l: float) -> TokenTree:
        """:math:`p_l` as a token tree (the mixture of the three datasets with |D_p|, |D_a|, l|D_a| responses)."""
        l = self.l_responses(l)
        if l == 0.0:
            return self.base_model
        return mixture([self.pretrain, self.align, self.perturb], [self.size_pretrain, self.size_align, l * self.size_align])

    def leaf_masses(self, data: TokenTree) -> LeafMasses:
        """The stored masses of ``data``'s leaves in ``data`` and in each of the three trees, with the trees' totals."""
        lv, m_p = model_leaf_mass(data=data, model=self.pretrain)
        _, m_a = model_leaf_mass(data=data, model=self.align)
        _, m_t = model_leaf_mass(data=data, model=self.perturb)
        own = np.where(lv.is_eos, data.eos_weight[lv.node], data.cut_weight[lv.node])
        every = tuple(_leaf_mass_array(t) for t in (data, self.pretrain, self.align, self.perturb))
        return LeafMasses(lv, own, m_p, m_a, m_t, every)

    def _probs(self, m: LeafMasses, B: _Backend) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(P_i, P, P_t)`` at the leaves in arithmetic ``B``."""
        T_d, T_p, T_a, T_t = (B.fsum(B.array(x)) for x in m.all_leaves)
        s_p, s_a = B.scalar(self.size_pretrain), B.scalar(self.size_align)
        P = (s_p * B.array(m.pretrain) / T_p + s_a * B.array(m.align) / T_a) / (s_p + s_a)
        return B.array(m.data) / T_d, P, B.array(m.perturb) / T_t

    def leaf_probs(self, data: TokenTree) -> tuple[LeafDistribution, np.ndarray, np.ndarray]:
        r"""``(leaves, P, P_t)``: ``data``'s leaves and their probabilities under the base model :math:`P` and :math:`P_t`.

        Everything :math:`p_l` needs for ``data``: :math:`p_l = (N P + l|D_a| P_t)/(N + l|D_a|)` leaf by leaf.
        """
        m = self.leaf_masses(data)
        _, P, Pt = self._probs(m, _FLOAT)
        return m.leaves, P, Pt

    def rates(self, data: TokenTree, l: float) -> DatasetRates:
        r"""CE, gamma, KL of ``data`` under :math:`p_l` and their exact derivatives by the §2.1 formula.

        The derivative :math:`\frac{|D_a|}{N + l|D_a|}(1 - E_{P_i}[P_t/p_l])` is summed leaf by leaf as
        :math:`\sum_x P_i(x)\,\frac{|D_a| N}{N + l|D_a|}\,\frac{P(x) - P_t(x)}{N P(x) + l|D_a| P_t(x)}` (no "1 minus a sum
        near 1"), to :data:`PRECISION` (1e-12) relative: in float64 while its condition number allows, else in mpmath
        from the trees' stored weights, with :math:`N = |D_p| + |D_a|` formed in that arithmetic too (a float64 N is
        an error of eps in :math:`N`, amplified near a zero of the derivative). The derivative is therefore within
        about 1e-12 relative of the exact value for the stored trees at every k and l, also where float64 would
        overflow (D_t's own rate at l = 1e-300: about -1/l). The KL :math:`\sum_x P_i \ln(P_i/p_l)` goes through the
        same control, so a tiny KL (KL(P_p || p_l) ~ 1/k^2) keeps its relative precision. The cross-entropy is a
        float64 sum of terms of one sign, :math:`\ln p_l` taken in the log domain where :math:`p_l` is below the
        normal float64 range. ``shared_mass`` is the float64 :math:`E_{P_i}[P_t/p_l]` (``inf`` beyond the float64
        range). Raises ``ValueError`` when :math:`p_l` gives probability 0 to a leaf of ``data`` (infinite rate),
        naming the leaf, and ``OverflowError`` when :math:`N + l|D_a|` is beyond the float64 range.
        """
        l_given, l = float(check_l(l)), self.l_responses(l)
        m = self.leaf_masses(data)
        Pd, P, Pt = self._probs(m, _FLOAT)
        N, a = self.size_pretrain + self.size_align, self.size_align
        if not math.isfinite(N + l * a):
            raise OverflowError(f"N + l|D_a| = {N:g} + {l:g} * {a:g} overflows float64")
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            den = N * P + l * a * Pt  # (N + l|D_a|) p_l, > 0 exactly where p_l > 0
            check_support(data, m.leaves, np.where(den > 0, 1.0, 0.0), "raise")
            shared = float((N + l * a) * (Pd * Pt / den).sum())
            log_pl = _log_mixture(N, l * a, P, Pt, den, l, a)

        def derivative(B: _Backend):
            Pd, P, Pt = self._probs(m, B)
            s_a = B.scalar(a)
            N_, la = B.scalar(self.size_pretrain) + s_a, B.scalar(l) * s_a
            den = N_ * P + la * Pt
            if B is _FLOAT and not (den >= _TINY).all():
                return math.nan, math.inf  # a subnormal denominator: float64 cannot promise the bound
            c = s_a * N_ / (N_ + la)
            return B.fsum(Pd * (P - Pt) * c / den), B.fsum(Pd * (P + Pt) * c / den)

        ce = float(0.0 - (Pd * log_pl).sum()) / LN2  # 0.0 - sum: never -0.0
        dce = _accurate_sum(derivative) / LN2 * self.l_scale
        kl = _accurate_sum(lambda B: _kl_terms(self, m, l, B)) / LN2
        return DatasetRates(l_given, ce, dce, data.mean_length, kl, shared)

    def ratio(self, l: float, per_token: bool = False) -> float:
        r""":math:`R = (dCE_a/dl)/(-dCE_p/dl)` at l (per response; ``per_token``: of the per-token rates)."""
        ra, rp = self.rates(self.align, l), self.rates(self.pretrain, l)
        num, den = (ra.dgamma_dl_bits_per_token, rp.dgamma_dl_bits_per_token) if per_token else (
            ra.dcross_entropy_dl_bits, rp.dcross_entropy_dl_bits)
        return derivative_ratio(num, den)

    def hooke_residual(self, l: float) -> float:
        r""":math:`(|D_a|\Delta CE_a + |D_p|\Delta CE_p)/(|D_a| |\Delta CE_a|)` from 0 to l > 0 (per response).

        With :math:`v = l|D_a|/N` and :math:`q = P_t/P` at each leaf, :math:`\Delta CE_i = E_{P_i}[\ln(1+v) - \ln(1+vq)]`
        exactly; the numerator's first-order parts cancel between the two datasets (it is second order in l),
        so both sums go through the same :data:`PRECISION` (1e-12 relative) control as :meth:`rates` instead of
        subtracting float cross-entropies (which gave 7.2e-4 for 4.5e-4 at k = 1e4 and 1.0 at k = 1e6).
        For :math:`v < 10^{-140}` (where :math:`v^2` leaves the float64 range) both sums are formed in mpmath only,
        scaled by :math:`2^{-2e}` and :math:`2^{-e}` (:math:`2^e` about l, exact), with at least
        :math:`30 + \log_{10}(1/v)` digits (the first-order parts cancel that many), so the ratio keeps its
        relative precision down to the smallest normal l. Raises ``ValueError`` when the ratio itself is below the
        normal float64 range (it could not be returned to full precision).
        """
        l = self.l_responses(l)
        if l == 0.0:
            raise ValueError("hooke_residual needs l > 0: at l = 0 both changes are 0 and their ratio is undefined")
        # (|D_p|/|D_a|, leaf masses) of the two datasets; the numerator is in units of |D_a|.
        parts = [(self.size_align, self.leaf_masses(self.align)), (self.size_pretrain, self.leaf_masses(self.pretrain))]
        v = l * self.size_align / (self.size_pretrain + self.size_align)
        e = 0 if v >= 1e-140 else math.frexp(l)[1]  # 2^e ~ l; e = 0 keeps the float64 path

        def change(B: _Backend, parts, power: int) -> tuple[object, object]:
            s_a = B.scalar(self.size_align)
            v = B.scalar(l) * s_a / (B.scalar(self.size_pretrain) + s_a)
            total, magnitude = B.scalar(0), B.scalar(0)
            for size, m in parts:
                Pd, P, Pt = self._probs(m, B)
                base, moved = B.scalar_log1p(v), B.log1p(v * Pt / P)
                total += B.scalar(size) / s_a * B.fsum(Pd * (base - moved))
                magnitude += B.scalar(size) / s_a * B.fsum(Pd * (base + moved))
            scale = B.scalar(2) ** (-power * e)  # exact: a power of two (1 on the float64 path)
            return total * scale, magnitude * scale

        digits = 30 + math.ceil(-math.log10(v)) if e else 0
        numerator = _accurate_sum(lambda B: change(B, parts, 2), use_float=e == 0, min_dps=digits)
        d_a = _accurate_sum(lambda B: change(B, parts[:1], 1), use_float=e == 0, min_dps=digits)
        ratio = math.ldexp(numerator / abs(d_a), e)
        if 0.0 < abs(ratio) < _TINY:
            raise ValueError(f"the Hooke residual at l = {l:g} is {ratio:.3g}, below the normal float64 range: "
                             "it cannot be returned to full precision")
        return ratio


_TINY = float(np.finfo(np.float64).tiny)


def _log_mixture(N: float, la: float, P: np.ndarray, Pt: np.ndarray, den: np.ndarray, l: float, a: float) -> np.ndarray:
    r""":math:`\ln p_l = \ln\frac{N P + l|D_a| P_t}{N + l|D_a|}`, in the log domain where :math:`p_l` is below the normal
    float64 range (there :math:`\ln p_l \approx -700`, so subtracting :math:`\ln(N + l|D_a|)` loses nothing)."""
    p_l = den / (N + la)
    out = np.log(p_l)
    small = ~(p_l >= _TINY)
    if small.any():
        log_la = math.log(l) + math.log(a) if l > 0 else -math.inf
        out[small] = np.logaddexp(math.log(N) + np.log(P[small]), log_la + np.log(Pt[small])) - math.log(N + la)
    return out


def _kl_terms(model: PerturbationModel, m: LeafMasses, l: float, B: _Backend) -> tuple[object, object]:
    r"""``(KL, magnitude)`` nats: :math:`\sum_x P_i \ln(P_i/p_l)` and :math:`\sum_x P_i(|\ln(P_i/p_l)| + 1)`.

    Each term's error is a few roundings of :math:`P_i` (the log of a ratio near 1 is off by the ratio's relative
    error, absolute), hence the ``+ 1`` of the magnitude: a KL far below 1 goes to mpmath, where the stored masses
    give :math:`P_i/p_l` exactly and the first-order parts of the terms cancel without loss.
    """
    Pd, P, Pt = model._probs(m, B)
    s_a = B.scalar(model.size_align)
    N, la = B.scalar(model.size_pretrain) + s_a, B.scalar(l) * s_a
    den = N * P + la * Pt
    if B is _FLOAT and not (den >= _TINY).all():
        return math.nan, math.inf
    if B is _FLOAT:
        with np.errstate(over="ignore"):  # an overflow (KL beyond ~709 nats per leaf) is redone in mpmath
            log_ratio = np.log(Pd * (N + la) / den)
    else:
        log_ratio = B.log1p(Pd * (N + la) / den - 1)
    return B.fsum(Pd * log_ratio), B.fsum(Pd * (abs(log_ratio) + 1))


def derivative_ratio(d_align: float, d_pretrain: float) -> float:
    r""":math:`R = (d\gamma_a/dl)/(-d\gamma_p/dl)` from the two derivatives (any common unit).

    ``inf`` (signed like ``d_align``) when only ``d_pretrain`` is 0, ``nan`` when both are 0 (e.g.
    datasets of empty responses only, whose rates do not move: R is undefined, not infinite).
    """
    if d_pretrain == 0.0:
        return math.nan if d_align == 0.0 else math.copysign(math.inf, d_align)
    return d_align / -d_pretrain
