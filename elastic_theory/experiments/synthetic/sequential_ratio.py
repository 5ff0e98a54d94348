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

What the theorem says is a sign: gamma_a rises and gamma_p falls. So every (k, arm, step) first reports, per seed,
whether both signs are right, one is wrong (which) or both are wrong; the ratio and its slope on ln k are then
taken over the seeds with both signs right only, and the slope's interval is over seeds (a seed's bases for
increasing k are one warm-start chain, so its points are one unit): :mod:`._sequential_ratio_analysis`.

The first-order ratio cannot carry the conclusion: at a stationary point of the joint loss,
:math:`|D_p|\nabla CE_p + |D_a|\nabla CE_a = 0`, so every small step has ratio k (per token R(k, 0)). The
direction controls (:mod:`._sequential_controls`) show it: one step of the D_t step's norm along D_a, D_p and a
random direction, from the same base, beside D_t's; the first-order ratio at the base is reported as a
stationarity check (how close the base is to stationary), not as evidence.

The bases are trained toward the joint optimum, not exactly to it: every row carries its base's KL to
the optimum and the KL above which that distance can flip the sign of the measured
:math:`\Delta\gamma_p` at the row's step (:func:`sign_kl_threshold_bits`); the summary names the seeds
beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...theory.elasticity import check_k, ratio_R, sign_threshold
from ...theory.units import LN2
from ...infra.rundir import RunDir, unit_key
from ...data.synthetic import SyntheticWorld, WeightedSequences, WorldConfig, check_weights
from ...infra.trainconfig import ModelConfig, StageConfig
from .. import Context, Experiment, register
from .._stats import ratio_of_changes
from ._sequential_ratio_analysis import (control_summary, plot, scaling_over_seed_chains, scaling_slopes, sign_outcome, summarize,
                                          summary_rows)

__all__ = ["SequentialRatioConfig", "arm_name", "fit_effective_l", "quick_config", "run", "sign_kl_threshold_bits"]


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
    from ...empirical.rate_derivatives import first_order_changes
    from ...empirical.training import TabularModel
    from ._fit import Fitter
    from ._sequential_controls import direction_controls

    world = SyntheticWorld(cfg.world)
    fitter = Fitter(run_dir, world, cfg.model, ctx.device)
    rows, first_order, tracks, controls = [], [], {}, []
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
                ckey = unit_key(controls=1, k=k, seed=seed, opt=arm.optimizer, lr=arm.lr)
                cunit = run_dir.unit(ckey, lambda: {"controls": direction_controls(
                    fitter.load(key, seed), {r: fitter.data(getattr(d, r)) for r in ("perturb", "align", "pretrain")}, arm, seed)})
                controls += [{"k": k, "seed": seed, "arm": arm_name(arm), **c} for c in cunit["controls"]]
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
                        "ratio": ratio_of_changes(da, dp), "signs": sign_outcome(da, dp), "l_eff": l_eff, "kl_to_p_leff_bits": point["kl_bits"],
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
            "first_order": first_order, "tracks": tracks, "summary": summary_rows(rows, first_order),
            "scaling": scaling_slopes(rows), "scaling_both_right": scaling_over_seed_chains(rows),
            "direction_controls": controls, "direction_controls_summary": control_summary(controls, first_order)}


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
    return ratio_of_changes(da, dp)


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
