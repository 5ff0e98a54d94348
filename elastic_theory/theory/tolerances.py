r"""Float64 and float32 error bounds, each derived once: claims, library and tests import them from here.

Every bound is a rounding-error model (Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed.): a computation of :math:`n` floating-point operations, each rounding with relative
error at most :math:`u = \varepsilon/2` (:math:`\varepsilon` = :data:`EPS` = 2^-52), has relative
error at most :math:`\gamma_n = n u/(1 - n u) \le n\varepsilon` while :math:`n u \le 1/2`; a
subtraction :math:`a - b` multiplies the relative error of its inputs by its condition number
:math:`\kappa = (|a| + |b|)/|a - b|`. The functions below only put these two facts together for the
computations this package does; each docstring names the computation and the count.

A bound is used as a *tolerance*: a result off by more than its bound is a defect of the code,
not rounding. Loosening one to make a check pass is not allowed; when a check fails, the bound
or the code is wrong, and either is a finding.

**Float32.** A language model's forward pass runs in float32 (:data:`EPS32` = 2^-23), and its
kernels are not bit-identical across processes, thread counts and memory layouts (oneDNN and MKL
pick kernels by both), so a float32 model output is compared with a bound on its distance from
exact arithmetic: :func:`sum_tolerance32` for a float32 sum, :class:`Float32Forward` for the
logits, per-token log-probabilities, their sums and margins, and the KL of a causal LM. Each bound
is for *one* evaluation against exact arithmetic; two float32 evaluations (another thread count,
batch layout, or a saved and reloaded copy) differ by at most twice the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EPS",
    "EPS32",
    "Float32Forward",
    "gamma32",
    "logit_scale",
    "sum_tolerance32",
    "closed_form_tolerance",
    "disjoint_derivative_tolerance",
    "entropy_tolerance",
    "perturbation_derivative_tolerance",
    "probability_sum_tolerance",
    "roundings",
    "sum_tolerance",
]

#: float64 machine epsilon, 2^-52 (twice the unit roundoff u).
EPS = float(np.finfo(np.float64).eps)


def roundings(n_ops: int, condition: float = 1.0) -> float:
    r"""Relative error bound :math:`n\varepsilon\max(1, \kappa)` of ``n_ops`` roundings, amplified by ``condition``.

    :math:`\gamma_n = n u/(1 - nu) \le n\varepsilon` (``n_ops`` counts every +, -, *, /, log and
    the rounding of each input; a count that is too small is a bug the tests will show). A
    subtraction with condition number :math:`\kappa` turns the relative error of its inputs into
    :math:`\kappa` times as much in its output, so ``condition`` multiplies the bound when > 1.
    """
    return float(n_ops) * max(1.0, float(condition)) * EPS


def sum_tolerance(n_terms: int, magnitude: float = 1.0, ulps_per_term: float = 4.0) -> float:
    r"""Absolute error bound of a float64 sum of ``n_terms`` non-negative terms, each a few roundings from exact.

    Recursive summation adds at most :math:`(n-1)u` relative to the sum (Higham eq. 4.4); each term
    carries ``ulps_per_term`` (default 4: a division to form a probability, a log, a product)
    roundings of its own; the 8 extra covers the handful of operations around the sum
    (normalization, a base change, a final product). Relative to ``max(1, |magnitude|)``, the size
    of the result, so a sum near 0 is judged in absolute terms:
    :math:`\text{ulps}\cdot(n + 8)\,\varepsilon \max(1, |\text{magnitude}|)`.

    Used for entropies, cross-entropies and Huffman expected lengths of ``n_terms`` leaves
    (:mod:`elastic_theory.claims`, :func:`elastic_theory.theory.coding.code_length_report`), and for
    normalized leaf probabilities (magnitude 1).
    """
    return float(ulps_per_term) * (max(int(n_terms), 0) + 8) * EPS * max(1.0, abs(float(magnitude)))


def probability_sum_tolerance(n_terms: int, dtype=np.float64) -> float:
    """Tolerance for ``|sum(p) - 1|`` of ``n_terms`` probabilities stored in ``dtype``.

    Recursive summation of n non-negative terms that add up to 1 has absolute error at most
    (n - 1) u, u = eps/2 the unit roundoff (Higham, *Accuracy and Stability*, eq. 4.4); each
    stored probability may itself carry a relative rounding error of u. So n * eps bounds both,
    with a floor of 8 eps for tiny n. For float32 softmax outputs over 50k tokens this is 6e-3;
    for float64 and 50k tokens 1.1e-11.
    """
    eps = float(np.finfo(dtype).eps)
    return max(8.0, float(n_terms)) * eps


def entropy_tolerance(n_terms: int) -> float:
    r"""Absolute error bound (bits) of a float64 sum of ``n_terms`` terms :math:`-p\log_2 p` with :math:`p \ge 2^{-63}`.

    Each term carries a few ulps relative error on :math:`|\log_2 p| \le 63` (p from a division of
    integer counts :math:`\le 2^{63}`), so each is off by at most 64 eps absolute and the sum by
    :math:`64\, n\, \varepsilon` bits (64 eps for n = 0 or 1). Looser than :func:`sum_tolerance`
    because it holds without knowing the entropy's size: for tests over arbitrary trees.
    """
    return 64.0 * max(int(n_terms), 1) * EPS


def perturbation_derivative_tolerance(n_leaves: int, shared: float, condition: float = 1.0) -> float:
    r"""Bound on the float64 error of the §2.1 derivative, in units of its scale :math:`|D_a|/((N + l|D_a|)\ln 2)`.

    The derivative is :math:`\text{scale}\cdot(1 - s)` with :math:`s = E_{P_i}[P_t/p_l]` a sum of
    ``n_leaves`` terms, each a few roundings from exact: absolute error
    :math:`\le (n + 8)\varepsilon s`; ``1 - s`` adds :math:`\varepsilon`; a factor 8 covers the leaf
    probabilities' own rounding (each a normalized sum of tree weights), so
    :math:`8 (n + 8)\varepsilon (1 + s)`. When a *ratio* of two such derivatives is compared
    (:math:`R`), the relative error of :math:`1 - s` is the absolute one times
    :math:`\kappa = s/|1 - s|`: pass it as ``condition``.
    """
    return 8.0 * (max(int(n_leaves), 0) + 8) * EPS * (1.0 + abs(float(shared))) * max(1.0, float(condition))


def closed_form_tolerance(k, l, w3, n_ops: int = 16) -> float:
    r"""Relative error bound of the float64 §2.2 closed forms (:math:`d\gamma/dl`, R) at ``(k, l, w3)``.

    Each closed form takes at most ``n_ops`` = 16 roundings of well-conditioned terms, so
    16 eps; the one subtraction :math:`w_3 - (1-w_3)l` amplifies the rounding of its inputs by its
    condition number :math:`\kappa = w_3/(w_3 - (1-w_3)l)` (large near :math:`l^*`). Exact
    arguments (``Fraction``) or floats; needs :math:`l < l^*` when :math:`w_3 > 0`.
    """
    kappa = float(w3 / (w3 - (1 - w3) * l)) if w3 > 0 else 1.0
    return roundings(n_ops, kappa)


def disjoint_derivative_tolerance(l, w3, precision: float, n_derivatives: int = 1) -> float:
    r"""Relative error bound of token-tree §2.1 derivatives against the §2.2 closed form (disjoint components).

    ``rates`` is within ``precision`` of the stored trees' exact derivative (plus a few roundings). The stored
    mixture is off the exact one by :math:`\le 4\varepsilon` in the weight of component 3 and in each of its leaves'
    shares (two roundings per stored leaf, two in normalizing); :math:`d\gamma_p/dl = -m/((1+k+l)(k w_3 + l))`,
    :math:`m = w_3 - (1-w_3) l`, moves by :math:`1 + w_3(1 + l)/|m|` relative per relative change of :math:`w_3` and
    by :math:`\le 2l/|m|` per one of a share (:math:`k \ge 1`): condition :math:`\kappa = 1 + (w_3 + 2l)/|m|`, not
    growing with k. For ``n_derivatives`` combined (R: 2): :math:`n(\text{precision} + 16\varepsilon\kappa) + \varepsilon`.
    """
    margin = abs(float(w3) - (1.0 - float(w3)) * float(l))
    return n_derivatives * (float(precision) + roundings(16, 1.0 + (float(w3) + 2.0 * float(l)) / margin)) + EPS


# ------------------------------------------------------------------------------------------- float32
#: float32 machine epsilon, 2^-23 (twice the unit roundoff u = 2^-24).
EPS32 = float(np.finfo(np.float32).eps)


def gamma32(n_ops: int) -> float:
    r"""Higham's :math:`\gamma_n = n u/(1 - n u)` for float32 (:math:`u = 2^{-24}`): relative error bound of ``n_ops`` roundings.

    The exact :math:`\gamma_n`, not the :math:`n\varepsilon` shortcut of the float64 functions: float32
    bounds are compared with wrong answers a few hundred eps32 away, where a factor 2 matters.
    Defined for :math:`n u < 1/2` (n < 2^23) only; beyond that no such bound exists (``ValueError``).
    """
    nu = max(int(n_ops), 0) * (EPS32 / 2)
    if nu >= 0.5:
        raise ValueError(f"gamma_n needs n u < 1/2; {n_ops} float32 roundings have no such bound")
    return nu / (1.0 - nu)


def sum_tolerance32(n_terms: int, abs_sum: float) -> float:
    r"""Absolute error bound :math:`\gamma_n \sum_i |x_i|` of a float32 sum of ``n_terms`` terms, in any order.

    Every order of summation (left to right, pairwise, blocked, vectorized lanes, split across
    threads) is a tree of n - 1 additions of height at most n - 1, so
    :math:`|\hat s - s| \le \gamma_{n-1} \sum_i |x_i|` (Higham eq. 4.4 and §4.2); rounding each term
    to float32 first adds :math:`u|x_i|`: :math:`\gamma_n \sum_i |x_i|` in all. ``abs_sum`` is
    :math:`\sum_i |x_i|` (for log-probabilities, all <= 0, minus their sum). Used for float32 sums of
    log-probabilities (lm-evaluation-harness sums each window's in float32) and of per-token losses.
    """
    return gamma32(max(int(n_terms), 1)) * abs(float(abs_sum))


def logit_scale(W_U, norm_weight, norm_bias=None) -> float:
    r"""A bound :math:`S` on every logit and on its dot product's :math:`\sum_i |W_{U,vi}\, y_i|`, from the weights alone.

    The logits are :math:`z = W_U y` (no LM-head bias, as in GPT-2 and LLaMA), :math:`y = \gamma
    \odot \hat x + \beta` the final norm's output of width d: LayerNorm
    :math:`\hat x = (x - \bar x)/\sqrt{\mathrm{var}(x) + \epsilon}` or RMSNorm
    :math:`\hat x = x/\sqrt{\mathrm{mean}(x^2) + \epsilon}`, either way :math:`\|\hat x\|_2 \le \sqrt d`.
    By Cauchy-Schwarz :math:`\sum_i |W_{U,vi} y_i| \le \|W_{U,v}\|_2 \|y\|_2`, so

    .. math:: S = \max_v \|W_{U,v}\|_2 \,\bigl(\|\gamma\|_\infty \sqrt d + \|\beta\|_2\bigr)

    bounds :math:`|z_v|` and the scale of the logit's rounding errors, for every input. ``W_U``:
    ``[V, d]``; ``norm_weight``: :math:`\gamma` ``[d]``; ``norm_bias``: :math:`\beta` ``[d]`` (None for RMSNorm).
    """
    W_U = np.asarray(W_U, dtype=np.float64)
    gamma = np.asarray(norm_weight, dtype=np.float64)
    beta = 0.0 if norm_bias is None else float(np.linalg.norm(np.asarray(norm_bias, dtype=np.float64)))
    if W_U.ndim != 2 or gamma.shape != (W_U.shape[1],):
        raise ValueError(f"W_U must be [V, d] and norm_weight [d]; got {W_U.shape} and {gamma.shape}")
    return float(np.linalg.norm(W_U, axis=1).max() * (np.abs(gamma).max() * math.sqrt(W_U.shape[1]) + beta))


def _weight(tensor) -> np.ndarray:
    """A model parameter (a torch tensor, possibly requiring grad) as a float64 array."""
    return np.asarray(tensor.detach().cpu().double())


@dataclass(frozen=True)
class Float32Forward:
    r"""Error bounds of one float32 forward pass of a pre-norm transformer LM (GPT-2, LLaMA) and of what follows from it.

    ``n_layer`` blocks (L) of width ``width`` (d) and MLP width ``ffn_width`` (f), attention over at most
    ``context`` (T) positions (the longest sequence scored), ``vocab`` (V) logits bounded by
    ``logit_scale`` (S, :func:`logit_scale`; the largest of the models compared); ``adapter_rank`` r > 0
    when LoRA adapters of rank r were merged into the weights (:math:`W + sBA` computed and rounded in
    float32). :meth:`of` reads all of them from models. All bounds are for one evaluation against exact
    arithmetic on the same weights; two float32 evaluations differ by at most twice as much.

    **Logits** (:meth:`logit_tolerance`). Count the roundings on the path from the embeddings to a
    logit, a dot product of length n charged :math:`\gamma_n` relative (Higham §3.1):

    * per block: two norms (a mean and a variance over d, a subtraction, square root, division, scale
      and shift: 2d + 6 each); the Q/K/V projection (d + 2: the dot, the bias, the weight's own
      rounding); the scores :math:`q \cdot k` (head width <= d, the scale, the rotary embedding: d + 5);
      the attention softmax over <= T keys (T + 4); the weighted sum of <= T values (T); the output
      projection (d + 2); a residual add (1); the MLP's up (and gate) projection (d + 2), its
      activation (4), its down projection (f + 2); a residual add (1). In all :math:`8d + f + 2T + 35`,
      plus :math:`4(r + 2)` with merged adapters (the product BA of depth r and the sum, on each of the
      four projections of the path);
    * after the blocks: the final norm (2d + 6) and the LM head's dot product (d + 1): :math:`3d + 7`.

    That is :meth:`roundings` :math:`R = L\,(8d + f + 2T + 35 + 4(r + 2)[r > 0]) + 3d + 7`. *Assumption,
    not theorem*: the relative errors of successive stages add, each carried to the final normalized
    state unamplified (every block's relative condition number at most 1; to first order the errors of
    a composition then add, Higham §3.3). The final state is then off by :math:`\gamma_R` relative to
    its norm bound, and each logit (by :func:`logit_scale`'s Cauchy-Schwarz step) by

    .. math:: \Delta = \gamma_R\, S.

    ``tests/theory/test_tolerances.py`` keeps the assumption honest: float32 against float64 forward passes of
    random, scaled-up and trained tiny GPT-2 and LLaMA models stay far inside it.

    **Log-softmax** (:meth:`log_softmax_tolerance`) of float32 logits, as computed: the maximum m, then
    :math:`t_v = z_v - m` (:math:`|t_v| \le 2S`, one rounding: :math:`u|t_v|`), :math:`e^{t_v}` (one ulp,
    2u, plus the input's :math:`u|t_v|`: relative :math:`2u + 2uS`), their sum s of V terms in any order
    (:math:`\gamma_{V-1}`; :math:`1 \le s \le V`), :math:`\ln s` (absolute: the relative error of s, plus
    :math:`u \ln V`), and :math:`\ell_v = t_v - \ln s` (:math:`u|\ell_v| \le u(2S + \ln V)`). Summed, and
    rounded up into one :math:`\gamma` to cover the second-order terms:

    .. math:: \delta_{\rm lsm} = \gamma_{\lceil V + 2 + 6S + 2\ln V \rceil}.

    **Log-probabilities** (:meth:`logprob_tolerance`). :math:`\ell_v = z_v - \mathrm{lse}(z)` has
    :math:`\sum_w |\partial \ell_v/\partial z_w| = 2(1 - p_v) \le 2`, so logits off by at most
    :math:`\Delta` move it by at most :math:`2\Delta`: :math:`\delta = 2\Delta + \delta_{\rm lsm}` nats per token.

    **Sums and margins** (:meth:`sum_tolerance`, :meth:`margin_tolerance`). A sum of n log-probabilities
    (a response's :math:`\ln p(y \mid x)`, a document's code length) is off by at most :math:`n\delta`,
    plus its float64 accumulation, :math:`\gamma^{(64)}_n \sum|\ell| \le n\varepsilon \cdot n(2S + \ln V)`
    (:math:`|\ell_v| \le 2S + \ln V`). A margin :math:`\ln p(y_a) - \ln p(y_u)` is a difference of two
    such sums: its error is *absolute*, the sum of both, whatever the cancellation in the margin itself.
    A pooled rate over documents (:meth:`rate_tolerance`) is a weighted mean of the documents' rates.

    **KL** (:meth:`kl_bits_tolerance`). The KL of the float32 rows :math:`\sum_v e^{\ell_v}(\ell_v -
    \ell^0_v)`, both models bounded by this object. Logit errors enter through the gradient:
    :math:`\nabla_z \mathrm{KL}(\mathrm{softmax}\, z \,\|\, q) = p \odot (r - \mathrm{KL})`,
    :math:`r = \ln p - \ln q`, of 1-norm :math:`\le E_p|r| + \mathrm{KL} \le 2\mathrm{KL} + 2\,\mathrm{TV}`
    (:math:`E_p\, r^- \le \sum_v (q_v - p_v)^+ = \mathrm{TV}` by :math:`\ln x \le x - 1`), and
    :math:`\nabla_{z^0}` of 1-norm 2 TV; with Pinsker's :math:`\mathrm{TV} \le \sqrt{\mathrm{KL}/2}` and the
    second-order remainder (second directional derivative :math:`\le \Delta^2(4 + 8S)`, as
    :math:`|r| \le 4S`): :math:`A = \Delta(2k + 2\sqrt{2k}) + \Delta^2(2 + 4S)`. The log-softmax's own
    roundings :math:`|\sigma_v| \le \delta_{\rm lsm}` give :math:`B = 2\delta_{\rm lsm} e^{\delta_{\rm lsm}} +
    (e^{\delta_{\rm lsm}} - 1)(k + \sqrt{2k})`; the float32 exp, subtraction and product and the float64 sum
    over V, :math:`C = (\gamma_4 + V\varepsilon)(1 + 2\delta_{\rm lsm})(k + \sqrt{2k} + 2\delta_{\rm lsm})`.
    The bound :math:`f(k) = A + B + C` (nats per token) is concave in k, so it holds for a mean over
    tokens at the mean KL (Jensen); it is evaluated at the largest k with :math:`k \le \hat k + f(k)`,
    :math:`\hat k` the measured KL, which bounds the exact one.
    """

    n_layer: int
    width: int
    ffn_width: int
    context: int
    vocab: int
    logit_scale: float
    adapter_rank: int = 0

    def __post_init__(self):
        for name in ("n_layer", "width", "ffn_width", "context", "vocab"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.adapter_rank, bool) or not isinstance(self.adapter_rank, int) or self.adapter_rank < 0:
            raise ValueError(f"adapter_rank must be an integer >= 0, got {self.adapter_rank!r}")
        if not (math.isfinite(self.logit_scale) and self.logit_scale >= 0):
            raise ValueError(f"logit_scale must be finite and >= 0, got {self.logit_scale!r}")

    @classmethod
    def of(cls, *models, context: int | None = None, adapter_rank: int = 0) -> Float32Forward:
        """The bounds for float32 GPT-2 or LLaMA ``models`` of one shape (a model and its base, or checkpoints).

        Shape from the first model's config; ``logit_scale`` the largest of the models' :func:`logit_scale`;
        ``context`` the longest sequence scored (default: the model's maximum length).
        """
        if not models:
            raise ValueError("no model given")
        shapes = set()
        scales = []
        for model in models:
            dtype = str(next(model.parameters()).dtype)
            if dtype != "torch.float32":
                raise ValueError(f"these bounds are for float32 forward passes; a model is {dtype}")
            cfg = model.config
            d = int(cfg.hidden_size)
            ffn = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
            shapes.add((int(cfg.num_hidden_layers), d, int(ffn), int(cfg.max_position_embeddings), int(cfg.vocab_size)))
            body = model.base_model
            norm = getattr(body, "ln_f", None) or getattr(body, "norm", None)
            if norm is None:
                raise ValueError(f"{type(model).__name__}: no final norm (ln_f or norm); only GPT-2 and LLaMA are known")
            bias = getattr(norm, "bias", None)
            scales.append(logit_scale(_weight(model.get_output_embeddings().weight), _weight(norm.weight),
                                      None if bias is None else _weight(bias)))
        if len(shapes) != 1:
            raise ValueError(f"the models differ in shape (layers, width, MLP width, positions, vocab): {sorted(shapes)}")
        [(n_layer, width, ffn, positions, vocab)] = shapes
        context = positions if context is None else int(context)
        return cls(n_layer, width, ffn, context, vocab, max(scales), adapter_rank)

    def roundings(self) -> int:
        """R, the count of roundings on the path to a logit (class docstring)."""
        d, f, T, r = self.width, self.ffn_width, self.context, self.adapter_rank
        per_block = 8 * d + f + 2 * T + 35 + (4 * (r + 2) if r > 0 else 0)
        return self.n_layer * per_block + 3 * d + 7

    def logit_tolerance(self) -> float:
        r""":math:`\Delta = \gamma_R S`: absolute error bound of each logit (class docstring)."""
        return gamma32(self.roundings()) * self.logit_scale

    def log_softmax_tolerance(self) -> float:
        r""":math:`\delta_{\rm lsm}`: absolute error (nats) that the float32 log-softmax adds to each entry."""
        return gamma32(math.ceil(self.vocab + 2 + 6 * self.logit_scale + 2 * math.log(self.vocab)))

    def logprob_tolerance(self) -> float:
        r""":math:`\delta = 2\Delta + \delta_{\rm lsm}`: absolute error bound (nats) of one log-probability."""
        return 2 * self.logit_tolerance() + self.log_softmax_tolerance()

    def sum_tolerance(self, n_tokens: int) -> float:
        r"""Absolute error bound (nats) of a float64 sum of ``n_tokens`` float32 log-probabilities.

        :math:`n\delta + n\varepsilon \cdot n (2S + \ln V)` (class docstring).
        """
        n = max(int(n_tokens), 1)
        return n * self.logprob_tolerance() + n * EPS * n * (2 * self.logit_scale + math.log(self.vocab))

    def margin_tolerance(self, n_tokens: int, unit: str = "response", n_pairs: int = 1) -> float:
        r"""Absolute error bound (nats) of a margin, aligned minus unaligned, of responses of <= ``n_tokens`` tokens.

        ``unit="response"``: :math:`\ln p(y_a) - \ln p(y_u)`, two sums: ``2 * sum_tolerance(n)``;
        ``unit="token"``: :math:`\ln p(y_a)/n_a - \ln p(y_u)/n_u`, each mean within ``sum_tolerance(n)/n``
        (increasing in n). A mean over ``n_pairs`` margins (each :math:`|m| \le 2n(2S + \ln V)` per
        response) adds its float64 rounding, :math:`n_{\rm pairs}\,\varepsilon \cdot 2n(2S + \ln V)`,
        per token divided by n like the rest.
        """
        if unit not in ("response", "token"):
            raise ValueError(f"unit must be 'response' or 'token', got {unit!r}")
        n = max(int(n_tokens), 1)
        mean = max(int(n_pairs), 1) * EPS * 2 * n * (2 * self.logit_scale + math.log(self.vocab))
        total = 2 * self.sum_tolerance(n) + mean
        return total if unit == "response" else total / n

    def rate_tolerance(self, n_tokens, denominators) -> float:
        r"""Absolute error bound (bits per unit) of a pooled rate, bits over tokens or bytes, and of its interval's ends.

        Document d's bits (``n_tokens[d]`` log-probabilities) are off by at most
        :math:`e_d = \text{sum\_tolerance}(n_d)/\ln 2`. A ratio of sums is a weighted mean of the documents'
        ratios (mediant inequality), so the rate, and every resampled rate of a percentile bootstrap, is off
        by at most :math:`\max_d e_d/b_d`; the interval's ends are order statistics of those (no
        interpolation), so they move by no more. ``denominators``: :math:`b_d`, tokens for bits per token,
        UTF-8 bytes for bits per byte. The float64 pooling (D documents: sums and a division) adds
        :math:`(D + 2)\varepsilon` times the largest ratio, :math:`\max_d n_d (2S + \ln V)/(b_d \ln 2)`.
        """
        n = np.asarray(n_tokens, dtype=np.int64)
        b = np.asarray(denominators, dtype=np.float64)
        if n.shape != b.shape or n.size == 0 or (b <= 0).any():
            raise ValueError("n_tokens and denominators must be non-empty, of one length, denominators > 0")
        per_doc = max(self.sum_tolerance(int(k)) / float(d) for k, d in zip(n, b)) / math.log(2)
        largest = float((n * (2 * self.logit_scale + math.log(self.vocab)) / b).max()) / math.log(2)
        return per_doc + (n.size + 2) * EPS * largest

    def kl_bits_tolerance(self, kl_bits: float) -> float:
        r"""Absolute error bound (bits per token) of a float32 KL to the base measured as ``kl_bits`` bits per token.

        :math:`f(k_{\max})/\ln 2` (class docstring), :math:`k_{\max}` the largest k with :math:`k \le \hat k + f(k)`.
        """
        k_hat = max(float(kl_bits), 0.0) * math.log(2)
        delta, lsm = self.logit_tolerance(), self.log_softmax_tolerance()
        c0 = (gamma32(4) + self.vocab * EPS) * (1 + 2 * lsm)
        grow = math.expm1(lsm)
        # f(k) = a + b k + c sqrt(k), the class docstring's A + B + C regrouped
        a = delta**2 * (2 + 4 * self.logit_scale) + 2 * lsm * (1 + grow) + 2 * lsm * c0
        b = 2 * delta + grow + c0
        c = math.sqrt(2) * (2 * delta + grow + c0)
        if b >= 1:
            raise ValueError("the logit error bound is too large for a KL bound (2 Delta >= 1)")
        root = (c + math.sqrt(c * c + 4 * (1 - b) * (k_hat + a))) / (2 * (1 - b))
        return (root * root - k_hat) / math.log(2)  # f(k_max) = k_max - k_hat at the fixed point
