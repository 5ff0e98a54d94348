r"""sequential-ratio: after the joint optimum of :math:`D_p \cup D_a`, fine-tune on :math:`D_t` alone; does the ratio scale with k?

The theorem (THEORY §2) is about the joint optimum of :math:`D_p \cup D_a \cup D_t`; real perturbation
is sequential fine-tuning on :math:`D_t` alone (THEORY §4.1, open). For each k and seed, the model
trained to the joint optimum of :math:`D_p \cup D_a` (warm-started across k like joint-ratio) is
fine-tuned full-batch on :math:`D_t` with each optimizer "arm" (SGD at several learning rates, Adam),
with exact rates tracked every step. After n steps the measured ratio is

.. math:: \hat R(n) = \frac{\gamma_a(n) - \gamma_a(0)}{-(\gamma_p(n) - \gamma_p(0))},

set beside:

* **first order** (n -> 0, any learning rate): one SGD step changes each rate by
  :math:`-\eta\,\nabla\gamma_i\cdot\nabla CE_t`, so :math:`\hat R(1) \to
  (\nabla\gamma_a\cdot\nabla CE_t)/(-\nabla\gamma_p\cdot\nabla CE_t)`, computed for the network and for a
  tabular softmax learner (free logits per prefix) started at the same optimum;
* **effective l**: :math:`l_{eff}(n)` = the l whose joint optimum :math:`p_l` is closest to the model in
  :math:`KL(p_l \| p_\theta)` (convex in :math:`t = l|D_a|/(N + l|D_a|)`, so the minimum is unique), and the
  ratio the theorem predicts for it: the finite ratio from 0 to :math:`l_{eff}` for the same data and
  :math:`R(k, l_{eff}, w_3)` (THEORY §2.2). If sequential fine-tuning were the joint perturbation with a
  step-dependent l, :math:`\hat R(n)` would follow the finite prediction at :math:`l_{eff}(n)`.

The bases are trained toward the joint optimum, not exactly to it: every row carries its base's KL to
the optimum and the KL above which that distance can flip the sign of the measured
:math:`\Delta\gamma_p` at the row's step (:func:`sign_kl_threshold_bits`); the summary names the seeds
beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...theory.elasticity import check_k, ratio_R, sign_threshold
from ...theory.units import LN2
from ...infra.rundir import RunDir, unit_key
from ...stats.seedstats import saved_number
from ...data.synthetic import SyntheticWorld, WeightedSequences, WorldConfig, check_weights
from ...infra.trainconfig import ModelConfig, StageConfig
from .. import Context, Experiment, register
from .._stats import mean_ci95

__all__ = ["SequentialRatioConfig", "fit_effective_l", "quick_config", "run", "plot", "sign_kl_threshold_bits", "summarize"]


@dataclass(frozen=True)
class SequentialRatioConfig:
    """Full configuration (the defaults); ``quick_config()`` is the 3-minute one."""

    world: WorldConfig = WorldConfig(vocab_size=3, length=3, prompt_length=1, n_prompts=3, resolution=60)
    model: ModelConfig = ModelConfig(n_layer=1, n_embd=16, n_head=2, dtype="float64")
    w: tuple[float, float, float] = (0.6, 0.2, 0.2)
    ks: tuple[float, ...] = (4.0, 16.0, 64.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    base: tuple[StageConfig, ...] = (
        StageConfig(optimizer="adam", lr=1e-2, steps=1000, schedule="cosine"),
        StageConfig(optimizer="lbfgs", lr=1.0, steps=500, schedule="constant"),
    )
    base_warm: tuple[StageConfig, ...] = (StageConfig(optimizer="lbfgs", lr=1.0, steps=300, schedule="constant"),)
    arms: tuple[StageConfig, ...] = (
        StageConfig(optimizer="sgd", lr=1e-5, steps=40, schedule="constant"),
        StageConfig(optimizer="sgd", lr=1e-4, steps=40, schedule="constant"),
        StageConfig(optimizer="sgd", lr=1e-3, steps=40, schedule="constant"),
        StageConfig(optimizer="sgd", lr=1e-2, steps=40, schedule="constant"),
        StageConfig(optimizer="adam", lr=1e-4, steps=40, schedule="constant"),
        StageConfig(optimizer="adam", lr=1e-3, steps=40, schedule="constant"),
    )
    report_steps: tuple[int, ...] = (1, 2, 5, 10, 20, 40)

    def __post_init__(self):
        for k in self.ks:
            check_k(k)
        check_weights(self.w)
        if not self.ks or not self.seeds or not self.arms:
            raise ValueError("ks, seeds and arms must each have at least one value")
        if self.w[2] == 0:
            raise ValueError("w3 = 0: the perturbation distribution is absent from pre-training; give w3 > 0")
        for arm in self.arms:
            if arm.batch_size is not None or arm.optimizer == "lbfgs":
                raise ValueError("arms are full-batch sgd or adam fine-tuning runs (batch_size None, optimizer sgd/adam)")
        longest = max(a.steps for a in self.arms)
        if not self.report_steps or min(self.report_steps) < 1 or max(self.report_steps) > longest:
            raise ValueError(f"report_steps must lie in 1..{longest} (the longest arm)")


def quick_config() -> SequentialRatioConfig:
    """k = 4 and 16, one seed, two arms, the quick joint-ratio world: about 2 CPU minutes."""
    return SequentialRatioConfig(
        model=ModelConfig(n_layer=1, n_embd=16, n_head=2, dtype="float64"),
        ks=(4.0, 16.0), seeds=(0,),
        base=(StageConfig(optimizer="adam", lr=2e-2, steps=300), StageConfig(optimizer="lbfgs", lr=1.0, steps=150, schedule="constant")),
        base_warm=(StageConfig(optimizer="lbfgs", lr=1.0, steps=150, schedule="constant"),),
        arms=(StageConfig(optimizer="sgd", lr=1e-3, steps=20, schedule="constant"),
              StageConfig(optimizer="adam", lr=1e-4, steps=20, schedule="constant")),
        report_steps=(1, 5, 20),
    )


def arm_name(arm: StageConfig) -> str:
    """``"sgd lr=0.001"``: how results name an arm."""
    return f"{arm.optimizer} lr={arm.lr:g}"


def fit_effective_l(log_q: np.ndarray, base_counts: np.ndarray, perturb_probs: np.ndarray, n_base: float, n_align: float) -> dict:
    r"""The l whose joint optimum :math:`p_l` is closest to the model :math:`q` in :math:`KL(p_l \| q)` (bits).

    On a common list of sequences: ``log_q`` the model's :math:`\ln q(x)`, ``base_counts`` the counts of
    :math:`D_p \cup D_a` (total ``n_base`` = N), ``perturb_probs`` :math:`P_t(x)`. With
    :math:`t = l|D_a|/(N + l|D_a|)`, :math:`p_l = (1-t)p_0 + tP_t` is linear in t and the KL convex, so a
    bounded scalar search on :math:`t \in [0, 1)` finds the unique minimum; :math:`l = tN/(|D_a|(1-t))`.
    Returns ``{"l_eff", "t_eff", "kl_bits"}`` (``kl_bits`` at the minimum: how far the model is from
    every :math:`p_l`).
    """
    from scipy.optimize import minimize_scalar

    p0 = np.asarray(base_counts, dtype=np.float64) / n_base
    pt = np.asarray(perturb_probs, dtype=np.float64)

    def kl(t: float) -> float:
        p = (1 - t) * p0 + t * pt
        nz = p > 0
        return float((p[nz] * (np.log(p[nz]) - log_q[nz])).sum()) / math.log(2.0)

    res = minimize_scalar(kl, bounds=(0.0, 1.0 - 1e-12), method="bounded", options={"xatol": 1e-14})
    t = float(res.x)
    return {"l_eff": t * n_base / (n_align * (1 - t)), "t_eff": t, "kl_bits": float(res.fun)}


def sign_kl_threshold_bits(delta_ce_align_nats: float, align_share: float, kl_from_base_nats: float,
                           max_abs_log_q_change: float) -> float:
    r"""The base's KL to its optimum (bits per response) above which it can flip the sign of :math:`\Delta\gamma_p`.

    For a base :math:`q_0` and the model :math:`q_n` after n fine-tuning steps, both normalized on the
    world's support, :math:`v = \ln q_n - \ln q_0` and :math:`\hat p` the distribution of
    :math:`D_p \cup D_a` (shares :math:`\pi_p, \pi_a`), exactly (nats per response; :math:`\sum q_0 v =
    -KL(q_0\|q_n)` because :math:`q_n` is normalized):

    .. math:: \pi_p \Delta CE_p = \underbrace{-\pi_a \Delta CE_a + KL(q_0\|q_n)}_{T}
              - \sum_x (\hat p(x) - q_0(x))\, v(x).

    At the optimum (:math:`q_0 = \hat p`) the last term vanishes: :math:`-\pi_a\Delta CE_a` is the
    first-order identity (ratio k) and :math:`KL(q_0\|q_n) \ge 0` the second-order term that always
    pushes :math:`CE_p` up. Off it, :math:`|\sum(\hat p - q_0)v| \le \|v\|_\infty \|\hat p - q_0\|_1 \le
    \|v\|_\infty \sqrt{2\,KL(\hat p\|q_0)}` (Pinsker), so :math:`\Delta CE_p` has the sign of T whenever

    .. math:: KL(\hat p\|q_0) < \delta^* = \frac{T^2}{2\|v\|_\infty^2};

    above :math:`\delta^*` the base's distance from the optimum can flip it (the bound is loose: it
    need not). Arguments: :math:`\Delta CE_a` (nats per response), :math:`\pi_a`,
    :math:`KL(q_0\|q_n)` (nats) and :math:`\|v\|_\infty` (nats); returns :math:`\delta^*` in bits
    (infinite when the step changed nothing).
    """
    if max_abs_log_q_change == 0:
        return math.inf
    T = -align_share * delta_ce_align_nats + kl_from_base_nats
    return T * T / (2.0 * max_abs_log_q_change ** 2) / LN2


def run(cfg: SequentialRatioConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Fit the bases (cached), run every arm with exact tracking (cached), assemble rows, first-order ratios and a summary."""
    from ...empirical.training import TabularModel, first_order_changes
    from ._fit import Fitter

    world = SyntheticWorld(cfg.world)
    fitter = Fitter(run_dir, world, cfg.model, ctx.device)
    rows, first_order, tracks = [], [], {}
    bar = ctx.bar(len(cfg.seeds) * len(cfg.ks) * (1 + len(cfg.arms)), "sequential-ratio runs")
    for seed in cfg.seeds:
        prev = None
        for k in sorted(cfg.ks):
            d = world.datasets(k, 1.0, cfg.w)  # D_t's distribution is P3; its size does not enter sequential fine-tuning
            base_data = d.without_perturbation()
            measure = {"pretrain": d.pretrain, "align": d.align}
            key = unit_key(base=1, k=k, seed=seed)
            _, base_unit = fitter.fit(key, base_data.union, cfg.base_warm if prev else cfg.base, seed=seed, init=prev,
                                      measure=measure)
            base_kl = base_unit["kl_to_optimum_bits"]
            prev = key
            bar.update()
            support = _support(world)
            pm = d.perturbation_model()

            def first(key=key):
                model = fitter.load(key, seed)
                ev = {r: fitter.data(measure[r]) for r in measure}
                net = first_order_changes(model, fitter.data(d.perturb), ev, 1.0)
                tab = TabularModel(base_data.union, fitter.vocab)
                tab_fo = first_order_changes(tab, fitter.data(d.perturb), ev, 1.0)
                return {"network": net["align"] / -net["pretrain"], "tabular": tab_fo["align"] / -tab_fo["pretrain"]}

            fo = run_dir.unit(unit_key(first_order=1, k=k, seed=seed), first)
            first_order.append({"k": k, "seed": seed, "ratio_network": fo["network"], "ratio_tabular": fo["tabular"],
                                "R_predicted_l0": pm.ratio(0.0, per_token=True), "base_kl_to_optimum_bits": base_kl})
            align_share, align_length = d.align.size / base_data.union.size, fitter.data(d.align).mean_length
            for arm in cfg.arms:
                akey = unit_key(k=k, seed=seed, opt=arm.optimizer, lr=arm.lr)
                unit = run_dir.unit(akey, lambda: _run_arm(fitter, key, seed, d, base_data, arm, cfg, support, akey))
                tracks[akey] = unit["track"]
                base_rates = unit["curve"][0]
                for point in unit["curve"][1:]:
                    da = point["align"] - base_rates["align"]
                    dp = point["pretrain"] - base_rates["pretrain"]
                    l_eff = point["l_eff"]
                    pred = _finite_prediction(pm, l_eff)
                    threshold = math.nan if "max_abs_log_q_change" not in point else sign_kl_threshold_bits(
                        da * align_length * LN2, align_share, point["kl_from_base_bits"] * LN2, point["max_abs_log_q_change"])
                    rows.append({
                        "k": k, "seed": seed, "arm": arm_name(arm), "optimizer": arm.optimizer, "lr": arm.lr,
                        "step": point["step"], "delta_gamma_align": da, "delta_gamma_pretrain": dp,
                        "ratio": da / -dp if dp != 0 else math.inf, "l_eff": l_eff, "kl_to_p_leff_bits": point["kl_bits"],
                        "R_finite_predicted_at_l_eff": pred, "R_closed_form_at_l_eff": _closed(k, l_eff, cfg.w[2]),
                        "delta_gamma_align_predicted_at_l_eff": pm.rates(pm.align, l_eff).gamma_bits_per_token
                        - pm.rates(pm.align, 0.0).gamma_bits_per_token,
                        "delta_gamma_pretrain_predicted_at_l_eff": pm.rates(pm.pretrain, l_eff).gamma_bits_per_token
                        - pm.rates(pm.pretrain, 0.0).gamma_bits_per_token,
                        "base_kl_to_optimum_bits": base_kl, "kl_sign_threshold_bits": threshold,
                    })
                bar.update()
    bar.close()
    return {"experiment": "sequential-ratio", "w": list(cfg.w), "l_star": sign_threshold(cfg.w[2]), "rows": rows,
            "first_order": first_order, "tracks": tracks, "summary": _summary(rows, first_order),
            "scaling": _scaling(rows)}


def _closed(k: float, l: float, w3: float) -> float:
    import warnings

    from ...theory.elasticity import SignClaimWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignClaimWarning)
        return ratio_R(k, l, w3)


def _finite_prediction(pm, l: float) -> float:
    """(gamma_a(p_l) - gamma_a(p_0)) / -(gamma_p(p_l) - gamma_p(p_0)) per token, for the same data; nan at l = 0."""
    if not l > 0:
        return math.nan
    da = pm.rates(pm.align, l).gamma_bits_per_token - pm.rates(pm.align, 0.0).gamma_bits_per_token
    dp = pm.rates(pm.pretrain, l).gamma_bits_per_token - pm.rates(pm.pretrain, 0.0).gamma_bits_per_token
    return da / -dp if dp != 0 else math.inf


def _support(world: SyntheticWorld) -> WeightedSequences:
    seqs = tuple(s for c in world.components for s in c.sequences)
    return WeightedSequences(tuple(dict.fromkeys(seqs)), np.ones(len(dict.fromkeys(seqs)), dtype=np.int64))


def _run_arm(fitter, base_key: str, seed: int, d, base_data, arm: StageConfig, cfg, support, key: str) -> dict:
    """Fine-tune the base on D_t alone with ``arm``; exact rates every step, l_eff at the report steps."""
    import torch

    from ...empirical.training import ExactRateTracker, sequence_log_probs, train_stage

    model = fitter.load(base_key, seed)
    path = fitter.run.path("tracks", f"{key}.jsonl")
    path.unlink(missing_ok=True)
    tracker = ExactRateTracker({"pretrain": fitter.data(d.pretrain), "align": fitter.data(d.align)}, path)
    sup = fitter.data(support)
    index = {s: i for i, s in enumerate(sup.sequences)}
    base_counts = np.zeros(len(index))
    for s, c in zip(base_data.union.sequences, base_data.union.counts):
        base_counts[index[s]] += c
    pt = np.zeros(len(index))
    for s, p in zip(d.perturb.sequences, d.perturb.probs):
        pt[index[s]] += p
    n_base, n_align = float(base_counts.sum()), float(d.align.size)
    curve, log_q0 = [], []

    def record(step: int, loss: float = math.nan) -> None:
        rates = {r["dataset"]: r["bits_per_token"] for r in tracker.measure(model, step)}
        point = {"step": step, **rates}
        if step == 0 or step in cfg.report_steps:
            with torch.no_grad():
                log_q = sequence_log_probs(model, sup).cpu().numpy()
            point.update(fit_effective_l(log_q, base_counts, pt, n_base, n_align))
            if step == 0:
                log_q0.append(log_q)
            # what sign_kl_threshold_bits needs: KL(q_0 || q_n) and max |ln q_n - ln q_0| over the support
            point.update(kl_from_base_bits=float((np.exp(log_q0[0]) * (log_q0[0] - log_q)).sum()) / LN2,
                         max_abs_log_q_change=float(np.abs(log_q - log_q0[0]).max()))
            curve.append(point)

    record(0)
    train_stage(model, fitter.data(d.perturb), arm, on_step=record)
    return {"curve": curve, "track": fitter.run.relative(path)}


def _summary(rows: list[dict], first_order: list[dict]) -> list[dict]:
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


def _scaling(rows: list[dict]) -> list[dict]:
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
    """Markdown tables: ratio against k per arm and step, and the log-log slope, from results as :func:`run` returns
    them or as read back from ``results.json`` (where a non-finite value, e.g. the slope over one k, is ``null``)."""
    lines = ["sequential-ratio: Delta gamma_a / -Delta gamma_p after n steps on D_t alone (mean, 95% t-interval over seeds)", "",
             "| k | arm | step | ratio | 95% CI | ratio/k | Delta gamma_p | seeds with gamma_p up | seeds beyond KL threshold | l_eff | predicted at l_eff |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    beyond: dict[tuple, list] = {}
    for s in results["summary"]:
        ci = "n/a" if s["ratio_ci95"] is None else f"[{s['ratio_ci95'][0]:.4g}, {s['ratio_ci95'][1]:.4g}]"
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
        ci = "n/a" if s["slope_ci95"] is None else f"[{s['slope_ci95'][0]:.3g}, {s['slope_ci95'][1]:.3g}]"
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


EXPERIMENT = register(Experiment(
    name="sequential-ratio",
    question="Fine-tuning on D_t alone after the joint optimum of D_p + D_a: does Delta gamma_a / -Delta gamma_p scale with k?",
    prediction="THEORY §4.1 (open); first order and the joint optimum at l_eff as references (§2.1-2.2)",
    config_class=SequentialRatioConfig,
    quick=quick_config,
    run=run,
    plot=plot,
    summarize=summarize,
))
