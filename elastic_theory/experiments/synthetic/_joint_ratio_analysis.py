r"""The analysis of ``joint-ratio`` from its rows: per seed, the measured ratio against the prediction for that
seed's own data and whether the rate-error bound certifies it; per k, the means over seeds; the markdown table
and the plots. :mod:`~elastic_theory.experiments.synthetic.joint_ratio` describes what is measured.

**What "certified" means** (:func:`seed_comparison`). Per seed the ratio compares two trained models,
:math:`q_0` (l = 0) and :math:`q_l`, each fit to its own union and each at a measured KL :math:`\delta_j`
from that union's optimum :math:`p^*_j` (``kl_to_optimum_bits``). :func:`rate_error_bound_bits` bounds each
measured rate: :math:`|\gamma_i(q_j) - \gamma_i(p^*_j)| \le e_{ij}`, with :math:`\pi_{ij}` the share of
dataset i in union j and :math:`E_{P_i}|x|` its mean length. The measured change
:math:`\Delta\hat\gamma_i = \gamma_i(q_l) - \gamma_i(q_0)` is then within

.. math:: e_i = e_{i0} + e_{il}

of the optimum's change :math:`\Delta\gamma_i^*` for exactly the data of this seed, for both rates the
ratio uses, i = a and i = p. The seed is **certified** when :math:`\rho_i = e_i/|\Delta\hat\gamma_i| < 1`
for both (``bound_to_signal_*``): then neither interval :math:`\Delta\hat\gamma_i \pm e_i` contains 0, so
the optimum's changes have the measured signs, and :math:`R^* = \Delta\gamma_a^*/(-\Delta\gamma_p^*)`,
monotone in each change over that box, lies between the box's corner values; relative to the measured
:math:`\hat R`,

.. math:: \frac{1 - \rho_a}{1 + \rho_p} \le \frac{R^*}{\hat R} \le \frac{1 + \rho_a}{1 - \rho_p}.

That interval (``R_certified_interval_per_seed``) must contain the seed's prediction :math:`R_{pred}`,
which is :math:`R^*` computed from the data: a prediction outside it is a certified disagreement. Where
:math:`\rho_i \ge 1` the bound allows rate errors as large as the change itself (the model is not
converged far enough for it): the agreement seen there is within the optimizer's spread over seeds and
not certified, and the seed is named in the summary (it stays in the means over seeds). The bound is
loose, so "not certified" does not mean "wrong". Each KL gets ``kl_rounding_bits`` added (8 eps times the
cross-entropy: near the optimum the float64 sum of the KL can come out as 0 or negative while the rates
still differ by about the square root of its rounding).

What is certified is that the optimizer found the joint optimum of the table trained on, so that the
network's rates are the optimum's: a model that can represent every distribution of the world (as here)
and reaches KL ~0 reproduces :math:`R_{pred}` by arithmetic. It does not test how a network that cannot
memorize its data follows the theorem.

**Sampled mode.** Each seed draws its own datasets, so each seed's prediction comes from its own data
(``R_predicted_per_seed``), and the summary's relative error is the mean over seeds of
:math:`\hat R_s / R_{pred,s} - 1` with its interval over seeds. In exact mode every seed has the same
data and this is :math:`\bar R / R_{pred} - 1`.
"""

from __future__ import annotations

import math
from pathlib import Path

from ...stats.seedstats import interval_note, saved_number
from .._stats import format_ci, mean_ci95, ratio_of_changes

__all__ = ["kl_rounding_bits", "plot", "rate_error_bound_bits", "seed_comparison", "sign_kl_threshold_bits",
           "summarize", "summary_rows"]

ROLES_OF_R = ("align", "pretrain")


def sign_kl_threshold_bits(delta_gamma: float, shares, mean_length: float) -> float:
    r"""The KL to the optimum (bits per response) below which a measured rate change keeps the sign of ``delta_gamma``.

    The change :math:`\Delta\gamma_i` (bits per token) is measured between models :math:`q_j`, each at KL
    :math:`\delta_j` from the optimum of the union it was fit to, in which dataset i has the share
    :math:`\pi_j` (``shares``, one per model). By :func:`rate_error_bound_bits` each measured rate is off
    by at most :math:`(\delta_j + \sqrt{2\delta_j})/(\pi_j E_{P_i}|x| \ln 2)`, so while every
    :math:`\delta_j < \delta^*` with

    .. math:: (\delta^* + \sqrt{2\delta^*}) \sum_j \frac{1}{\pi_j E_{P_i}|x| \ln 2} = |\Delta\gamma_i|

    the errors cannot flip the sign of the change; above it they can (the bound is loose: they need
    not). :math:`x = \sqrt{\delta^*}` is the positive root of :math:`x^2 + \sqrt 2 x - y`, with
    :math:`y` the right side over the sum, written :math:`x = 2y/(\sqrt{2 + 4y} + \sqrt 2)` so that
    no digits cancel (nats inside; returned in bits). It shrinks like :math:`|\Delta\gamma_i|^2`, so
    like :math:`1/k^4` for the pre-training rate (THEORY §2.2).
    """
    y = abs(delta_gamma) / sum(1.0 / (share * mean_length * math.log(2.0)) for share in shares)
    x = 2.0 * y / (math.sqrt(2.0 + 4.0 * y) + math.sqrt(2.0))
    return x * x / math.log(2.0)


def rate_error_bound_bits(kl_bits: float, share: float, mean_length: float, kl_rounding_bits: float = 0.0) -> float:
    r"""Bound on :math:`|\gamma_i(q) - \gamma_i(p^*)|` (bits per token) for a model q with :math:`KL(p^* \| q) = \delta`.

    :math:`p^*` is the union's empirical distribution, of which dataset i is the share
    :math:`\pi_i = |D_i|/|D|` (so :math:`P_i \le p^*/\pi_i`). With :math:`a = \ln(p^*/q)`,
    :math:`\sum p^* |a| = \delta + 2\sum_{q > p^*} p^* \ln(q/p^*) \le \delta + 2\,TV \le \delta + \sqrt{2\delta}`
    (:math:`\ln(1+u) \le u`, Pinsker; also for a sub-normalized q), hence (nats inside)

    .. math:: |\gamma_i(q) - \gamma_i(p^*)| \le \frac{\delta + \sqrt{2\delta}}{\pi_i\,E_{P_i}|x|\,\ln 2}.

    ``kl_rounding_bits`` is added to the measured KL: a KL summed in float64 carries an absolute
    rounding error of a few eps times the cross-entropy, and near the optimum it can even come out
    negative while the rates still differ by ~sqrt of that error.
    """
    delta = (max(kl_bits, 0.0) + kl_rounding_bits) * math.log(2.0)
    return (delta + math.sqrt(2.0 * delta)) / (share * mean_length * math.log(2.0))


def kl_rounding_bits(loss_nats: float) -> float:
    r"""The rounding allowance added to a measured KL (bits): 8 eps times the cross-entropy of the data trained on.

    The KL is a float64 sum of :math:`\hat P (\ln \hat P - \ln q)` whose rounding is a few eps times
    :math:`\sum \hat P (|\ln \hat P| + |\ln q|)`, about twice the cross-entropy; 8 eps covers it.
    """
    return 8.0 * 2.0 ** -52 * abs(loss_nats) / math.log(2.0)


def _change_bound(r0: dict, rl: dict, role: str) -> float:
    """e_i: the sum over the two compared models of rate_error_bound_bits at each one's KL, share and mean length."""
    return sum(rate_error_bound_bits(r["kl_to_optimum_bits"], r[f"share_{role}"], r[f"mean_length_{role}"],
                                     r.get("kl_rounding_bits", 0.0)) for r in (r0, rl))


def seed_comparison(r0: dict, rl: dict) -> dict:
    """One seed's measured and predicted changes and ratio, its bound-to-signal ratios and certificate (module doc).

    ``r0`` and ``rl`` are the seed's rows at l = 0 and at the compared l (as :func:`run` writes them).
    """
    out = {"R_predicted": ratio_of_changes(rl["gamma_align_optimum"] - r0["gamma_align_optimum"],
                                           rl["gamma_pretrain_optimum"] - r0["gamma_pretrain_optimum"])}
    change, bound = {}, {}
    for role in ROLES_OF_R:
        change[role] = rl[f"gamma_{role}"] - r0[f"gamma_{role}"]
        bound[role] = _change_bound(r0, rl, role)
        out[f"delta_gamma_{role}"] = change[role]
        out[f"delta_gamma_{role}_predicted"] = rl[f"gamma_{role}_optimum"] - r0[f"gamma_{role}_optimum"]
        out[f"bound_{role}"] = bound[role]
        out[f"bound_to_signal_{role}"] = bound[role] / abs(change[role]) if change[role] != 0 else math.inf
    out["R"] = ratio_of_changes(change["align"], change["pretrain"])
    out["R_relative_error"] = out["R"] / out["R_predicted"] - 1.0
    out["certified"] = all(out[f"bound_to_signal_{role}"] < 1.0 for role in ROLES_OF_R)
    out["R_certified_interval"] = None
    out["certified_agreement"] = None
    if out["certified"]:
        corners = [ratio_of_changes(change["align"] + sa * bound["align"], change["pretrain"] + sp * bound["pretrain"])
                   for sa in (-1, 1) for sp in (-1, 1)]
        out["R_certified_interval"] = [min(corners), max(corners)]
        out["certified_agreement"] = bool(min(corners) <= out["R_predicted"] <= max(corners))
    return out


def _verdict(comparisons: list[dict], covers: bool | None) -> str:
    """certified / certified disagreement / agrees (or not) within the optimizer's spread, not certified."""
    if any(c["certified_agreement"] is False for c in comparisons):
        return "certified disagreement"
    if all(c["certified"] for c in comparisons):
        return "certified"
    if covers is None:
        return "not certified (one seed: no spread)"
    return ("agrees within the optimizer's spread, not certified" if covers
            else "differs beyond the optimizer's spread, not certified")


def summary_rows(rows: list[dict], ks, l: float, seeds, influence: dict, kl_thresholds: dict) -> list[dict]:
    """Per k: the comparison at ``l`` of every seed with rows at 0 and l (:func:`seed_comparison`), the means and
    95% intervals over seeds, the verdict, and the seeds beyond the KL sign threshold or not certified."""
    out = []
    by = {(r["k"], r["l"], r["seed"]): r for r in rows}
    for k in sorted(ks):
        seeds_k = [s for s in seeds if (k, l, s) in by and (k, 0.0, s) in by]
        if not seeds_k:
            continue
        cmp = [seed_comparison(by[(k, 0.0, s)], by[(k, l, s)]) for s in seeds_k]
        ratios = [c["R"] for c in cmp]
        R_mean, R_ci = mean_ci95(ratios)
        rel_mean, rel_ci = mean_ci95([c["R_relative_error"] for c in cmp])
        dp_mean, dp_ci = mean_ci95([c["delta_gamma_pretrain"] for c in cmp])
        Ri_mean, Ri_ci = mean_ci95([influence[(k, s)]["R"] for s in seeds_k if (k, s) in influence])
        kls = [max(by[(k, l, s)]["kl_to_optimum_bits"], by[(k, 0.0, s)]["kl_to_optimum_bits"]) for s in seeds_k]
        thresholds = [kl_thresholds[(k, s)] for s in seeds_k]
        # in exact mode the seeds share their data and the relative error's interval is R's over R_pred
        covers = None if rel_ci is None else bool(rel_ci[0] <= 0.0 <= rel_ci[1])
        out.append({
            "k": k, "l": l, "seeds": seeds_k, "R_measured": R_mean, "R_measured_ci95": R_ci, "R_per_seed": ratios,
            "R_predicted": mean_ci95([c["R_predicted"] for c in cmp])[0],
            "R_predicted_per_seed": [c["R_predicted"] for c in cmp],
            "R_relative_error": rel_mean, "R_relative_error_ci95": rel_ci,
            "R_relative_error_per_seed": [c["R_relative_error"] for c in cmp],
            "within_10pct": bool(abs(rel_mean) <= 0.1), "ci_covers_prediction": covers,
            "delta_gamma_align_measured": mean_ci95([c["delta_gamma_align"] for c in cmp])[0],
            "delta_gamma_align_predicted": mean_ci95([c["delta_gamma_align_predicted"] for c in cmp])[0],
            "delta_gamma_pretrain_measured": dp_mean, "delta_gamma_pretrain_ci95": dp_ci,
            "delta_gamma_pretrain_predicted": mean_ci95([c["delta_gamma_pretrain_predicted"] for c in cmp])[0],
            # The measurement resolves the prediction when the interval of the small change excludes 0.
            "resolves_pretrain_change": None if dp_ci is None else bool(dp_ci[1] < 0 or dp_ci[0] > 0),
            "R_influence_l0": Ri_mean, "R_influence_l0_ci95": Ri_ci,
            "R_derivative_l0_predicted": mean_ci95([by[(k, 0.0, s)]["R_derivative_l0_predicted"] for s in seeds_k])[0],
            "max_kl_to_optimum_bits": max(kls),
            # per seed: the larger KL of the two compared models, and the KL above which the sign of dgamma_p is not certified
            "kl_to_optimum_bits_per_seed": kls, "kl_sign_threshold_bits_per_seed": thresholds,
            "seeds_beyond_kl_threshold": [s for s, kl, t in zip(seeds_k, kls, thresholds) if kl > t],
            "bound_to_signal_align_per_seed": [c["bound_to_signal_align"] for c in cmp],
            "bound_to_signal_pretrain_per_seed": [c["bound_to_signal_pretrain"] for c in cmp],
            "bound_to_signal": max(max(c["bound_to_signal_align"], c["bound_to_signal_pretrain"]) for c in cmp),
            "certified_per_seed": [c["certified"] for c in cmp],
            "R_certified_interval_per_seed": [c["R_certified_interval"] for c in cmp],
            "seeds_not_certified": [s for s, c in zip(seeds_k, cmp) if not c["certified"]],
            "verdict": _verdict(cmp, covers),
        })
    return out


def _percent(x) -> str:
    return f"{saved_number(x) * 100:+.2g}%"


def summarize(results: dict) -> str:
    """The summary as a markdown table, from results as :func:`run` returns them or as read back from
    ``results.json`` (where a non-finite value, e.g. the influence ratio of a run without influence, is ``null``)."""
    lines = [f"joint-ratio: finite-difference ratio from l = 0 to l = {results['l_ratio']} "
             f"(l* = {results['l_star']:.4g}; warm start: {results['warm_start']}); "
             f"{interval_note(min(len(s['seeds']) for s in results['summary']))}; "
             "each seed against the prediction for its own data", "",
             "| k | R measured | 95% CI | R predicted | rel. error | rel. error per seed | dgamma_p measured | 95% CI | "
             "predicted | R influence (l->0) | max KL (bits) | bound/signal | certified seeds | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    beyond, uncertified = [], []
    for s in results["summary"]:
        ci = format_ci(s["R_measured_ci95"], 4)
        pci = format_ci(s["delta_gamma_pretrain_ci95"], 3)
        certified = s["certified_per_seed"]
        lines.append(f"| {s['k']:g} | {saved_number(s['R_measured']):.4g} | {ci} | {saved_number(s['R_predicted']):.4g} | "
                     f"{_percent(s['R_relative_error'])} | {', '.join(_percent(x) for x in s['R_relative_error_per_seed'])} | "
                     f"{saved_number(s['delta_gamma_pretrain_measured']):.3g} | {pci} | "
                     f"{s['delta_gamma_pretrain_predicted']:.3g} | {saved_number(s['R_influence_l0']):.4g} "
                     f"(pred. {saved_number(s['R_derivative_l0_predicted']):.4g}) | {s['max_kl_to_optimum_bits']:.2g} | "
                     f"{saved_number(s['bound_to_signal']):.2g} | {sum(certified)}/{len(certified)} | {s['verdict']} |")
        thresholds = s["kl_sign_threshold_bits_per_seed"]
        for seed in s["seeds_beyond_kl_threshold"]:
            i = s["seeds"].index(seed)
            beyond.append(f"k = {s['k']:g}, seed {seed}: KL {s['kl_to_optimum_bits_per_seed'][i]:.2g} bits > {thresholds[i]:.2g}")
        for seed in s["seeds_not_certified"]:
            i = s["seeds"].index(seed)
            uncertified.append(f"k = {s['k']:g}, seed {seed}: KL {s['kl_to_optimum_bits_per_seed'][i]:.2g} bits, bound/signal "
                               f"{saved_number(s['bound_to_signal_align_per_seed'][i]):.2g} (dgamma_a), "
                               f"{saved_number(s['bound_to_signal_pretrain_per_seed'][i]):.2g} (dgamma_p)")
    if uncertified:
        lines += ["", "Not certified: seeds not converged far enough for the rate-error bound to cover their changes "
                      "(bound/signal >= 1), included in the means and intervals above: " + "; ".join(uncertified)]
    if beyond:
        lines += ["", "Seeds whose compared models are too far from their optima to certify the sign of dgamma_p "
                      "(rate errors up to |dgamma_p| possible), included in the intervals above: " + "; ".join(beyond)]
    return "\n".join(lines)


def plot(results: dict, folder: Path) -> list[Path]:
    """``joint_ratio_R.png`` (R against k) and ``joint_ratio_changes.png`` (rate changes against l), from results only."""
    from .._plotting import figure, save_figure

    folder = Path(folder)
    summary = results["summary"]
    fig, (ax,) = figure(width=5.5)
    ks = [s["k"] for s in summary]
    ax.plot(ks, [s["R_predicted"] for s in summary], "k-", label=f"predicted, mean over seeds (l = {results['l_ratio']})")
    ax.plot(ks, ks, "k:", label="k (R at l -> 0)")
    for s in summary:
        lo, hi = s["R_measured_ci95"] or (s["R_measured"], s["R_measured"])
        ax.errorbar([s["k"]], [s["R_measured"]], yerr=[[s["R_measured"] - lo], [hi - s["R_measured"]]], fmt="o", color="C0", capsize=3)
        ax.plot([s["k"]] * len(s["R_per_seed"]), s["R_per_seed"], ".", color="C0", alpha=0.4)
        # each seed's own prediction (sampled mode: its own data; exact mode: all the same)
        ax.plot([s["k"]] * len(s["R_predicted_per_seed"]), s["R_predicted_per_seed"], "_", color="k", ms=10)
        if s["R_influence_l0"] == s["R_influence_l0"]:
            ax.plot([s["k"]], [s["R_influence_l0"]], "s", color="C1", mfc="none")
    ax.plot([], [], "o", color="C0", label="measured (mean, 95% CI, seeds)")
    ax.plot([], [], "_", color="k", ms=10, label="predicted, per seed (its own data)")
    ax.plot([], [], "s", color="C1", mfc="none", label="influence estimate at l = 0 (stationarity check)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("k = |D_p| / |D_a|")
    ax.set_ylabel("R = dgamma_a / -dgamma_p")
    ax.legend(fontsize=7)
    paths = [save_figure(fig, folder / "joint_ratio_R.png")]

    fig, (a1, a2) = figure(ncols=2, width=4.8)
    rows = results["rows"]
    for i, k in enumerate(sorted({r["k"] for r in rows})):
        base = {r["seed"]: r for r in rows if r["k"] == k and r["l"] == 0.0}
        for j, (seed, b) in enumerate(sorted(base.items())):
            # lines: the seed's own optimum (sampled mode: its own data); dots: the seed's trained models
            pts = sorted((r for r in rows if r["k"] == k and r["seed"] == seed), key=lambda r: r["l"])
            ls = [r["l"] for r in pts]
            a1.plot(ls, [r["gamma_align_optimum"] - b["gamma_align_optimum"] for r in pts], "-", color=f"C{i}", lw=0.8,
                    label=f"k = {k:g}" if j == 0 else None)
            a2.plot(ls, [k * (r["gamma_pretrain_optimum"] - b["gamma_pretrain_optimum"]) for r in pts], "-", color=f"C{i}",
                    lw=0.8, label=f"k = {k:g}" if j == 0 else None)
            a1.plot(ls, [r["gamma_align"] - b["gamma_align"] for r in pts], "o", color=f"C{i}", ms=3)
            a2.plot(ls, [k * (r["gamma_pretrain"] - b["gamma_pretrain"]) for r in pts], "o", color=f"C{i}", ms=3)
    for ax in (a1, a2):
        ax.axvline(results["l_star"], color="grey", ls="--", lw=0.8)
        ax.set_xlabel("l = |D_t| / |D_a|  (dashed: l*)")
        ax.legend(fontsize=7)
    a1.set_ylabel("gamma_a(l) - gamma_a(0)  (bits/token)")
    a2.set_ylabel("k * (gamma_p(l) - gamma_p(0))  (bits/token)")
    a1.set_title("alignment rate: lines predicted per seed, dots measured", fontsize=8)
    a2.set_title("pre-training rate, scaled by k", fontsize=8)
    paths.append(save_figure(fig, folder / "joint_ratio_changes.png"))
    return paths
