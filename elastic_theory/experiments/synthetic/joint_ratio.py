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

Each seed is compared with the prediction for its own data (in sampled mode every seed draws its own).
A seed's agreement is certified only where the rate-error bound at the compared models' measured KL is
below the measured changes of both rates; otherwise it agrees (or not) within the optimizer's spread,
not certified, and the seed is named (:mod:`~elastic_theory.experiments.synthetic._joint_ratio_analysis`
derives how the bound is applied). So is a seed whose compared models sit so far from their optima that
the rate errors could flip the sign of the predicted :math:`\Delta\gamma_p` (:func:`sign_kl_threshold_bits`).
Trained to KL ~0, a model that can represent every distribution of the world reproduces the prediction
by arithmetic: what this tests is that the optimizer finds the joint optimum of the table trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...theory.elasticity import check_k, check_l, sign_threshold
from ...infra.rundir import RunDir, unit_key
from ...data.synthetic import ROLES, SyntheticWorld, WorldConfig, check_weights
from ...infra.trainconfig import ModelConfig, StageConfig
from .. import Context, Experiment, register
from .._stats import ratio_of_changes
from ._joint_ratio_analysis import kl_rounding_bits, plot, sign_kl_threshold_bits, summarize, summary_rows

__all__ = ["JointRatioConfig", "quick_config", "run"]


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
            mean_length = {r: fitter.data(d).mean_length for r, d in measure.items()}
            kl_thresholds[(k, seed)] = sign_kl_threshold_bits(
                optimum[cfg.l_ratio]["pretrain"] - optimum[0.0]["pretrain"],
                [data[l].pretrain.size / data[l].union.size for l in (0.0, cfg.l_ratio)],
                mean_length["pretrain"])
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
                    # what the rate-error bound needs: each measured dataset's share of the union trained on, its
                    # mean length (tokens), and the rounding allowance of the measured KL
                    **{f"share_{r}": d.role(r).size / d.union.size for r in measure},
                    **{f"mean_length_{r}": mean_length[r] for r in measure},
                    "kl_rounding_bits": kl_rounding_bits(unit["loss_nats"]),
                })
    bar.close()
    return {"experiment": "joint-ratio", "w": list(cfg.w), "l_star": sign_threshold(cfg.w[2]), "l_ratio": cfg.l_ratio,
            "warm_start": cfg.warm_start, "rows": rows,
            "summary": summary_rows(rows, cfg.ks, cfg.l_ratio, cfg.seeds, influence, kl_thresholds)}


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
