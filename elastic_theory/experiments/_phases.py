r"""The phase analysis of the rebound experiments (synthetic and real-model), its results entry and its table.

Every curve of a run (an alignment amount x a score, the seeds' points pooled, the seed as the resampling group) goes
through :func:`~elastic_theory.stats.phase_claim.order_on_grids` (fits in :math:`\ln(1 + n)`, :math:`n = 0`
included; 1-3 phases chosen by BIC with their bootstrap stability; the full grid and every other amount; the order
test), one Benjamini-Hochberg family over every curve and grid of the run
(:func:`~elastic_theory.stats.phase_claim.claim_orders`), and the claim rule's size and power simulated on the
run's design with each curve's own noise (:func:`~elastic_theory.stats.phase_claim.calibrate_claims`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..stats.phase_claim import calibrate_claims, claim_orders, every_other, max_phases, order_on_grids

__all__ = ["analyse_phases", "fitted", "phase_table"]


def analyse_phases(curves: dict[tuple[str, str], tuple[list, list, list]], amounts, *, seeds: int,
                   q: float, n_resamples: int, calibration_curves: int, rng: np.random.Generator) -> dict:
    """The ``phases`` entry of a run's results: ``curves[(n_plus, score)] = (amounts, values, seed of each point)``
    on the design ``amounts`` (distinct, 0 included) x ``seeds``. A design too small for a line on both grids, or
    with fewer than 2 seeds, gives an entry with ``by_align`` empty and the reason in ``skipped``."""
    amounts = sorted(set(int(a) for a in amounts))
    summary = {"q": q, "n_resamples": n_resamples, "calibration_curves": calibration_curves,
               "grids": {"full": amounts, "every_other": [int(v) for v in every_other(amounts)]}}
    sub = len(summary["grids"]["every_other"])
    if seeds < 2 or max_phases(sub, sub * seeds) < 1:
        return {**summary, "family": 0, "by_align": {}, "claims": {},
                "skipped": f"{seeds} seed(s) on {len(amounts)} amounts: the phase analysis needs >= 2 seeds and a "
                           "line on every other amount"}
    orders = {key: order_on_grids(x, y, groups=g, n_resamples=n_resamples, rng=rng) for key, (x, y, g) in curves.items()}
    claims, family = claim_orders(list(orders.values()), q)
    out: dict[str, dict] = {}
    for (a, score), c, verdict in zip(orders, orders.values(), claims):
        cal = calibrate_claims(amounts, seeds=seeds, sigma=c.noise_sd, offset_sd=c.offset_sd, drop=c.line_drop, q=q,
                               family=family, n_curves=calibration_curves, n_resamples=n_resamples, rng=rng)
        out.setdefault(a, {})[score] = {**{name: g.as_dict() for name, g in c.grids.items()}, **verdict,
                                        "steepest_drop": c.steepest.as_dict(), "line_drop_per_efold": c.line_drop,
                                        "noise_sd": c.noise_sd, "offset_sd": c.offset_sd, "calibration": cal.as_dict()}
    return {**summary, "family": family, "by_align": out, "claims": dict(Counter(v["claim"] for v in claims))}


def fitted(entry: dict, amounts: np.ndarray) -> np.ndarray:
    """The full grid's chosen fit of a curve's entry at ``amounts``: continuous, slopes per e-fold of 1 + n, knots
    in ln(1 + n)."""
    sel = entry["full"]["selection"]
    fit = sel["fits"][sel["phases"] - 1]
    t, b = np.log1p(amounts), fit["slopes"]
    return fit["intercept"] + b[0] * t + sum((b[j + 1] - b[j]) * np.maximum(t - k, 0.0)
                                             for j, k in enumerate(fit["knots"]))


def _grid(f: dict, name: str) -> str:
    s, p = f[name]["selection"], f["p_adjusted"][name]
    return f"{s['phases']} [{s['stability']:.2f}] {s['pattern']}" + ("" if p is None else f", p {p:.3g}")


def _calibration(cal: dict) -> str:
    """Size, and power at q/m - at q (BH lies between), of the claim rule on this curve's design and noise."""
    power = "undefined" if cal["power_low"] is None else f"{cal['power_low']:.2f} - {cal['power_high']:.2f}"
    return f"{cal['size']:.2f} [{cal['size_ci'][0]:.2f}, {cal['size_ci'][1]:.2f}] | {power}"


def phase_table(ph: dict, amount: str = "n") -> list[str]:
    """Markdown lines: what the phase analysis did, and per curve both grids' choice, the full grid's drops and
    knots, the claim, the bias-corrected steepest drop, the noise and the claim rule's size and power."""
    head = (f"phases in ln(1 + {amount}), seeds pooled: full grid {amount} = {ph['grids']['full']}, every other "
            f"{ph['grids']['every_other']}")
    if ph.get("skipped"):
        return [f"{head}: not analysed ({ph['skipped']})"]
    lines = [f"{head}; phases chosen by BIC (bootstrap stability in brackets), the chosen fit's order, "
             f"Benjamini-Hochberg p over the {ph['family']} tests of the run ({ph['n_resamples']} resamples each); "
             f"an order is claimed when both grids name it at q = {ph['q']}. Calibration of that rule by simulation on "
             f"this design ({ph['calibration_curves']} curves each) with the curve's point noise and seed offsets: "
             "size = claims on straight lines at q (95% Wilson interval); power = claims of a fast-then-slow curve "
             "(drops 1.5d then 0.5d, knot mid-grid, d the curve's overall drop) at q/m - at q (BH lies between)", "",
             f"| n+ | score | full grid | every other | drops per e-fold (full) | knots {amount} | claim | "
             "steepest drop, bias-corrected (raw) | noise sd (seed offsets) | size | power |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for a, by_score in ph["by_align"].items():
        for score, f in by_score.items():
            sel, s = f["full"]["selection"], f["steepest_drop"]
            best = sel["fits"][sel["phases"] - 1]
            drops = ", ".join(f"{d:.3g}" for d in best["drops"])
            knots = ", ".join(f"{k:.0f}" for k in best["knot_amounts"]) or "-"
            lines.append(f"| {a} | {score} | {_grid(f, 'full')} | {_grid(f, 'every_other')} | {drops} | {knots} | "
                         f"{f['claim']} | {s['corrected']:.3g} ({s['estimate']:.3g}) | "
                         f"{f['noise_sd']:.3g} ({f['offset_sd']:.3g}) | {_calibration(f['calibration'])} |")
    return lines
