r"""A tiny autoregressive network in numpy: one tanh hidden layer, a softmax over the next token, exact gradients.

For a token sequence :math:`x = (x_1, \dots, x_n)` the model is

.. math:: p_\theta(x) = \prod_{t=1}^{n} \mathrm{softmax}\bigl(W_2 \tanh(W_1 f_t(x_{<t}) + b_1) + b_2\bigr)[x_t],

where :math:`f_t` is the one-hot encoding of the prefix (slot :math:`j < t` holds :math:`x_j`, later slots are
0; the position is the number of filled slots, so a separate position one-hot would only add directions in
which the function does not change). Every token is scored (the end token too, when the data has
one), so :math:`-\ln p_\theta(x)` is a sum of :math:`n` per-token terms.

A dataset is a weight vector :math:`P_i` over a fixed list of distinct sequences (its empirical distribution);
:func:`losses_and_grads` returns its cross-entropy :math:`CE_i(\theta) = \sum_x P_i(x)(-\ln p_\theta(x))` in nats
per response and the exact gradient :math:`g_i = \nabla_\theta CE_i` (backpropagation written out; the tests
check it against finite differences), for several weight vectors in one pass. :func:`fit` minimizes one such
loss with scipy's L-BFGS-B in float64 and reports the gradient norm it reached: the stationarity a first-order
statement about the optimum can rest on (:func:`elastic_theory.theory.first_order.ratio_tolerance`).

numpy and scipy only: this is the network the claims layer may run (no torch there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tolerances import EPS

__all__ = ["Optimum", "SequenceTable", "TinyNetwork", "encode", "fit", "gradient_rounding", "losses_and_grads"]


@dataclass(frozen=True)
class TinyNetwork:
    """Shape of the network: the data alphabet (``vocab_size``, end token included), the longest sequence, the hidden width."""

    vocab_size: int
    max_length: int
    hidden: int

    def __post_init__(self):
        for name in ("vocab_size", "max_length", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    @property
    def n_features(self) -> int:
        """One-hot prefix slots: ``(max_length - 1) * vocab_size`` (the position is the number of filled slots)."""
        return (self.max_length - 1) * self.vocab_size

    @property
    def n_params(self) -> int:
        """``W1`` (hidden x features), ``b1``, ``W2`` ((vocab - 1) x hidden), ``b2``, flattened in that order.

        The last token's logit is fixed at 0: adding the same vector to every row of a full ``W2`` (or the same
        number to every ``b2``) leaves the softmax unchanged, so a full output layer has ``hidden + 1`` directions
        of exactly zero curvature at every point; without them the optimum is an isolated point.
        """
        return self.hidden * self.n_features + self.hidden + (self.vocab_size - 1) * (self.hidden + 1)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(W1, b1, W2, b2)`` as views of the flat parameter vector ``theta``."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},), got {theta.shape}")
        H, F, V = self.hidden, self.n_features, self.vocab_size - 1
        cuts = np.cumsum([H * F, H, V * H])
        W1, b1, W2, b2 = np.split(theta, cuts)
        return W1.reshape(H, F), b1, W2.reshape(V, H), b2

    def init(self, rng: np.random.Generator, scale: float = 0.5) -> np.ndarray:
        """Parameters drawn iid normal with standard deviation ``scale``."""
        return scale * rng.standard_normal(self.n_params)


@dataclass(frozen=True)
class SequenceTable:
    """The rows of a list of sequences: one per scored token (features, target, allowed tokens, owning sequence)."""

    features: np.ndarray
    targets: np.ndarray
    allowed: np.ndarray
    owner: np.ndarray
    lengths: np.ndarray

    @property
    def n_sequences(self) -> int:
        """How many distinct sequences the rows come from."""
        return int(self.lengths.size)


def encode(net: TinyNetwork, sequences, min_length: int | None = None) -> SequenceTable:
    """The rows of ``sequences`` (token lists in ``0..vocab_size-1``, at most ``max_length`` tokens).

    Without ``min_length`` every token may follow every prefix. With it, the last token of the alphabet is an end
    token that closes every sequence: it cannot follow fewer than ``min_length`` tokens (its logit is -inf there)
    and it must follow ``max_length - 1`` tokens, where the row is certain (probability 1 in every model of this
    shape, so it is not scored; the end token still counts in ``lengths``). Without these two rules the optimum
    would put probability 0 or 1 on the end token: an infimum at infinite logits, never a stationary point.
    """
    V, L = net.vocab_size, net.max_length
    end = V - 1 if min_length is not None else None
    feats, targets, allowed, owner, lengths = [], [], [], [], []
    for s, seq in enumerate(sequences):
        seq = [int(t) for t in seq]
        if not 1 <= len(seq) <= L or any(not 0 <= t < V for t in seq):
            raise ValueError(f"sequence {s} must have 1..{L} tokens in 0..{V - 1}, got {seq}")
        if end is not None and (seq[-1] != end or end in seq[:-1] or len(seq) - 1 < min_length):
            raise ValueError(f"sequence {s} must end with the end token {end} once, after >= {min_length} tokens, got {seq}")
        lengths.append(len(seq))
        for t, token in enumerate(seq):
            ok = np.ones(V, dtype=bool)
            if end is not None and t < min_length:
                ok[end] = False
            if end is not None and t == L - 1:
                continue  # the end token is certain here
            f = np.zeros(net.n_features)
            f[[j * V + x for j, x in enumerate(seq[:t])]] = 1.0
            feats.append(f)
            targets.append(token)
            allowed.append(ok)
            owner.append(s)
    return SequenceTable(np.array(feats).reshape(-1, net.n_features), np.array(targets, dtype=np.int64),
                         np.array(allowed).reshape(-1, V), np.array(owner, dtype=np.int64), np.array(lengths, dtype=np.int64))


def losses_and_grads(net: TinyNetwork, table: SequenceTable, theta: np.ndarray, weights: np.ndarray,
                     absolute: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r"""``(losses, grads)`` for each row of ``weights`` (m x sequences): :math:`\sum_x w(x)(-\ln p_\theta(x))` and its gradient.

    Backpropagation: with :math:`h = \tanh(W_1 f + b_1)`, :math:`z = (W_2 h + b_2, 0)` (-inf at tokens the row does
    not allow) and :math:`e = \mathrm{softmax}(z) - \mathrm{onehot}(y)` without its last entry (the fixed logit), the
    row's term contributes :math:`w\,e\,h^\top` to :math:`\nabla W_2`, :math:`w\,e` to :math:`\nabla b_2`, and with
    :math:`d = (W_2^\top e)\odot(1 - h^2)`, :math:`w\,d f^\top` to :math:`\nabla W_1` and :math:`w\,d` to
    :math:`\nabla b_1`. ``absolute=True`` runs the same products on absolute values (of ``e``, ``W_2``, ``h`` and the
    weights): each component is then the sum of the magnitudes of the terms that make it, the scale of its
    rounding error (:func:`gradient_rounding`).
    """
    W1, b1, W2, b2 = net.unpack(theta)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != table.n_sequences:
        raise ValueError(f"weights must have one column per sequence ({table.n_sequences}), got shape {w.shape}")
    rows = w[:, table.owner]  # (m, R): each row's weight in each loss
    idx = np.arange(len(table.targets))
    h = np.tanh(table.features @ W1.T + b1)
    z = np.where(table.allowed, np.concatenate([h @ W2.T + b2, np.zeros((h.shape[0], 1))], axis=1), -np.inf)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    nll = -logp[idx, table.targets]
    e = np.exp(logp)
    e[idx, table.targets] -= 1.0
    dtanh = 1.0 - h**2
    if absolute:
        e, W2, h, rows = np.abs(e), np.abs(W2), np.abs(h), np.abs(rows)
    we = rows[:, :, None] * e[None, :, :-1]  # (m, R, V - 1): the fixed last logit has no parameters
    d = (we @ W2) * dtanh[None]  # (m, R, H)
    m = w.shape[0]
    grads = np.concatenate([np.einsum("mrh,rf->mhf", d, table.features).reshape(m, -1), d.sum(axis=1),
                            np.einsum("mrv,rh->mvh", we, h).reshape(m, -1), we.sum(axis=1)], axis=1)
    return rows @ nll, grads


def gradient_rounding(net: TinyNetwork, table: SequenceTable, theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r"""Componentwise bound on the float64 rounding error of :func:`losses_and_grads`' gradients (one row per weight vector).

    Each gradient component is a sum over the :math:`R` rows of products of a weight, a softmax residual, a
    hidden activation (or a sum over the vocabulary of :math:`W_2^\top e`, times :math:`1-h^2`, times a feature);
    recursive summation and the products add at most :math:`(R + V + 16)\varepsilon` relative to the sum of the
    terms' magnitudes (Higham's :math:`\gamma_n`; the 16 covers the softmax, tanh and the products each term
    goes through), which ``absolute=True`` computes.
    """
    _, mags = losses_and_grads(net, table, theta, weights, absolute=True)
    return (len(table.targets) + net.vocab_size + 16) * EPS * mags


@dataclass(frozen=True)
class Optimum:
    """What :func:`fit` reached: the parameters, the loss there, its gradient norm (Euclidean), the work done.

    ``lbfgs_grad_norm`` is the gradient norm where L-BFGS-B stopped, before the Newton steps.
    """

    theta: np.ndarray
    loss: float
    grad_norm: float
    lbfgs_iterations: int
    lbfgs_grad_norm: float
    newton_steps: int


def fit(net: TinyNetwork, table: SequenceTable, weights: np.ndarray, theta0: np.ndarray, gtol: float = 1e-8,
        max_iterations: int = 5000, newton_steps: int = 8) -> Optimum:
    r"""Minimize :math:`L(\theta) = \sum_x w(x)(-\ln p_\theta(x))` from ``theta0``: L-BFGS-B, then Newton steps (float64).

    L-BFGS-B (scipy) runs until its largest gradient component is below ``gtol`` (or ``max_iterations``); it
    converges only linearly near the optimum, so Newton steps finish: the Hessian by central differences of the
    exact gradient (step :math:`10^{-5}`: truncation :math:`O(10^{-10})`, rounding :math:`O(10^{-11})` relative, so
    each step still multiplies the gradient by about :math:`10^{-5}`), inverted on its eigenvalues above
    :math:`10^{-10}` of the largest (directions of no curvature are left alone). A step is kept only when it lowers
    the gradient norm, so the loop stops where float64 stops helping. ``grad_norm`` is recomputed at the returned
    parameters: the stationarity actually reached.
    """
    from scipy.optimize import minimize

    w = np.asarray(weights, dtype=np.float64).reshape(1, -1)

    def fun(theta):
        loss, grad = losses_and_grads(net, table, theta, w)
        return float(loss[0]), grad[0]

    res = minimize(fun, np.asarray(theta0, dtype=np.float64), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iterations), "gtol": float(gtol), "ftol": 0.0, "maxcor": 30})
    theta, (loss, grad), steps = res.x, fun(res.x), 0
    lbfgs_norm = float(np.linalg.norm(grad))
    for _ in range(int(newton_steps)):
        H = _hessian(lambda t: fun(t)[1], theta)
        vals, vecs = np.linalg.eigh(H)
        keep = vals > 1e-10 * vals.max()
        new = theta - vecs[:, keep] @ ((vecs[:, keep].T @ grad) / vals[keep])
        new_loss, new_grad = fun(new)
        if not np.linalg.norm(new_grad) < np.linalg.norm(grad):
            break
        theta, loss, grad, steps = new, new_loss, new_grad, steps + 1
    return Optimum(theta, loss, float(np.linalg.norm(grad)), int(res.nit), lbfgs_norm, steps)


def _hessian(grad, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of ``grad`` along each coordinate, symmetrized."""
    cols = [(grad(theta + h * e) - grad(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    H = np.array(cols).T
    return (H + H.T) / 2
