r"""Hooke's law for datasets (THEORY §2.2): the finite changes from l = 0 and the spring invariant, evaluated without
cancellation (a series, or mpmath for small :math:`k(1-w_3)`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


from ..tolerances import EPS
from ..units import LN2
from .closed_forms import _sign_margin, check_k, check_l, check_w3, sign_threshold


@dataclass(frozen=True)
class HookeInvariant:
    r"""Finite changes from l = 0 to l (bits per response) and the spring invariant.

    ``residual`` = :math:`|D_a|\Delta\gamma_a + |D_p|\Delta\gamma_p` in units of |D_a| bits;
    ``relative_residual`` = residual / :math:`(|D_a|\Delta\gamma_a)`;
    ``first_order_bound`` = :math:`1 - k/R(l) = l(1 + k(1-w_3))/(k w_3 + l)` bounds it (§2.2).
    """

    k: float
    l: float
    w3: float
    delta_gamma_a: float
    delta_gamma_p: float
    residual: float
    relative_residual: float
    first_order_bound: float


def hooke_invariant(k: float, l: float, w3: float) -> HookeInvariant:
    r"""Hooke's law for datasets: :math:`|D_a|\Delta\gamma_a \approx -|D_p|\Delta\gamma_p` (disjoint supports).

    Exact finite changes (nats, then bits), :math:`x_1 = k w_3`, :math:`x_2 = 1 + k`:
    :math:`\Delta CE_a = \ln(1 + l/x_2)`, :math:`\Delta CE_p = \ln(1 + l/x_2) - w_3 \ln(1 + l/x_1)`, and
    the residual :math:`r = \Delta CE_a + k\,\Delta CE_p = x_2 \ln(1 + l/x_2) - x_1 \ln(1 + l/x_1) = g(x_1) - g(x_2)`
    with :math:`g(x) = x\,(u - \ln(1+u))`, :math:`u = l/x`. Since :math:`|D_a|\gamma_a' + |D_p|\gamma_p'
    = \gamma_a'(1 - k/R)` with :math:`1 - k/R \ge 0` increasing on :math:`[0, l^*)`, the relative
    residual lies in :math:`[0, 1 - k/R(l)]`: the invariant holds to first order in l.
    Needs :math:`w_3 > 0`, :math:`0 < l < l^*`.

    **Precision.** :math:`r` is second order in l while both terms of the difference are first
    order, so it is never formed as a difference: for :math:`u_1 = l/x_1 \le 1/4` (always the case
    when :math:`k(1-w_3) \ge 4`) by the series
    :math:`r = x_1 \frac{x_2 - x_1}{x_2} \sum_{n \ge 2} (-1)^n \frac{u_1^n}{n} \sum_{j<n-1} \rho^j`,
    :math:`\rho = x_1/x_2`, :math:`x_2 - x_1 = 1 + k(1-w_3)`, whose terms shrink at least threefold
    and alternate (relative error a few eps); otherwise (small :math:`k(1-w_3)`) in mpmath at
    :math:`30 + \log_{10}(1+k)` digits. :math:`\Delta CE_p = (r - \Delta CE_a)/k`. The relative residual is formed
    as :math:`(c/x_1)\,l\,V(u_1)\,(y/\ln(1+y))` (:math:`r = x_1 \frac{c}{x_2} u_1^2 V(u_1)`, :math:`c = x_2 - x_1`,
    :math:`y = l/x_2`), never through the residual, so it keeps its precision for every normal l (the residual,
    of order :math:`l^2`, and the changes underflow as float64 does below its range). Every field is
    within 32 eps relative of a 40-digit evaluation (:func:`elastic_theory.theory.highprec.reference_hooke`) for k
    from 1e-3 to 1e12 and l from 1e-9 l* to 0.999 l* (tests/theory/test_elasticity.py; measured worst 3 eps).
    """
    k, l, w3 = check_k(k), check_l(l), check_w3(w3)
    if w3 == 0.0 or l == 0.0 or _sign_margin(l, w3) <= 0:
        raise ValueError(f"the Hooke invariant needs w3 > 0 and 0 < l < l* = {sign_threshold(w3):g}; got w3={w3}, l={l}")
    k, l, w3 = float(k), float(l), float(w3)
    x1, x2 = k * w3, 1.0 + k
    u1 = l / x1 if x1 > 0 else math.inf
    if u1 <= 0.25:
        y = l / x2
        d_a = math.log1p(y)
        c, series = 1.0 + k * (1.0 - w3), _hooke_series(u1, x1 / x2)
        residual = (c / x2) * l * (u1 * series)
        # r/dCE_a = (c/x1) l V (y/ln(1+y)): no factor below the normal range for any normal l (the residual itself,
        # second order in l, is; so are the changes, for l/x2 below it).
        relative = (c / x1) * l * series * _over_log1p(y)
        d_p = (residual - d_a) / k
    else:
        d_a, d_p, residual, relative = _hooke_mp(k, l, w3)
    return HookeInvariant(
        k, l, w3, d_a / LN2, d_p / LN2, residual / LN2, relative, l * (1.0 + k * (1.0 - w3)) / (k * w3 + l)
    )


def _over_log1p(y: float) -> float:
    r""":math:`y/\ln(1+y)` for :math:`y \ge 0` to a few eps: :math:`1 + y/2` below :math:`10^{-8}` (the next term,
    :math:`y^2/12`, is below eps there), so a subnormal y costs nothing."""
    return 1.0 + y / 2 if y < 1e-8 else y / math.log1p(y)


def _hooke_series(u: float, rho: float) -> float:
    r""":math:`V(u) = \sum_{n \ge 2} (-1)^n \frac{u^{n-2}}{n} G_{n-1}(\rho)`, :math:`G_m = \sum_{j<m} \rho^j`, for :math:`0 < u \le 1/4`,
    :math:`0 \le \rho < 1`: the residual's series divided by :math:`u^2` (so nothing underflows for tiny u).

    Consecutive terms shrink by :math:`u\,\frac{n}{n+1}\frac{G_n}{G_{n-1}} \le 2u \le 1/2` and alternate, so the sum is
    at least 2/3 of its first term 1/2 and the loop stops once a term is below eps/4 of it.
    """
    total, power, geometric, n = 0.0, 1.0, 1.0, 1
    while True:
        n += 1
        term = power / n * geometric
        total += term if n % 2 == 0 else -term
        if term <= 0.25 * EPS * total:
            return total
        power *= u
        geometric = 1.0 + rho * geometric


def _hooke_mp(k: float, l: float, w3: float) -> tuple[float, float, float, float]:
    r"""``(dCE_a, dCE_p, residual, relative residual)`` (nats) by mpmath, for ``l > k w3 / 4`` (small ``k (1 - w3)``).

    The difference :math:`x_2 \ln(1 + l/x_2) - x_1 \ln(1 + l/x_1)` loses up to :math:`\log_{10}(x_1)` digits, so the
    working precision is 30 digits plus that; the inputs are the exact binary values of the floats.
    """
    import mpmath

    with mpmath.workdps(30 + max(0, math.ceil(math.log10(1.0 + k)))):
        K, L, W3 = mpmath.mpf(k), mpmath.mpf(l), mpmath.mpf(w3)
        x1, x2 = K * W3, 1 + K
        d_a = mpmath.log1p(L / x2)
        d_p = d_a - W3 * mpmath.log1p(L / x1)
        residual = x2 * d_a - x1 * mpmath.log1p(L / x1)
        return float(d_a), float(d_p), float(residual), float(residual / d_a)
