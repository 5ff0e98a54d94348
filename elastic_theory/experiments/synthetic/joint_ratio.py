r"""joint-ratio: does a trained transformer's finite-l ratio of rate changes match R for the same data (THEORY §2.1-2.2)?

For each k, train on :math:`D_p \cup D_a` (l = 0) to the joint optimum, then on
:math:`D_p \cup D_a \cup D_t(l)` for each l of a grid below and beyond :math:`l^* = w_3/(1-w_3)`, warm
started from the l = 0 model (``warm_start``; otherwise from scratch with the same seed). The l = 0
model gets the same extra training on its own data (the paired control), so both ends of every
difference have had the same optimizer budget. Rates are exact (enumerated supports, bits per
token). Per seed the measured ratio is

.. math:: \hat R = \frac{\gamma_a(l) - \gamma_a(0)}{-(\gamma_p(l) - \gamma_p(0))},

compared with the same finite difference under the joint optimum of exactly the data trained on
(:class:`~elastic_theory.theory.elasticity.PerturbationModel`; for exact data and disjoint supports it is
the closed form's integral) and, at l -> 0, with the implicit-function (influence) derivative of the
trained network, :func:`~elastic_theory.empirical.rate_derivatives.influence_dgamma_dl`.

A seed whose compared models sit so far from their optima that the rate errors this allows could
flip the sign of the measured :math:`\Delta\gamma_p` (:func:`sign_kl_threshold_bits`) is named in the
summary with its KL, not folded into the interval without comment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ...theory.elasticity import check_k, check_l, sign_threshold
from ...infra.rundir import RunDir, unit_key
from ...stats.seedstats import saved_number
from ...data.synthetic import ROLES, SyntheticWorld, WorldConfig, check_weights
from ...infra.trainconfig import ModelConfig, StageConfig
from .. import Context, Experiment, register
from .._stats import format_ci, mean_ci95, ratio_of_changes

__all__ = ["JointRatioConfig", "quick_config", "rate_error_bound_bits", "run", "plot", "sign_kl_threshold_bits", "summarize"]


@dataclass(frozen=True)
class JointRatioConfig:
    """Full configuration (the defaults); ``quick_config()`` is the 3-minute one."""

    world: WorldConfig = WorldConfig(vocab_size=3, length=3, prompt_length=1, n_prompts=3, resolution=60)
    model: ModelConfig = ModelConfig(n_layer=1, n_embd=16, n_head=2, dtype="float64")
    w: tuple[float, float, float] = (0.6, 0.2, 0.2)
    ks: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0, 64.0)
    ls: tuple[float, ...] = (0.1, 0.2, 0.5)
    l_ratio: float = 0.2
    seeds: tuple[int, ...] = (0, 1, 2)
    mode: str = "exact"
    n_align: int = 200
    base: tuple[StageConfig, ...] = (
        StageConfig(optimizer="adam", lr=1e-2, steps=1000, schedule="cosine"),
        StageConfig(optimizer="lbfgs", lr=1.0, steps=500, schedule="constant"),
    )
    base_warm: tuple[StageConfig, ...] = (StageConfig(optimizer="lbfgs", lr=1.0, steps=300, schedule="constant"),)
    perturb: tuple[StageConfig, ...] = (StageConfig(optimizer="lbfgs", lr=1.0, steps=300, schedule="constant"),)
    warm_start: bool = True
    influence: bool = True
    influence_cg_iterations: int = 100

    def __post_init__(self):
        for k in self.ks:
            check_k(k)
        for l in self.ls:
            check_l(l)
        check_l(self.l_ratio, "l_ratio")
        check_weights(self.w)
        if not self.ks or not self.ls or not self.seeds:
            raise ValueError("ks, ls and seeds must each have at least one value")
        if self.l_ratio not in self.ls:
            raise ValueError(f"l_ratio = {self.l_ratio} must be one of ls = {list(self.ls)}")
        if 0.0 in self.ls:
            raise ValueError("ls must not contain 0: l = 0 is always trained (it is the reference)")
        if self.mode not in ("exact", "sampled"):
            raise ValueError(f"mode must be 'exact' or 'sampled', got {self.mode!r}")
        if self.w[2] == 0:
            raise ValueError("w3 = 0: the perturbation distribution is absent from pre-training and R = -1; give w3 > 0")


def quick_config() -> JointRatioConfig:
    """k = 4 and 16, two seeds, a tiny world and model: about 2 CPU minutes."""
    return JointRatioConfig(
        model=ModelConfig(n_layer=1, n_embd=16, n_head=2, dtype="float64"),
        ks=(4.0, 16.0), ls=(0.2,), l_ratio=0.2, seeds=(0, 1),
        base=(StageConfig(optimizer="adam", lr=2e-2, steps=300), StageConfig(optimizer="lbfgs", lr=1.0, steps=150, schedule="constant")),
        base_warm=(StageConfig(optimizer="lbfgs", lr=1.0, steps=150, schedule="constant"),),
        perturb=(StageConfig(optimizer="lbfgs", lr=1.0, steps=100, schedule="constant"),),
        influence_cg_iterations=100,
    )


def _datasets(world: SyntheticWorld, cfg: JointRatioConfig, k: float, l: float, seed: int):
    import numpy as np

    if cfg.mode == "exact":
        return world.datasets(k, l, cfg.w)
    rng = np.random.default_rng([world.config.seed, seed, int(k * 1000)])
    return world.datasets(k, l, cfg.w, "sampled", n_align=cfg.n_align, l_max=max(cfg.ls), rng=rng)


def run(cfg: JointRatioConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Train every (k, l, seed) model (cached units), measure, and assemble ``rows`` and ``summary``."""
    from ...empirical.rate_derivatives import influence_dgamma_dl
    from ._fit import Fitter

    world = SyntheticWorld(cfg.world)
    fitter = Fitter(run_dir, world, cfg.model, ctx.device)
    ls = (0.0,) + tuple(sorted(cfg.ls))
    rows, influence, kl_thresholds = [], {}, {}
    bar = ctx.bar(len(cfg.seeds) * len(cfg.ks) * (len(ls) + 1), "joint-ratio models")
    for seed in cfg.seeds:
        prev_base = None
        for k in sorted(cfg.ks):
            data = {l: _datasets(world, cfg, k, l, seed) for l in ls}
            optimum = {l: _optimum_rates(data[l if l > 0 else cfg.l_ratio], l) for l in ls}
            measure = {r: data[0.0].role(r) for r in ("pretrain", "align")}
            kl_thresholds[(k, seed)] = sign_kl_threshold_bits(
                optimum[cfg.l_ratio]["pretrain"] - optimum[0.0]["pretrain"],
                [data[l].pretrain.size / data[l].union.size for l in (0.0, cfg.l_ratio)],
                fitter.data(data[0.0].pretrain).mean_length)
            base_key = unit_key(base=1, k=k, seed=seed)
            warm = cfg.warm_start and prev_base is not None
            _, base_unit = fitter.fit(base_key, data[0.0].union, cfg.base_warm if warm else cfg.base, seed=seed,
                                      init=prev_base if warm else None, measure=measure)
            prev_base = base_key
            bar.update()
            if cfg.influence:
                influence[(k, seed)] = run_dir.unit(unit_key(influence=1, k=k, seed=seed), lambda: _influence(
                    fitter, base_key, seed, data[0.0], data[cfg.l_ratio], influence_dgamma_dl, cfg.influence_cg_iterations))
            for l in ls:
                d = data[l]
                folder = run_dir.path("data", unit_key(k=k, l=l, seed=seed) if cfg.mode == "sampled" else unit_key(k=k, l=l), "x").parent
                if not all((folder / f"{r}.jsonl").is_file() for r in ROLES):
                    d.export_jsonl(folder)
                key = unit_key(k=k, l=l, seed=seed)
                start = base_key if cfg.warm_start else None
                stages = cfg.perturb if cfg.warm_start else cfg.base
                _, unit = fitter.fit(key, d.union, stages, seed=seed, init=start, measure=measure)
                bar.update()
                rows.append({
                    "k": k, "l": l, "seed": seed,
                    "data": {r: run_dir.relative(folder / f"{r}.jsonl") for r in ROLES},
                    "gamma_align": unit["rates"]["align"], "gamma_pretrain": unit["rates"]["pretrain"],
                    "gamma_align_optimum": optimum[l]["align"], "gamma_pretrain_optimum": optimum[l]["pretrain"],
                    "kl_to_optimum_bits": unit["kl_to_optimum_bits"], "steps": unit["steps"],
                    "seconds": unit["seconds"], "start": "warm: l = 0 model" if cfg.warm_start else "scratch",
                    "base_kl_to_optimum_bits": base_unit["kl_to_optimum_bits"],
                    "R_derivative_l0_predicted": optimum[0.0]["R_l0"],
                })
    bar.close()
    return {"experiment": "joint-ratio", "w": list(cfg.w), "l_star": sign_threshold(cfg.w[2]), "l_ratio": cfg.l_ratio,
            "warm_start": cfg.warm_start, "rows": rows, "summary": _summary(cfg, rows, influence, kl_thresholds)}


def _optimum_rates(d, l: float) -> dict[str, float]:
    """gamma (bits/token) of D_p and D_a under the joint optimum of ``d``'s data at l (p_0 when l = 0)."""
    pm = d.perturbation_model()
    return {"pretrain": pm.rates(pm.pretrain, l).gamma_bits_per_token, "align": pm.rates(pm.align, l).gamma_bits_per_token,
            "R_l0": pm.ratio(0.0, per_token=True)}


def _influence(fitter, base_key: str, seed: int, d0, dl, influence_fn, cg_iterations: int) -> dict:
    """d gamma/dl at l = 0 of the trained l = 0 model by the implicit function theorem, and the R it implies."""
    model = fitter.load(base_key, seed)
    size_factor = d0.align.size / (d0.pretrain.size + d0.align.size)
    ev = {r: fitter.data(d0.role(r)) for r in ("pretrain", "align")}
    out = influence_fn(model, fitter.data(d0.union), fitter.data(dl.perturb), ev, size_factor, max_iter=cg_iterations)
    da, dp = out["dgamma_dl"]["align"], out["dgamma_dl"]["pretrain"]
    return {**out, "R": ratio_of_changes(da, dp)}


def _summary(cfg: JointRatioConfig, rows: list[dict], influence: dict, kl_thresholds: dict) -> list[dict]:
    out = []
    by = {(r["k"], r["l"], r["seed"]): r for r in rows}
    for k in sorted(cfg.ks):
        l = cfg.l_ratio
        seeds = [s for s in cfg.seeds if (k, l, s) in by and (k, 0.0, s) in by]
        if not seeds:
            continue
        r0, rl = by[(k, 0.0, seeds[0])], by[(k, l, seeds[0])]
        pred_da = rl["gamma_align_optimum"] - r0["gamma_align_optimum"]
        pred_dp = rl["gamma_pretrain_optimum"] - r0["gamma_pretrain_optimum"]
        da = [by[(k, l, s)]["gamma_align"] - by[(k, 0.0, s)]["gamma_align"] for s in seeds]
        dp = [by[(k, l, s)]["gamma_pretrain"] - by[(k, 0.0, s)]["gamma_pretrain"] for s in seeds]
        ratios = [ratio_of_changes(a, p) for a, p in zip(da, dp)]
        R_mean, R_ci = mean_ci95(ratios)
        dp_mean, dp_ci = mean_ci95(dp)
        infl = [influence[(k, s)]["R"] for s in seeds if (k, s) in influence]
        Ri_mean, Ri_ci = mean_ci95(infl)
        R_pred = pred_da / -pred_dp
        kls = [max(by[(k, l, s)]["kl_to_optimum_bits"], by[(k, 0.0, s)]["kl_to_optimum_bits"]) for s in seeds]
        thresholds = [kl_thresholds[(k, s)] for s in seeds]
        out.append({
            "k": k, "l": l, "seeds": seeds, "R_measured": R_mean, "R_measured_ci95": R_ci, "R_per_seed": ratios,
            "R_predicted": R_pred, "R_relative_error": R_mean / R_pred - 1.0,
            "within_10pct": bool(abs(R_mean / R_pred - 1.0) <= 0.1),
            "ci_covers_prediction": None if R_ci is None else bool(R_ci[0] <= R_pred <= R_ci[1]),
            "delta_gamma_align_measured": mean_ci95(da)[0], "delta_gamma_align_predicted": pred_da,
            "delta_gamma_pretrain_measured": dp_mean, "delta_gamma_pretrain_ci95": dp_ci,
            "delta_gamma_pretrain_predicted": pred_dp,
            # The measurement resolves the prediction when the interval of the small change excludes 0.
            "resolves_pretrain_change": None if dp_ci is None else bool(dp_ci[1] < 0 or dp_ci[0] > 0),
            "R_influence_l0": Ri_mean, "R_influence_l0_ci95": Ri_ci, "R_derivative_l0_predicted": r0["R_derivative_l0_predicted"],
            "max_kl_to_optimum_bits": max(kls),
            # per seed: the larger KL of the two compared models, and the KL above which the sign of dgamma_p is not certified
            "kl_to_optimum_bits_per_seed": kls, "kl_sign_threshold_bits_per_seed": thresholds,
            "seeds_beyond_kl_threshold": [s for s, kl, t in zip(seeds, kls, thresholds) if kl > t],
        })
    return out


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


def summarize(results: dict) -> str:
    """The summary as a markdown table, from results as :func:`run` returns them or as read back from
    ``results.json`` (where a non-finite value, e.g. the influence ratio of a run without influence, is ``null``)."""
    lines = [f"joint-ratio: finite-difference ratio from l = 0 to l = {results['l_ratio']} "
             f"(l* = {results['l_star']:.4g}; warm start: {results['warm_start']}); 95% t-intervals over seeds", "",
             "| k | R measured | 95% CI | R predicted | rel. error | dgamma_p measured | 95% CI | predicted | R influence (l->0) | max KL (bits) | KL sign threshold (bits) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    beyond = []
    for s in results["summary"]:
        ci = format_ci(s["R_measured_ci95"], 4)
        pci = format_ci(s["delta_gamma_pretrain_ci95"], 3)
        thresholds = s.get("kl_sign_threshold_bits_per_seed") or [math.nan]
        lines.append(f"| {s['k']:g} | {saved_number(s['R_measured']):.4g} | {ci} | {saved_number(s['R_predicted']):.4g} | "
                     f"{saved_number(s['R_relative_error']):+.1%} | {saved_number(s['delta_gamma_pretrain_measured']):.3g} | {pci} | "
                     f"{s['delta_gamma_pretrain_predicted']:.3g} | {saved_number(s['R_influence_l0']):.4g} "
                     f"(pred. {saved_number(s['R_derivative_l0_predicted']):.4g}) | {s['max_kl_to_optimum_bits']:.2g} | "
                     f"{min(thresholds):.2g} |")
        for seed in s.get("seeds_beyond_kl_threshold", []):
            i = s["seeds"].index(seed)
            beyond.append(f"k = {s['k']:g}, seed {seed}: KL {s['kl_to_optimum_bits_per_seed'][i]:.2g} bits > {thresholds[i]:.2g}")
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
    ax.plot(ks, [s["R_predicted"] for s in summary], "k-", label=f"predicted (same data, l = {results['l_ratio']})")
    ax.plot(ks, ks, "k:", label="k (R at l -> 0)")
    for s in summary:
        lo, hi = s["R_measured_ci95"] or (s["R_measured"], s["R_measured"])
        ax.errorbar([s["k"]], [s["R_measured"]], yerr=[[s["R_measured"] - lo], [hi - s["R_measured"]]], fmt="o", color="C0", capsize=3)
        ax.plot([s["k"]] * len(s["R_per_seed"]), s["R_per_seed"], ".", color="C0", alpha=0.4)
        if s["R_influence_l0"] == s["R_influence_l0"]:
            ax.plot([s["k"]], [s["R_influence_l0"]], "s", color="C1", mfc="none")
    ax.plot([], [], "o", color="C0", label="measured (mean, 95% CI, seeds)")
    ax.plot([], [], "s", color="C1", mfc="none", label="influence estimate at l = 0")
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
        pts = [r for r in rows if r["k"] == k]
        ls = sorted({r["l"] for r in pts})
        pred_a = [next(r for r in pts if r["l"] == l)["gamma_align_optimum"] - next(iter(base.values()))["gamma_align_optimum"] for l in ls]
        pred_p = [next(r for r in pts if r["l"] == l)["gamma_pretrain_optimum"] - next(iter(base.values()))["gamma_pretrain_optimum"] for l in ls]
        a1.plot(ls, pred_a, "-", color=f"C{i}", label=f"k = {k:g}")
        a2.plot(ls, [k * p for p in pred_p], "-", color=f"C{i}", label=f"k = {k:g}")
        for r in pts:
            b = base.get(r["seed"])
            if b is not None:
                a1.plot(r["l"], r["gamma_align"] - b["gamma_align"], "o", color=f"C{i}", ms=3)
                a2.plot(r["l"], k * (r["gamma_pretrain"] - b["gamma_pretrain"]), "o", color=f"C{i}", ms=3)
    for ax in (a1, a2):
        ax.axvline(results["l_star"], color="grey", ls="--", lw=0.8)
        ax.set_xlabel("l = |D_t| / |D_a|  (dashed: l*)")
        ax.legend(fontsize=7)
    a1.set_ylabel("gamma_a(l) - gamma_a(0)  (bits/token)")
    a2.set_ylabel("k * (gamma_p(l) - gamma_p(0))  (bits/token)")
    a1.set_title("alignment rate: lines predicted, dots measured", fontsize=8)
    a2.set_title("pre-training rate, scaled by k", fontsize=8)
    paths.append(save_figure(fig, folder / "joint_ratio_changes.png"))
    return paths


EXPERIMENT = register(Experiment(
    name="joint-ratio",
    question="Does a transformer trained to the joint optimum on D_p + D_a + D_t(l) change its rates in the ratio R(k, l, w3)?",
    prediction="THEORY §2.1-2.2: R = (w3 k + l)/(w3 - (1-w3) l), -> k as l -> 0; sign flips beyond l* = w3/(1-w3)",
    config_class=JointRatioConfig,
    quick=quick_config,
    run=run,
    plot=plot,
    summarize=summarize,
))
