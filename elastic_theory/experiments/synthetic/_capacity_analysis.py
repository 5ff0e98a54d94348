r"""The analysis of the capacity experiment, from per-seed numbers only (no torch): cells, verdicts, the table.

A cell is one (capacity, k, l > 0). Per seed (each seed has its own sampled datasets) the measured
changes :math:`\Delta\gamma_i = \gamma_i(l) - \gamma_i(0)` (exact sums over that seed's D_p, D_a, and
over fresh held-out samples of the same distributions) give :math:`\hat R = \Delta\gamma_a / -\Delta\gamma_p`,
compared with the tabular :math:`R_{pred}` of exactly that seed's data (the joint optimum of the sampled
union, THEORY §2.1). A cell *agrees* when every seed has the predicted signs and
:math:`|\hat R / R_{pred} - 1| \le` ``tolerance``; otherwise it is flagged. The same verdict is taken
against a deliberately wrong prediction (the tabular R of the same seed's data at another k): agreement
counts only where that control is flagged.
"""

from __future__ import annotations

import math

from .._stats import format_ci, mean_ci95, ratio_of_changes

__all__ = ["cell_summary", "summarize_table", "verdict"]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def verdict(deltas_align, deltas_pretrain, pred_align, pred_pretrain, tolerance: float) -> dict:
    r"""Per seed: signs as predicted, :math:`\hat R/R_{pred}`; and whether all seeds agree within ``tolerance``.

    Each argument is one value per seed (``pred_*``: the predicted changes of that seed's own data).
    Kills: an agreement claimed from the mean while a seed has the wrong sign (signs are per seed), and a
    ratio compared with another seed's prediction (the lists are zipped seed by seed).
    """
    signs = [_sign(a) == _sign(pa) and _sign(p) == _sign(pp)
             for a, p, pa, pp in zip(deltas_align, deltas_pretrain, pred_align, pred_pretrain)]
    ratios = [ratio_of_changes(a, p) / ratio_of_changes(pa, pp)
              for a, p, pa, pp in zip(deltas_align, deltas_pretrain, pred_align, pred_pretrain)]
    ok = bool(signs) and all(signs) and all(math.isfinite(r) and abs(r - 1.0) <= tolerance for r in ratios)
    return {"signs_as_predicted": signs, "R_over_R_pred": ratios, "agrees": ok}


def _deltas(by: dict, seeds, l: float, key: str) -> list[float]:
    return [by[(l, s)][key] - by[(0.0, s)][key] for s in seeds]


def cell_summary(rows: list[dict], tolerance: float) -> dict:
    """Summary of one cell from its rows (one per l in {0, l} and seed; keys as :func:`capacity.run` writes them)."""
    l = max(r["l"] for r in rows)
    by = {(r["l"], r["seed"]): r for r in rows}
    seeds = sorted(s for (ll, s) in by if ll == l and (0.0, s) in by)
    da, dp = _deltas(by, seeds, l, "gamma_align"), _deltas(by, seeds, l, "gamma_pretrain")
    pa, pp = _deltas(by, seeds, l, "gamma_align_optimum"), _deltas(by, seeds, l, "gamma_pretrain_optimum")
    wa, wp = _deltas(by, seeds, l, "gamma_align_optimum_wrong_k"), _deltas(by, seeds, l, "gamma_pretrain_optimum_wrong_k")
    ha, hp = _deltas(by, seeds, l, "gamma_align_heldout"), _deltas(by, seeds, l, "gamma_pretrain_heldout")
    train, control, heldout = (verdict(da, dp, pa, pp, tolerance), verdict(da, dp, wa, wp, tolerance),
                               verdict(ha, hp, pa, pp, tolerance))
    first = by[(l, seeds[0])] if seeds else rows[0]
    kl = [max(by[(l, s)]["kl_train_bits"], by[(0.0, s)]["kl_train_bits"]) for s in seeds]
    return {
        "capacity": first["capacity"], "n_parameters": first["n_parameters"], "k": first["k"], "l": l, "seeds": seeds,
        "n_seeds": len(seeds), "k_wrong": first["k_wrong"],
        "delta_gamma_align": da, "delta_gamma_pretrain": dp, "delta_gamma_align_predicted": pa,
        "delta_gamma_pretrain_predicted": pp, "R_measured": [ratio_of_changes(a, p) for a, p in zip(da, dp)],
        "R_predicted": [ratio_of_changes(a, p) for a, p in zip(pa, pp)],
        "R_predicted_wrong_k": [ratio_of_changes(a, p) for a, p in zip(wa, wp)],
        "signs_as_predicted": train["signs_as_predicted"], "R_over_R_pred": train["R_over_R_pred"],
        "R_over_R_pred_mean_ci95": mean_ci95(train["R_over_R_pred"]), "agrees": train["agrees"],
        "wrong_k_R_over_R_pred": control["R_over_R_pred"], "wrong_k_agrees": control["agrees"],
        "heldout_signs_as_predicted": heldout["signs_as_predicted"], "heldout_R_over_R_pred": heldout["R_over_R_pred"],
        "heldout_R_over_R_pred_mean_ci95": mean_ci95(heldout["R_over_R_pred"]), "heldout_agrees": heldout["agrees"],
        # the larger train-set KL of the two compared models (l and the paired l = 0 control), per seed
        "kl_train_bits": kl, "kl_heldout_bits": [by[(l, s)]["kl_heldout_bits"] for s in seeds],
        "kl_heldout_floor_bits": [by[(l, s)]["kl_heldout_floor_bits"] for s in seeds],
    }


def _mean(xs) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def _ratio_cell(mean_ci) -> str:
    mean, ci = mean_ci
    return f"{mean:.3g} {format_ci(ci, 3)}"


def summarize_table(results: dict) -> str:
    """The markdown table: one row per cell, with seed counts, per-seed signs and verdicts, and a warning under 3 seeds."""
    lines = [f"capacity: sampled datasets (n_align = {results['n_align']}), w3 = {results['w'][2]}, l* = {results['l_star']:.4g}; "
             f"a cell agrees when every seed has the predicted signs and |R_meas/R_pred - 1| <= {results['tolerance']:g}; "
             "the control compares the same measurements with R_pred of the same seed's data at a wrong k "
             "(95% t-intervals over seeds)", "",
             "| model (params) | k | l | seeds | signs as predicted (train) | R_meas/R_pred (train) | verdict | wrong-k control "
             "| train KL (bits, max) | held-out signs | R_meas/R_pred (held-out) | held-out KL (bits) | its floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    few = set()
    for c in results["summary"]:
        if c["n_seeds"] < 3:
            few.add(c["n_seeds"])
        signs = f"{sum(c['signs_as_predicted'])}/{c['n_seeds']}"
        hsigns = f"{sum(c['heldout_signs_as_predicted'])}/{c['n_seeds']}"
        control = f"k = {c['k_wrong']:g}: " + ("agrees (control failed)" if c["wrong_k_agrees"] else "flagged")
        lines.append(
            f"| {c['capacity']} ({c['n_parameters']:,}) | {c['k']:g} | {c['l']:g} | {c['n_seeds']} | {signs} | "
            f"{_ratio_cell(c['R_over_R_pred_mean_ci95'])} | {'agrees' if c['agrees'] else 'flagged'} | {control} | "
            f"{max(c['kl_train_bits'], default=math.nan):.3g} | {hsigns} | {_ratio_cell(c['heldout_R_over_R_pred_mean_ci95'])} | "
            f"{_mean(c['kl_heldout_bits']):.3g} | {_mean(c['kl_heldout_floor_bits']):.3g} |")
    if few:
        lines += ["", f"Warning: cells with {', '.join(map(str, sorted(few)))} seed(s): fewer than 3, so the intervals "
                      "(and n/a where there is none) rest on too few seeds to read as a spread."]
    lines += ["", "Held-out KL is KL(held-out sample || model) per response; its floor is KL(held-out sample || the true "
                  "world distribution), what a model that learned the world exactly would score."]
    return "\n".join(lines)
