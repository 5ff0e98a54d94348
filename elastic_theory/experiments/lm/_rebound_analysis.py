"""The analysis of ``lm-rebound`` and ``lm-data-to-revert`` from their saved units (seed intervals of every curve
point, data to revert, the paired drop comparison, the phases of the margin curves), their plots and their markdown
summary. :mod:`~elastic_theory.experiments.lm.rebound` describes what is measured; ``config`` is its
``LMReboundConfig``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...stats.behaviour import data_to_revert, first_crossing
from .._phases import analyse_phases, phase_table
from ...stats.seedstats import error_bars, format_interval, interval_note, paired_difference, seed_interval
from .._stats import amount_interval, format_amount, min_kl_per_seed, quantity_interval
from ._common import plot_title, summary_title
from ._rebound_protocol import judge_of

__all__ = ["MEASURES", "PAPER_TABLE3", "PHASE_SCORES", "analyse", "plot", "summarize"]

MEASURES = ("margin_per_token", "margin_per_response", "kl_bits_per_token", "generation_score")
#: The curves of the phase analysis (measured at every m; the generation score is not), and its settings: resamples
#: per test, the false discovery rate of the claims, simulated curves per calibration (experiments/_phases.py).
PHASE_SCORES = ("margin_per_token", "margin_per_response")
N_RESAMPLES, FDR_Q, CALIBRATION_CURVES = 999, 0.05, 200
PAPER_TABLE3 = {
    "unit": "unsafe (negative) samples needed to bring KL(model, base) below 0.01, after n+ safe samples",
    "align_amounts": [1000, 2000, 5000, 10000],
    "Llama2-7B": [961, 844, 801, 729],
    "Gemma-2B": [923, 853, 709, 598],
}


def _interval_or_none(values) -> dict | None:
    return amount_interval(values)


def _scored(config, base_units: list[dict]):
    """The seed interval of a measure on its scale: the refusal rate counted over the generation prompts (logit)."""
    judge = judge_of(config)
    counts = {u.get("n_generate") for u in base_units}
    trials = counts.pop() if len(counts) == 1 else None

    def interval(key: str, values) -> dict:
        if key != "generation_score":
            return quantity_interval(key, values)
        if judge == "refusal_rate" and trials:
            return quantity_interval(judge, values, trials)
        if judge == "sentiment":
            return quantity_interval(judge, values)
        return seed_interval(values).as_dict()  # a refusal rate whose seeds counted different numbers of prompts

    return interval


def _crossing_summary(values: list[float]) -> dict:
    finite = [v for v in values if math.isfinite(v)]
    return {"per_seed": values, "reached_in": f"{len(finite)}/{len(values)} seeds", "interval": _interval_or_none(values)}


def _slope_per_efold(amounts, values) -> float:
    """The fall per e-fold of 1 + m: minus the least-squares slope of ``values`` against ``ln(1 + amounts)``, m = 0
    (the aligned model) included."""
    return -float(np.polyfit(np.log1p(amounts), values, 1)[0])


def _phases(config, units: dict[int, list[dict]], seeds: int) -> dict:
    """The phase analysis of the margin curves, per n+ (experiments/_phases.py)."""
    curves = {}
    for n, us in units.items():
        per_seed = [u["curve"] for u in us]
        for k in PHASE_SCORES:
            curves[str(n), k] = ([p["perturb_amount"] for c in per_seed for p in c], [p[k] for c in per_seed for p in c],
                                 [i for i, c in enumerate(per_seed) for _ in c])
    return analyse_phases(curves, [0, *config.perturb_amounts], seeds=seeds, q=FDR_Q, n_resamples=N_RESAMPLES,
                          calibration_curves=CALIBRATION_CURVES, rng=np.random.default_rng(0))


def analyse(config, base_units: list[dict], units: dict[int, list[dict]]) -> dict:
    """Seed intervals of every curve point, data to revert per alignment amount, and the paired drop comparison.

    ``units[n_plus]`` lists the per-seed units of that alignment amount in the order of ``base_units``.
    """
    aligns = sorted(units)
    scores = [MEASURES[0], MEASURES[1]] + (["generation_score"] if judge_of(config) else [])
    interval = _scored(config, base_units)
    base = {k: interval(k, [u["scores"][k] for u in base_units]) for k in scores}
    curves, revert = {}, {}
    for n in aligns:
        per_seed = [u["curve"] for u in units[n]]
        points = []
        for i, p in enumerate(per_seed[0]):
            point = {"perturb_amount": p["perturb_amount"]}
            for k in MEASURES:
                vals = [c[i][k] for c in per_seed]
                point[k] = None if any(v is None for v in vals) else interval(k, vals)
            for k in scores:  # paired by seed: each seed's held-out pairs differ, and so does its base's score
                vals = [c[i][k] for c in per_seed]
                point[f"{k}_minus_base"] = None if any(v is None for v in vals) else paired_difference(
                    vals, [u["scores"][k] for u in base_units]).as_dict()
            points.append(point)
        curves[str(n)] = points
        amounts = [p["perturb_amount"] for p in per_seed[0]]
        entry = {"kl": _crossing_summary([data_to_revert(amounts, [p["kl_bits_per_token"] for p in c], config.eps_kl_bits)
                                          for c in per_seed])}
        for k in scores:
            pts = [[(p["perturb_amount"], p[k]) for p in c if p[k] is not None] for c in per_seed]
            entry[f"{k}_back_to_base"] = _crossing_summary(
                [first_crossing([a for a, _ in s], [v for _, v in s], u["scores"][k]) for s, u in zip(pts, base_units)])
        entry["min_kl_bits_per_token"] = seed_interval(min_kl_per_seed([[p["kl_bits_per_token"] for p in c] for c in per_seed]),
                                                       scale="log").as_dict()
        revert[str(n)] = entry
    comparison = None
    if len(aligns) >= 2:
        small, large = aligns[0], aligns[-1]
        comparison = {"align_small": small, "align_large": large}
        for k in scores:
            drops, slopes = {}, {}
            for n in (small, large):
                pts = [[(p["perturb_amount"], p[k]) for p in u["curve"] if p[k] is not None] for u in units[n]]
                drops[n] = [s[0][1] - s[1][1] for s in pts]
                slopes[n] = [_slope_per_efold([a for a, _ in s], [v for _, v in s]) if len(s) > 1 else math.nan
                             for s in pts]
            comparison[k] = {"first_drop": paired_difference(drops[large], drops[small]).as_dict()}
            if all(math.isfinite(v) for n in (small, large) for v in slopes[n]):
                comparison[k]["drop_per_efold"] = paired_difference(slopes[large], slopes[small]).as_dict()
    return {
        "seeds": [u["seed"] for u in base_units],
        "base": base,
        "curves": curves,
        "data_to_revert": {"eps_kl_bits_per_token": config.eps_kl_bits, "by_align": revert, "paper_table3": PAPER_TABLE3},
        "drop_comparison": comparison,
        "phases": _phases(config, units, len(base_units)),
    }


_LABELS = {"margin_per_token_minus_base": "log-prob margin (aligned - unaligned) minus the base's, nats/token",
           "kl_bits_per_token": "KL(model || base) per token (bits)",
           "generation_score": "generation score"}


def plot(results: dict, folder: Path) -> list[Path]:
    """``lm-rebound.png`` (margin, KL, generation score against m, per n+, seed bands), ``lm-data-to-revert.png``
    (data to revert against n+, next to the paper's Table 3), and one rate-against-step plot per track."""
    from .._plotting import figure, plot_tracks, save_figure

    keys = [k for k in _LABELS if k != "generation_score" or results.get("judge")]
    fig, axes = figure(len(keys), width=4.6, height=4.0)
    for n, curve in results["curves"].items():
        for ax, key in zip(axes, keys):
            pts = [p for p in curve if p[key] is not None]
            x = np.array([max(p["perturb_amount"], 0.5) for p in pts], dtype=float)
            m, err = error_bars([p[key] for p in pts])
            ax.errorbar(x, m, yerr=err, marker="o", capsize=3, label=f"n+ = {n}")
    for ax, key in zip(axes, keys):
        if key in results["base"]:
            ax.axhline(float(results["base"][key]["mean"]), color="k", ls="--", lw=1, label="base model")
        if key.endswith("_minus_base"):
            ax.axhline(0.0, color="k", ls="--", lw=1, label="base model")
        ax.set_xscale("log")
        ax.set_xlabel("perturbation examples m (m = 0 drawn at 0.5)")
        title = _LABELS[key] + (f": {results['judge']}" if key == "generation_score" else "")
        ax.set_title(title, fontsize=9)
    if "kl_bits_per_token" in keys:
        ax = axes[keys.index("kl_bits_per_token")]
        ax.axhline(results["data_to_revert"]["eps_kl_bits_per_token"], color="r", ls=":", lw=1, label="eps")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(plot_title(results), fontsize=9)
    paths = [save_figure(fig, Path(folder) / "lm-rebound.png")]

    fig, (ours, paper) = figure(2, width=4.6, height=3.8)
    revert = results["data_to_revert"]
    aligns = [int(n) for n in revert["by_align"]]
    for key, label in (("kl", "KL <= eps"), ("margin_per_token_back_to_base", "margin back to base"),
                       ("generation_score_back_to_base", "generation score back to base")):
        rows = [revert["by_align"][str(n)].get(key) for n in aligns]
        if any(r is None for r in rows):
            continue
        xs = [n for n, r in zip(aligns, rows) if r["interval"] is not None]
        if xs:
            m, err = error_bars([r["interval"] for r in rows if r["interval"] is not None])
            ours.errorbar(xs, m, yerr=err, marker="o", capsize=3, label=label)
    ours.set_xlabel("alignment examples n+")
    ours.set_ylabel("perturbation examples to revert")
    ours.set_title("this run (seeds that reached it)", fontsize=9)
    if ours.get_legend_handles_labels()[0]:  # no amount has an interval (one seed, or a seed never back): no legend
        ours.legend(fontsize=8)
    else:
        ours.text(0.5, 0.5, "no interval: see the per-seed amounts in the table", ha="center", transform=ours.transAxes,
                  fontsize=8)
    table = revert["paper_table3"]
    for model in ("Llama2-7B", "Gemma-2B"):
        paper.plot(table["align_amounts"], table[model], marker="s", label=model)
    paper.set_xscale("log")
    paper.set_xlabel("safe examples n+")
    paper.set_ylabel("unsafe examples to KL < 0.01")
    paper.set_title("paper, Table 3", fontsize=9)
    paper.legend(fontsize=8)
    paths.append(save_figure(fig, Path(folder) / "lm-data-to-revert.png"))
    return paths + plot_tracks(results, folder)


def summarize(results: dict) -> str:
    """Markdown: base scores, the curves, the drop comparison and data to revert next to Table 3."""
    judge = results.get("judge")
    keys = ["margin_per_token", "margin_per_response", "kl_bits_per_token"] + (["generation_score"] if judge else [])
    lines = [f"{summary_title(results)}; {interval_note(len(results['seeds']))}; margins in nats (linear), KL in bits per "
             "token and amounts on the log scale, the refusal rate on the logit scale, sentiment on the artanh scale; "
             "min KL over every m, m = 0 included", "",
             "base model: " + ", ".join(f"{k} {format_interval(v)}" for k, v in results["base"].items()), "",
             "| n+ | m | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for n, curve in results["curves"].items():  # data to revert (Table 3's form): the ends of each curve only
        shown = curve if results["experiment"] != "lm-data-to-revert" else [curve[0], curve[-1]]
        for p in shown:
            lines.append(f"| {n} | {p['perturb_amount']} | " + " | ".join(format_interval(p[k]) for k in keys) + " |")
    d = results["drop_comparison"]
    if d:
        lines += ["", f"| drop (n+ = {d['align_large']} minus n+ = {d['align_small']}, paired by seed) | first step | "
                  "per e-fold of 1 + m (m = 0 included) |",
                  "|---|---|---|"]
        for k in (k for k in keys if k in d):
            lines.append(f"| {k} | {format_interval(d[k]['first_drop'])} | {format_interval(d[k].get('drop_per_efold'))} |")
    if "phases" in results:  # runs analysed before the phase analysis existed have none
        lines += ["", *phase_table(results["phases"], "m")]
    r = results["data_to_revert"]
    cols = ["kl"] + [f"{k}_back_to_base" for k in keys if k in results["base"]]
    lines += ["", f"data to revert (perturbation examples; KL threshold {r['eps_kl_bits_per_token']} bits/token; "
              "paper: unsafe samples to KL < 0.01)", "",
              "| n+ | " + " | ".join(cols) + " | min KL per token |", "|---|" + "---|" * (len(cols) + 1)]
    for n, e in r["by_align"].items():
        cells = [format_amount(e[c]["interval"], e[c]["per_seed"]) + f" (reached in {e[c]['reached_in']})" for c in cols]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {format_interval(e['min_kl_bits_per_token'])} |")
    t = r["paper_table3"]
    lines += ["", "| paper, Table 3 | " + " | ".join(f"n+ = {n}" for n in t["align_amounts"]) + " |",
              "|---|" + "---|" * len(t["align_amounts"])]
    for model in ("Llama2-7B", "Gemma-2B"):
        lines.append(f"| {model} | " + " | ".join(str(v) for v in t[model]) + " |")
    return "\n".join(lines)
