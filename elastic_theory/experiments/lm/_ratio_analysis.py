"""The analysis of ``lm-ratio`` from its saved units (the measured ratio per alignment amount with Fieller's
interval, k, and the slope of ln R against ln k), its plot and its markdown summary.
:mod:`~elastic_theory.experiments.lm.ratio` describes what is measured; ``config`` is its ``LMRatioConfig``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...stats.seedstats import error_bars, format_interval, interval_note, saved_number, seed_interval
from .._stats import SIGN_OUTCOMES, sign_outcome
from ._common import plot_title, summary_title

__all__ = ["DATASETS", "STATES", "analyse", "fieller_seed_ratio", "plot", "pretrain_tokens_of", "summarize"]

STATES = ("base", "aligned", "perturbed")
DATASETS = ("alignment", "alignment_responses", "wikipedia")


def fieller_seed_ratio(numerators, denominators, level: float = 0.95) -> dict:
    r"""Ratio of seed means :math:`\bar N / \bar D` with Fieller's interval, Student-t quantile.

    The covariance is that of the two means (sample covariance over seeds / n). Fieller's set uses
    :math:`z^2`; the covariance handed to :func:`~elastic_theory.stats.comparison.fieller_interval` is scaled by
    :math:`(t_{(1+level)/2, n-1} / z)^2`, so the set uses :math:`t^2` (few seeds: wider, honest).
    ``ci95`` is None for one seed or an unresolved denominator (the set is unbounded).
    """
    from scipy import stats

    from ...stats.comparison import fieller_interval

    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    n = num.size
    value = float(num.mean() / den.mean()) if den.mean() != 0 else math.nan
    ci = None
    if n >= 2:
        t = float(stats.t.ppf(0.5 + level / 2, n - 1))
        z = float(stats.norm.ppf(0.5 + level / 2))
        # z^2 v and t^2 v give the same set when v is scaled by (t/z)^2. (Passing the level whose normal quantile is
        # t instead rounds to 1.0 for 2 seeds, t = 12.7, and the set became the whole line.)
        cov = np.cov(np.vstack([num, den]), ddof=1) / n * (t / z) ** 2
        ci = fieller_interval(float(num.mean()), float(den.mean()), cov, level=level)
    return {"value": value, "ci95": None if ci is None else [float(ci[0]), float(ci[1])], "n_seeds": int(n),
            "per_seed": [float(a / b) if b != 0 else math.nan for a, b in zip(num, den)]}


def _delta(unit: dict, dataset: str) -> float:
    r = unit["rates"]
    return float(r["perturbed"][dataset]["bits_per_token"] - r["aligned"][dataset]["bits_per_token"])


def pretrain_tokens_of(config) -> tuple[float, str]:
    """``(|D_p| in tokens, where the figure comes from)``: ``config.pretrain_tokens`` when set, else the built-in
    model's model-card figure; ``ValueError`` for another model without it."""
    from ...empirical.builtin_models import BUILTIN_MODELS

    if config.pretrain_tokens is not None:
        return float(config.pretrain_tokens), "the run's config (pretrain_tokens)"
    if config.model not in BUILTIN_MODELS:
        raise ValueError(f"pretrain_tokens: the pre-training tokens of {config.model!r} are not known here (only the "
                         f"built-in models', {', '.join(BUILTIN_MODELS)}); give them with --set pretrain_tokens=N "
                         f"(from the model card), since k = pretrain_tokens / alignment tokens")
    entry = BUILTIN_MODELS[config.model]
    return entry.pretrain_tokens, entry.pretrain_source


def analyse(config, units: dict[int, list[dict]]) -> dict:
    """R_meas per n+ (Fieller interval over seeds), k, R/k, and the slope of ln R against ln k across n+.

    ``units[n_plus]`` lists the per-seed units of that alignment amount, in the same seed order for every n+.
    """
    aligns = sorted(units)
    pretrain, pretrain_source = pretrain_tokens_of(config)
    by_align = {}
    log_r, log_k = [], []
    for n in aligns:
        us = units[n]
        da = np.array([_delta(u, "alignment") for u in us])
        da_resp = np.array([_delta(u, "alignment_responses") for u in us])
        dp = np.array([_delta(u, "wikipedia") for u in us])
        k = np.array([pretrain / u["align_tokens"] for u in us])
        k_resp = np.array([pretrain / u["align_response_tokens"] for u in us])
        signs = [sign_outcome(a, p) for a, p in zip(da, dp)]
        right = np.array([o == "both right" for o in signs])
        ratio = fieller_seed_ratio(da, -dp)
        ratio_resp = fieller_seed_ratio(da_resp, -dp)
        ratio_right = fieller_seed_ratio(da[right], -dp[right]) if right.any() else None
        by_align[str(n)] = {
            "align_amount": n,
            "delta_gamma_a": seed_interval(da).as_dict(), "delta_gamma_p": seed_interval(dp).as_dict(),
            "signs_per_seed": [{"seed": u["seed"], "signs": o} for u, o in zip(us, signs)],
            "sign_counts": {o: signs.count(o) for o in SIGN_OUTCOMES},
            "R_meas_both_right": ratio_right,
            "R_meas": ratio,
            "k": float(k.mean()), "k_per_seed": k.tolist(), "k_response_tokens": float(k_resp.mean()),
            "R_over_k": ratio["value"] / float(k.mean()),
            "responses": {"delta_gamma_a": seed_interval(da_resp).as_dict(), "R_meas": ratio_resp,
                          "R_over_k": ratio_resp["value"] / float(k_resp.mean())},
            "align_tokens": [u["align_tokens"] for u in us],
            "rates": {state: {d: seed_interval([u["rates"][state][d]["bits_per_token"] for u in us], scale="log").as_dict()
                              for d in DATASETS} for state in STATES},
        }
        log_r.append([math.log(r) if o == "both right" else math.nan for r, o in zip(ratio["per_seed"], signs)])
        log_k.append(np.log(k).tolist())
    slope = None
    if len(aligns) >= 2:
        lr, lk = np.array(log_r).T, np.array(log_k).T  # seeds x n+
        per_seed = [float(np.polyfit(x, y, 1)[0]) if np.isfinite(y).all() else math.nan for x, y in zip(lk, lr)]
        finite = [s for s in per_seed if math.isfinite(s)]
        interval = seed_interval(finite).as_dict() if finite else None
        verdict = ("undefined (no seed has both signs right at every n+)" if interval is None
                   else "inconclusive (one seed)" if interval["n"] < 2
                   else "consistent with 1" if interval["low"] <= 1 <= interval["high"] else "differs from 1")
        slope = {"per_seed": per_seed, "seeds_defined": f"{len(finite)}/{len(per_seed)}",
                 "unit": "a seed with both signs right at every n+ (its fine-tunings from one base form one unit)", "interval": interval,
                 "predicted": 1.0, "verdict": verdict}
    return {
        "seeds": [u["seed"] for u in units[aligns[0]]],
        "pretrain_tokens": pretrain,
        "pretrain_tokens_source": pretrain_source,
        "perturb_amount": config.perturb_amount,
        "by_align": by_align,
        "slope_ln_R_vs_ln_k": slope,
        "units": {"rates": "bits per token", "R_meas": "d gamma_a / (-d gamma_p), both in bits per token",
                  "R_meas_both_right": "the same over the seeds with d gamma_a > 0 > d gamma_p only (None: no such seed)",
                  "k": "pretrain_tokens / alignment document tokens trained on (repeats counted)",
                  "responses": "gamma_a over the aligned responses given their prompts; R over k_response_tokens"},
        "prediction": "R_meas ~ k (THEORY §2: first order, joint optimum); slope of ln R_meas against ln k = 1",
    }


def plot(results: dict, folder: Path) -> list[Path]:
    """``lm-ratio.png``: R_meas against k (log-log, Fieller intervals, the line R = k), and the rate changes per n+."""
    from .._plotting import figure, plot_tracks, save_figure

    rows = list(results["by_align"].values())
    fig, (ax, deltas) = figure(2, width=4.8, height=4.0)
    k = np.array([r["k"] for r in rows])
    for r in rows:
        v, ci = saved_number(r["R_meas"]["value"]), r["R_meas"]["ci95"]
        if v > 0:  # a log axis shows positive ratios only; the table has every one
            yerr = None if ci is None or ci[0] <= 0 else [[v - ci[0]], [ci[1] - v]]
            ax.errorbar([r["k"]], [v], yerr=yerr, fmt="o", capsize=3, color="C0")
            ax.annotate(f"n+={r['align_amount']}", (r["k"], v), fontsize=7)
    ax.plot(k, k, "k--", lw=1, label="R = k (prediction)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k = |D_p| / |D_a| (tokens)")
    ax.set_ylabel("R_meas = d gamma_a / (-d gamma_p)")
    ax.legend(fontsize=8)
    n_plus = [r["align_amount"] for r in rows]
    for key, label in (("delta_gamma_a", "d gamma_a (alignment set)"), ("delta_gamma_p", "d gamma_p (Wikipedia)")):
        m, err = error_bars([r[key] for r in rows])
        deltas.errorbar(n_plus, m, yerr=err, marker="o", capsize=3, label=label)
    deltas.axhline(0, color="k", lw=0.8)
    deltas.set_xscale("log")
    deltas.set_xlabel("alignment examples n+")
    # two short lines: one line ran taller than the panel and over the figure's title
    deltas.set_ylabel(f"rate change, bits/token\n(over the perturbation, m = {results['perturb_amount']})")
    deltas.legend(fontsize=8)
    fig.suptitle(plot_title(results), fontsize=9)
    return [save_figure(fig, Path(folder) / "lm-ratio.png")] + plot_tracks(results, folder)


def _fieller(r: dict) -> str:
    ci = r["ci95"]
    return f"{saved_number(r['value']):.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else " (no interval)")


def _signs(r: dict) -> str:
    c = r.get("sign_counts", {})
    return ", ".join(f"{c[o]} {o}" for o in SIGN_OUTCOMES if c.get(o))


def summarize(results: dict) -> str:
    """Markdown: signs first (per n+, how many seeds moved gamma_a up and gamma_p down), then R_meas over the seeds
    with both signs right (the theorem's R is defined only there), R_meas over all seeds, k; the slope of ln R
    against ln k over the seeds with both signs right at every n+."""
    lines = [f"{summary_title(results)}; perturbation m = {results['perturb_amount']}; "
             f"|D_p| = {results['pretrain_tokens']:.3g} tokens; rates in bits/token; "
             f"{interval_note(len(results['seeds']))} (Fieller for R; rates on the log scale); right signs: "
             "d gamma_a > 0 > d gamma_p", "",
             "| n+ | seeds: signs | d gamma_a | d gamma_p | R_meas, both-right seeds | R_meas, all seeds | k | "
             "R_meas (all) / k | responses only: d gamma_a, R_meas, R_meas / k_response |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["by_align"].values():
        right = r.get("R_meas_both_right")
        n_right = r.get("sign_counts", {}).get("both right", 0)
        lines.append(f"| {r['align_amount']} | {_signs(r)} | {format_interval(r['delta_gamma_a'])} | "
                     f"{format_interval(r['delta_gamma_p'])} | "
                     f"{'none' if right is None else _fieller(right)} ({n_right} seeds) | "
                     f"{_fieller(r['R_meas'])} | {r['k']:.3g} | {saved_number(r['R_over_k']):.3g} | "
                     f"{format_interval(r['responses']['delta_gamma_a'])}, {_fieller(r['responses']['R_meas'])}, "
                     f"{saved_number(r['responses']['R_over_k']):.3g} |")
    s = results["slope_ln_R_vs_ln_k"]
    if s:
        lines += ["", f"slope of ln R_meas against ln k over n+: {format_interval(s['interval'])} "
                      f"(seeds with both signs right at every n+: {s['seeds_defined']}); "
                      f"predicted {s['predicted']}: {s['verdict']}"]
    lines += ["", f"prediction: {results['prediction']}"]
    return "\n".join(lines)
