"""The analysis of ``sequential-ratio`` from its rows (means over seeds per k, arm and step; the log-log slope of
the ratio on k), its markdown tables and its plots. :mod:`~elastic_theory.experiments.synthetic.sequential_ratio`
describes what is measured."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...stats.seedstats import saved_number
from .._stats import format_ci, mean_ci95

__all__ = ["plot", "scaling_slopes", "summarize", "summary_rows"]


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
        out.append({"k": k, "arm": arm, "step": step, "n_seeds": len(sel), "ratio": R, "ratio_ci95": R_ci,
                    "ratio_over_k": R / k, "delta_gamma_pretrain": dp, "delta_gamma_pretrain_ci95": dp_ci,
                    "pretrain_rate_rose_in": sum(r["delta_gamma_pretrain"] > 0 for r in sel),
                    "l_eff": le, "l_eff_ci95": le_ci, "R_finite_predicted_at_l_eff": pred,
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
                    "ratio_over_k": net / k, "ratio_tabular": tab, "R_predicted_l0": sel[0]["R_predicted_l0"]})
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


def summarize(results: dict) -> str:
    """Markdown tables: ratio against k per arm and step, and the log-log slope, from results as :func:`~elastic_theory.experiments.synthetic.sequential_ratio.run` returns
    them or as read back from ``results.json`` (where a non-finite value, e.g. the slope over one k, is ``null``)."""
    lines = ["sequential-ratio: Delta gamma_a / -Delta gamma_p after n steps on D_t alone (mean, 95% t-interval over seeds)", "",
             "| k | arm | step | ratio | 95% CI | ratio/k | Delta gamma_p | seeds with gamma_p up | seeds beyond KL threshold | l_eff | predicted at l_eff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    beyond: dict[tuple, list] = {}
    for s in results["summary"]:
        ci = format_ci(s["ratio_ci95"], 4)
        if s["step"] == 0:
            lines.append(f"| {s['k']:g} | {s['arm']} | 0 | {saved_number(s['ratio']):.4g} | {ci} | {saved_number(s['ratio_over_k']):.3g} | "
                         f"tabular: {saved_number(s['ratio_tabular']):.4g} | | | | R(k, 0) = {saved_number(s['R_predicted_l0']):.4g} |")
            continue
        far = s.get("seeds_beyond_kl_threshold", [])
        for f in far:
            beyond.setdefault((s["k"], f["seed"], f["base_kl_to_optimum_bits"]), []).append(f["kl_sign_threshold_bits"])
        lines.append(f"| {s['k']:g} | {s['arm']} | {s['step']} | {saved_number(s['ratio']):.4g} | {ci} | {saved_number(s['ratio_over_k']):.3g} | "
                     f"{saved_number(s['delta_gamma_pretrain']):.3g} | {s['pretrain_rate_rose_in']}/{s['n_seeds']} | {len(far)}/{s['n_seeds']} | "
                     f"{saved_number(s['l_eff']):.3g} | {saved_number(s['R_finite_predicted_at_l_eff']):.4g} |")
    if beyond:
        lines += ["", "Bases too far from the joint optimum to certify the sign of Delta gamma_p at some (arm, step) "
                      "(their distance could flip it; the rows above include them):"]
        n_points = {k: sum(1 for s in results["summary"] if s["step"] > 0 and s["k"] == k) for k, _, _ in beyond}
        lines += [f"* k = {k:g}, seed {seed}: base KL {kl:.2g} bits > the sign threshold at {len(ts)} of {n_points[k]} "
                  f"(arm, step) points (thresholds there {min(ts):.2g} to {max(ts):.2g} bits)"
                  for (k, seed, kl), ts in sorted(beyond.items())]
    lines += ["", "| arm | step | slope of log ratio on log k | 95% CI | points with ratio > 0 |", "|---|---|---|---|---|"]
    for s in results["scaling"]:
        ci = format_ci(s["slope_ci95"], 3)
        lines.append(f"| {s['arm']} | {s['step']} | {saved_number(s['slope']):.3g} | {ci} | {s['n_positive']}/{s['n_points']} |")
    return "\n".join(lines)


def plot(results: dict, folder: Path) -> list[Path]:
    """``sequential_ratio.png``: ratio/k against step per arm and k; ``sequential_rates.png``: rate changes per step."""
    from .._plotting import figure, save_figure

    folder = Path(folder)
    summary = [s for s in results["summary"] if s["step"] > 0]
    arms = sorted({s["arm"] for s in summary})
    fig, axes = figure(ncols=len(arms), width=4.2)
    for ax, arm in zip(axes, arms):
        for i, k in enumerate(sorted({s["k"] for s in summary})):
            pts = sorted((s for s in summary if s["arm"] == arm and s["k"] == k), key=lambda s: s["step"])
            ax.plot([s["step"] for s in pts], [s["ratio"] / k for s in pts], "o-", color=f"C{i}", label=f"k = {k:g} measured")
            ax.plot([s["step"] for s in pts], [s["R_finite_predicted_at_l_eff"] / k for s in pts], "x--", color=f"C{i}",
                    label=f"k = {k:g} joint optimum at l_eff")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("fine-tuning steps on D_t")
    axes[0].set_ylabel("ratio / k")
    axes[0].legend(fontsize=6)
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
