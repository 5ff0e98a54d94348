"""The analysis of ``sequential-ratio`` from its rows (means over seeds per k, arm and step; the log-log slope of
the ratio on k), its markdown tables and its plots. :mod:`~elastic_theory.experiments.synthetic.sequential_ratio`
describes what is measured."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...stats.seedstats import FEW_SEEDS, saved_number
from .._stats import SIGN_OUTCOMES, format_ci, mean_ci95, sign_outcome

__all__ = ["DIRECTIONS", "SIGN_OUTCOMES", "control_summary", "plot", "scaling_over_seed_chains", "scaling_slopes", "sign_outcome", "summarize",
           "summary_rows"]

#: The directions of the controls (:mod:`~elastic_theory.experiments.synthetic._sequential_controls`), D_t first.
DIRECTIONS = ("D_t", "D_a", "D_p", "random")


def _signs(sel: list[dict]) -> dict:
    """Per-seed outcomes of rows (or controls) ``sel`` and the count of each outcome."""
    per_seed = [{"seed": r["seed"], "signs": sign_outcome(saved_number(r["delta_gamma_align"]), saved_number(r["delta_gamma_pretrain"]))}
                for r in sel]
    return {"signs_per_seed": per_seed, "sign_counts": {o: sum(p["signs"] == o for p in per_seed) for o in SIGN_OUTCOMES}}


def _both_right(sel: list[dict]) -> list[dict]:
    return [r for r in sel if sign_outcome(saved_number(r["delta_gamma_align"]), saved_number(r["delta_gamma_pretrain"]))
            == "both right"]


def summary_rows(rows: list[dict], first_order: list[dict]) -> list[dict]:
    """Per k, arm and step: the mean ratio over seeds (95% interval), ratio/k, Delta gamma_p, l_eff and the
    prediction at it, the seeds beyond the KL threshold; then per k the first-order ratios (step 0)."""
    out = []
    keys = sorted({(r["k"], r["arm"], r["step"]) for r in rows})
    for k, arm, step in keys:
        sel = [r for r in rows if (r["k"], r["arm"], r["step"]) == (k, arm, step)]
        R, R_ci = mean_ci95([r["ratio"] for r in sel])
        le, le_ci = mean_ci95([r["l_eff"] for r in sel])
        pred, _ = mean_ci95([r["R_finite_predicted_at_l_eff"] for r in sel])
        dp, dp_ci = mean_ci95([r["delta_gamma_pretrain"] for r in sel])
        right = _both_right(sel)
        Rr, Rr_ci = mean_ci95([r["ratio"] for r in right])
        out.append({"k": k, "arm": arm, "step": step, "n_seeds": len(sel), "ratio": R, "ratio_ci95": R_ci,
                    "ratio_over_k": R / k, "delta_gamma_pretrain": dp, "delta_gamma_pretrain_ci95": dp_ci,
                    "pretrain_rate_rose_in": sum(r["delta_gamma_pretrain"] > 0 for r in sel),
                    **_signs(sel), "n_both_right": len(right), "ratio_both_right": Rr, "ratio_both_right_ci95": Rr_ci,
                    "ratio_both_right_over_k": Rr / k, "l_eff": le, "l_eff_ci95": le_ci, "R_finite_predicted_at_l_eff": pred,
                    "kl_to_p_leff_bits": max(r["kl_to_p_leff_bits"] for r in sel),
                    "seeds_beyond_kl_threshold": [
                        {"seed": r["seed"], "base_kl_to_optimum_bits": r["base_kl_to_optimum_bits"],
                         "kl_sign_threshold_bits": r["kl_sign_threshold_bits"]}
                        for r in sel if r.get("base_kl_to_optimum_bits", 0.0) > r.get("kl_sign_threshold_bits", math.inf)]})
    for k in sorted({f["k"] for f in first_order}):
        sel = [f for f in first_order if f["k"] == k]
        net, net_ci = mean_ci95([f["ratio_network"] for f in sel])
        tab, _ = mean_ci95([f["ratio_tabular"] for f in sel])
        out.append({"k": k, "arm": "first order (any lr)", "step": 0, "n_seeds": len(sel), "ratio": net, "ratio_ci95": net_ci,
                    "ratio_over_k": net / k, "ratio_tabular": tab, "R_predicted_l0": sel[0]["R_predicted_l0"],
                    "base_kl_to_optimum_bits_max": max(f["base_kl_to_optimum_bits"] for f in sel)})
    return out


def scaling_over_seed_chains(rows: list[dict]) -> list[dict]:
    r"""Per arm and step: the slope b of :math:`\ln \hat R = a + b \ln k` over the points whose signs are both right,
    with seeds as the unit.

    A seed's bases for increasing k form one warm-start chain (each k's base starts from the previous k's), so
    its points are not independent: each seed with both-right points at >= 2 values of k gets its own
    least-squares slope, and the slope is the mean of those, with the Student-t interval over them
    (``None`` below 2 such seeds). Kills: pooling every point as independent (a narrower interval than the
    seeds support) and letting a "both wrong" point (positive ratio, wrong signs) into the fit.
    """
    out = []
    for arm, step in sorted({(r["arm"], r["step"]) for r in rows}):
        sel = [r for r in rows if (r["arm"], r["step"]) == (arm, step)]
        right = _both_right(sel)
        per_seed = []
        for seed in sorted({r["seed"] for r in sel}):
            pts = [r for r in right if r["seed"] == seed]
            slope = (float(np.polyfit(np.log([r["k"] for r in pts]), np.log([r["ratio"] for r in pts]), 1)[0])
                     if len({r["k"] for r in pts}) >= 2 else math.nan)
            per_seed.append({"seed": seed, "n_points": len(pts), "slope": slope})
        b, b_ci = mean_ci95([p["slope"] for p in per_seed])
        out.append({"arm": arm, "step": step, "n_points": len(sel), "n_both_right": len(right), "n_seeds": len(per_seed),
                    "n_seeds_with_slope": sum(math.isfinite(p["slope"]) for p in per_seed), "per_seed": per_seed,
                    "slope": b, "slope_ci95": b_ci})
    return out


def control_summary(controls: list[dict], first_order: list[dict]) -> list[dict]:
    """Per k, arm and direction (D_t first): the mean first-order (linearized) and one-step ratios over seeds with
    their intervals, over R(k, 0) per token, the step norm and the per-seed signs of the one-step changes."""
    r0 = {f["k"]: f["R_predicted_l0"] for f in first_order}
    out = []
    for k, arm in sorted({(c["k"], c["arm"]) for c in controls}):
        for direction in DIRECTIONS:
            sel = [c for c in controls if (c["k"], c["arm"], c["direction"]) == (k, arm, direction)]
            if not sel:
                continue
            fo, fo_ci = mean_ci95([saved_number(c["first_order_ratio"]) for c in sel])
            R, R_ci = mean_ci95([saved_number(c["ratio"]) for c in sel])
            out.append({"k": k, "arm": arm, "direction": direction, "n_seeds": len(sel),
                        "step_norm": float(np.mean([c["step_norm"] for c in sel])),
                        "first_order_ratio": fo, "first_order_ratio_ci95": fo_ci, "ratio": R, "ratio_ci95": R_ci,
                        "R_predicted_l0": r0.get(k, math.nan), "first_order_ratio_over_R_l0": fo / r0.get(k, math.nan),
                        **_signs(sel)})
    return out


def scaling_slopes(rows: list[dict]) -> list[dict]:
    r"""Per arm and step: slope b of :math:`\log \hat R = a + b \log k` over all seeds (b = 1: R scales like k), 95% CI."""
    from scipy import stats

    out = []
    for arm, step in sorted({(r["arm"], r["step"]) for r in rows}):
        sel = [r for r in rows if (r["arm"], r["step"]) == (arm, step)]
        pos = [r for r in sel if r["ratio"] > 0 and math.isfinite(r["ratio"])]
        entry = {"arm": arm, "step": step, "n_points": len(sel), "n_positive": len(pos), "slope": math.nan, "slope_ci95": None}
        if len({r["k"] for r in pos}) >= 2 and len(pos) >= 3:
            x, y = np.log([r["k"] for r in pos]), np.log([r["ratio"] for r in pos])
            fit = stats.linregress(x, y)
            half = float(stats.t.ppf(0.975, len(pos) - 2)) * fit.stderr if len(pos) > 2 else math.nan
            entry.update(slope=float(fit.slope), slope_ci95=[fit.slope - half, fit.slope + half])
        out.append(entry)
    return out


IDENTITY = ("At a stationary point of the joint loss of D_p + D_a, |D_p| grad CE_p + |D_a| grad CE_a = 0, so any small step "
            "gives ratio k (per token R(k, 0)) whichever data it comes from: the first-order ratio cannot tell fine-tuning on D_t "
            "from a step along D_a, D_p or a random direction. Only the signs (gamma_a up and gamma_p down, the theorem's "
            "content) and the second-order behaviour can.")


def _per_seed(signs_per_seed: list[dict]) -> str:
    return ", ".join(f"{p['seed']}: {p['signs']}" for p in signs_per_seed)


def summarize(results: dict) -> str:
    """Markdown tables from results as :func:`~elastic_theory.experiments.synthetic.sequential_ratio.run` returns them or
    as read back from ``results.json`` (where a non-finite value, e.g. the slope over one k, is ``null``): signs per
    seed and the ratio over the seeds with both signs right per k, arm and step; the slope over those by seed chains;
    the direction controls; the stationarity check."""
    lines = ["sequential-ratio: signs per seed after n steps on D_t alone (right: gamma_a up, gamma_p down), then "
             "Delta gamma_a / -Delta gamma_p over the seeds with both signs right (mean, 95% t-interval over those seeds)", "",
             IDENTITY, "",
             "| k | arm | step | signs per seed | both right | ratio (both-right seeds) | 95% CI | ratio/k | "
             "seeds beyond KL threshold | l_eff | predicted at l_eff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    beyond: dict[tuple, list] = {}
    steps = [s for s in results["summary"] if s["step"] > 0]
    for s in steps:
        far = s.get("seeds_beyond_kl_threshold", [])
        for f in far:
            beyond.setdefault((s["k"], f["seed"], f["base_kl_to_optimum_bits"]), []).append(f["kl_sign_threshold_bits"])
        lines.append(f"| {s['k']:g} | {s['arm']} | {s['step']} | {_per_seed(s.get('signs_per_seed', []))} | "
                     f"{s.get('n_both_right', 'n/a')}/{s['n_seeds']} | {saved_number(s.get('ratio_both_right')):.4g} | "
                     f"{format_ci(s.get('ratio_both_right_ci95'), 4)} | {saved_number(s.get('ratio_both_right_over_k')):.3g} | "
                     f"{len(far)}/{s['n_seeds']} | {saved_number(s['l_eff']):.3g} | {saved_number(s['R_finite_predicted_at_l_eff']):.4g} |")
    few = [f"k = {s['k']:g}, {s['arm']}, step {s['step']}: {s.get('n_both_right', 0)}" for s in steps
           if s.get("n_both_right", 0) < FEW_SEEDS]
    if few:
        lines += ["", f"WARNING: ratio intervals over fewer than {FEW_SEEDS} both-right seeds (2 seeds: t quantile 12.7; "
                      "1 or 0: no interval): " + "; ".join(few)]
    if beyond:
        lines += ["", "Bases too far from the joint optimum to certify the sign of Delta gamma_p at some (arm, step) "
                      "(their distance could flip it; the rows above include them):"]
        n_points = {k: sum(1 for s in steps if s["k"] == k) for k, _, _ in beyond}
        lines += [f"* k = {k:g}, seed {seed}: base KL {kl:.2g} bits > the sign threshold at {len(ts)} of {n_points[k]} "
                  f"(arm, step) points (thresholds there {min(ts):.2g} to {max(ts):.2g} bits)"
                  for (k, seed, kl), ts in sorted(beyond.items())]
    lines += ["", "Slope b of ln ratio = a + b ln k over the points with both signs right: one slope per seed (a seed's bases "
                  "are one warm-start chain across k), mean and 95% t-interval over those seeds. Last column: the pooled "
                  "fit of every positive ratio with points treated as independent (the former report), for comparison.", "",
              "| arm | step | slope (mean over seeds) | 95% CI | seeds with a slope | both-right points | per-seed slopes | "
              "pooled, every positive ratio [95% CI] (points) |",
              "|---|---|---|---|---|---|---|---|"]
    pooled = {(s["arm"], s["step"]): s for s in results["scaling"]}
    for s in results.get("scaling_both_right", []):
        old = pooled.get((s["arm"], s["step"]), {})
        per = ", ".join(f"{p['seed']}: {saved_number(p['slope']):.3g} ({p['n_points']} pts)" for p in s["per_seed"])
        lines.append(f"| {s['arm']} | {s['step']} | {saved_number(s['slope']):.3g} | {format_ci(s['slope_ci95'], 3)} | "
                     f"{s['n_seeds_with_slope']}/{s['n_seeds']} | {s['n_both_right']}/{s['n_points']} | {per} | "
                     f"{saved_number(old.get('slope')):.3g} {format_ci(old.get('slope_ci95'), 3)} "
                     f"({old.get('n_positive', 0)}/{old.get('n_points', 0)}) |")
    lines += _controls_table(results.get("direction_controls_summary", []))
    lines += ["", "Stationarity check (how close each base is to a stationary point, nothing more; by the identity above "
                  "it is R(k, 0) at any stationary point): the first-order ratio (grad gamma_a . grad CE_t) / "
                  "(-grad gamma_p . grad CE_t) at the base, for the network and for a tabular learner at the same optimum.", "",
              "| k | network | 95% CI | network / R(k, 0) | tabular | R(k, 0) per token | largest base KL to optimum (bits) |",
              "|---|---|---|---|---|---|---|"]
    for s in (s for s in results["summary"] if s["step"] == 0):
        lines.append(f"| {s['k']:g} | {saved_number(s['ratio']):.6g} | {format_ci(s['ratio_ci95'], 6)} | "
                     f"{saved_number(s['ratio']) / saved_number(s['R_predicted_l0']):.6g} | {saved_number(s['ratio_tabular']):.6g} | "
                     f"{saved_number(s['R_predicted_l0']):.6g} | {saved_number(s.get('base_kl_to_optimum_bits_max')):.2g} |")
    return "\n".join(lines)


def _controls_table(controls: list[dict]) -> list[str]:
    if not controls:
        return []
    lines = ["", "Direction controls: one step from the same base, along D_t (the arm's first step), along D_a and D_p (the "
                 "arm's first step on that data) and along a random direction, each rescaled to the norm of the D_t step. "
                 + IDENTITY, "",
             "| k | arm | direction | first-order ratio | 95% CI | / R(k, 0) | one-step ratio | 95% CI | signs per seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in controls:
        lines.append(f"| {c['k']:g} | {c['arm']} | {c['direction']} | {saved_number(c['first_order_ratio']):.4g} | "
                     f"{format_ci(c['first_order_ratio_ci95'], 4)} | {saved_number(c['first_order_ratio_over_R_l0']):.4g} | "
                     f"{saved_number(c['ratio']):.4g} | {format_ci(c['ratio_ci95'], 4)} | {_per_seed(c['signs_per_seed'])} |")
    return lines


def plot(results: dict, folder: Path) -> list[Path]:
    """``sequential_ratio.png``: per arm and k, each seed's ratio/k against the step (filled: both signs right;
    ``x``: a wrong sign, whose ratio may still be positive), the line through the mean over the both-right seeds,
    and the joint optimum's ratio at l_eff; ``sequential_rates.png``: rate changes per step."""
    from .._plotting import figure, save_figure

    folder = Path(folder)
    summary = [s for s in results["summary"] if s["step"] > 0]
    seed_rows = [r for r in results["rows"] if r["step"] > 0]
    arms = sorted({s["arm"] for s in summary})
    fig, axes = figure(ncols=len(arms), width=4.2)
    for ax, arm in zip(axes, arms):
        for i, k in enumerate(sorted({s["k"] for s in summary})):
            pts = sorted((s for s in summary if s["arm"] == arm and s["k"] == k), key=lambda s: s["step"])
            ax.plot([s["step"] for s in pts], [saved_number(s["ratio_both_right"]) / k for s in pts], "-", color=f"C{i}",
                    label=f"k = {k:g}: mean over both-right seeds")
            ax.plot([s["step"] for s in pts], [s["R_finite_predicted_at_l_eff"] / k for s in pts], "--", color=f"C{i}",
                    lw=0.8, label=f"k = {k:g}: joint optimum at l_eff")
            for right in (True, False):
                mine = [r for r in seed_rows if r["arm"] == arm and r["k"] == k
                        and (sign_outcome(saved_number(r["delta_gamma_align"]),
                                          saved_number(r["delta_gamma_pretrain"])) == "both right") == right]
                ax.plot([r["step"] for r in mine], [saved_number(r["ratio"]) / k for r in mine],
                        "o" if right else "x", color=f"C{i}", ms=4, fillstyle="full" if right else "none",
                        label=f"k = {k:g}: a seed, {'both signs right' if right else 'a sign wrong'}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("fine-tuning steps on D_t")
    axes[0].set_ylabel("ratio / k (per seed; line: both-right mean)")
    axes[0].legend(fontsize=5)
    paths = [save_figure(fig, folder / "sequential_ratio.png")]

    rows = results["rows"]
    fig, (a1, a2) = figure(ncols=2, width=4.8)
    for i, k in enumerate(sorted({r["k"] for r in rows})):
        for j, arm in enumerate(arms):
            pts = sorted((r for r in rows if r["k"] == k and r["arm"] == arm and r["seed"] == rows[0]["seed"]), key=lambda r: r["step"])
            style = ["-", "--", ":", "-."][j % 4]
            a1.plot([r["step"] for r in pts], [r["delta_gamma_align"] for r in pts], style, color=f"C{i}", label=f"k={k:g} {arm}")
            a2.plot([r["step"] for r in pts], [r["delta_gamma_pretrain"] for r in pts], style, color=f"C{i}")
    for ax, name in ((a1, "Delta gamma_a"), (a2, "Delta gamma_p")):
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.set_xlabel("steps")
        ax.set_ylabel(f"{name} (bits/token), first seed")
    a1.legend(fontsize=5)
    paths.append(save_figure(fig, folder / "sequential_rates.png"))
    return paths
