r"""Resistance (paper §5.1, Table 1) and its entropy-matched control.

Checkpoints :math:`\theta_1 < \theta_2 < \theta_3` of one alignment run. *Forward* alignment
fine-tunes an earlier checkpoint :math:`\theta_i` on a later one's outputs :math:`q_j` (i < j);
*inverse* alignment fine-tunes :math:`\theta_j` on :math:`q_i`. The paper finds the inverse loss
lower in 27/27 comparisons and reads it as "models return to earlier states more easily".

**The confound (THEORY §4.4).** A loss on targets :math:`q` is
:math:`CE(q, p) = H(q) + KL(q \| p)`: lower-entropy targets alone give a lower loss. Two controls:

* *excess loss* :math:`CE - H(q)` per token, exact here because the targets' distributions are
  enumerated: what is left is the part the fine-tuned model has not learned;
* *entropy-matched targets*: the same fine-tuning on a target that has exactly the entropy of
  :math:`q_j` but carries no alignment, the pre-trained model's output distribution tempered,
  :math:`q^{(T)}(x) \propto p_0(x)^{1/T}`, with :math:`T` solved so that
  :math:`H(q^{(T)}) = H(q_j)` (:func:`entropy_matched`). If the real forward-inverse gap is no
  larger than the control's, target entropy explains it.

Entropies are of whole responses (bits per response) over a finite support.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["entropy_bits", "entropy_matched", "temper"]


def entropy_bits(probs) -> float:
    """Shannon entropy in bits of a probability vector (zeros contribute nothing)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    nz = p[p > 0]
    return float(max(-(nz * np.log2(nz)).sum(), 0.0))


def temper(probs, temperature: float) -> np.ndarray:
    r""":math:`q^{(T)} \propto p^{1/T}` on the support of ``p`` (computed in log space, so tiny masses do not underflow)."""
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    out = np.zeros_like(p)
    nz = p > 0
    z = np.log(p[nz]) / temperature
    z -= z.max()
    e = np.exp(z)
    out[nz] = e / e.sum()
    return out


def entropy_matched(probs, target_bits: float) -> tuple[np.ndarray, float]:
    r"""The tempered :math:`q^{(T)} \propto p^{1/T}` with :math:`H(q^{(T)})` = ``target_bits``, and :math:`T`.

    :math:`H(q^{(T)})` increases strictly in :math:`T` from :math:`\log_2(\#\arg\max p)` (T -> 0) to
    :math:`\log_2 |\mathrm{supp}\, p|` (T -> inf) unless ``p`` is uniform on its support, so the
    root is unique; it is found by bisection on :math:`\ln T` to float64 precision. Raises if
    the target lies outside that open range.
    """
    from scipy.optimize import brentq

    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if not (np.isfinite(p).all() and (p >= 0).all() and p.sum() > 0):
        raise ValueError("entropy_matched needs a non-negative, finite probability vector with positive mass")
    p = p / p.sum()
    support = int(np.count_nonzero(p))
    ties = int(np.count_nonzero(p >= p.max() * (1 - 1e-15)))
    low, high = math.log2(ties), math.log2(support)
    if not low < target_bits < high:
        raise ValueError(
            f"target entropy {target_bits:.6g} bits is outside what tempering this distribution reaches "
            f"({low:.6g}, {high:.6g}) bits; use a base distribution with a larger support"
        )
    def excess(s: float) -> float:
        return entropy_bits(temper(p, math.exp(s))) - target_bits

    # Bracket ln T: [-12, 12] unless the largest masses nearly tie (p proportional to (1, 1, 0.99999) still
    # has 1.35 bits at T = e^-12, above a 1.29-bit target, and 1.0001 bits only at e^-14); widen by doubling.
    lo_s, hi_s = -12.0, 12.0
    while excess(lo_s) > 0 and lo_s > -384:
        lo_s *= 2
    while excess(hi_s) < 0 and hi_s < 384:
        hi_s *= 2
    log_t = brentq(excess, lo_s, hi_s, xtol=1e-13)
    t = math.exp(log_t)
    return temper(p, t), t
