r"""capacity: in a world the network cannot memorize, does the measured ratio of rate changes still follow R (THEORY §2.1-2.2)?

The world has far more sequences than any swept model has parameters (``world.n_general`` sequences of
length 8 over 16 tokens for :math:`P_1`, ``world.n_prompts`` prompts answered differently by :math:`P_2` and
:math:`P_3`); the datasets are **sampled** from it (``n_align`` draws of :math:`P_2`, :math:`k\,n_{align}` of the
mixture, :math:`l\,n_{align}` of :math:`P_3`), separately for each seed. For each model of ``models`` (the
capacity sweep), each k and seed: train on :math:`D_p \cup D_a` (l = 0) from scratch, then warm from it on
:math:`D_p \cup D_a \cup D_t(l)` for each l (l below and beyond :math:`l^* = w_3/(1-w_3)`) and, as the paired
control, on the l = 0 union again with the same budget. Rates are exact sums over each seed's own D_p and
D_a, and over fresh held-out samples of the same distributions (generalization). The prediction is the
tabular one of exactly the seed's sampled data (the joint optimum of the sampled union, which a model that
memorized the training sets would reach); the KL to it on the training union says how far each model is
from that; the held-out KL is set beside its floor (the true world's KL to the held-out sample).
The analysis and table are in :mod:`._capacity_analysis`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.synthetic import SyntheticWorld, WorldConfig, check_weights
from ...infra.rundir import RunDir, unit_key
from ...infra.trainconfig import ModelConfig, StageConfig
from ...theory.elasticity import check_k, check_l, sign_threshold
from .. import Context, Experiment, register
from ._capacity_analysis import cell_summary, summarize_table
from ._capacity_plot import plot

__all__ = ["CapacityConfig", "quick_config", "run", "plot", "summarize"]

_WORLD = WorldConfig(vocab_size=16, length=8, prompt_length=3, n_general=100_000, n_prompts=2000, resolution=100_000)


@dataclass(frozen=True)
class CapacityConfig:
    """Full configuration (the defaults); ``quick_config()`` is the 3-minute one."""

    world: WorldConfig = _WORLD
    models: tuple[ModelConfig, ...] = (
        ModelConfig(n_layer=1, n_embd=4, n_head=1), ModelConfig(n_layer=1, n_embd=16, n_head=2),
        ModelConfig(n_layer=1, n_embd=32, n_head=2), ModelConfig(n_layer=2, n_embd=64, n_head=2),
    )
    w: tuple[float, float, float] = (0.6, 0.2, 0.2)
    ks: tuple[float, ...] = (4.0, 16.0, 64.0)
    ls: tuple[float, ...] = (0.1, 0.5)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_align: int = 20
    tolerance: float = 0.1
    base: tuple[StageConfig, ...] = (
        StageConfig(optimizer="adam", lr=1e-2, steps=1000, schedule="cosine"),
        StageConfig(optimizer="lbfgs", lr=1.0, steps=500, schedule="constant"),
    )
    perturb: tuple[StageConfig, ...] = (StageConfig(optimizer="lbfgs", lr=1.0, steps=300, schedule="constant"),)

    def __post_init__(self):
        for k in self.ks:
            check_k(k)
        for l in self.ls:
            check_l(l)
        check_weights(self.w)
        if not self.models or not self.ks or not self.ls or not self.seeds:
            raise ValueError("models, ks, ls and seeds must each have at least one value")
        if 0.0 in self.ls:
            raise ValueError("ls must not contain 0: l = 0 is always trained (it is the reference)")
        if self.w[2] == 0:
            raise ValueError("w3 = 0: the perturbation distribution is absent from pre-training; give w3 > 0")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {self.tolerance!r}")


def quick_config() -> CapacityConfig:
    """Four one-layer widths, k = 4 and 16, two seeds, a smaller world: at most 3 CPU minutes."""
    return CapacityConfig(
        world=WorldConfig(vocab_size=16, length=8, prompt_length=3, n_general=20_000, n_prompts=500, resolution=20_000),
        models=tuple(ModelConfig(n_layer=1, n_embd=e, n_head=h) for e, h in ((2, 1), (4, 1), (8, 2), (32, 2))),
        ks=(4.0, 16.0), seeds=(0, 1), n_align=10,
        base=(StageConfig(optimizer="adam", lr=2e-2, steps=200), StageConfig(optimizer="lbfgs", lr=1.0, steps=100, schedule="constant")),
        perturb=(StageConfig(optimizer="lbfgs", lr=1.0, steps=60, schedule="constant"),),
    )


def _label(m: ModelConfig) -> str:
    return f"{m.n_layer}x{m.n_embd}"


def _wrong_k(ks: list[float], k: float) -> float:
    """The control's k: the next k of the sweep (the first after the last); 4k for a single k."""
    if len(ks) == 1:
        return 4.0 * k
    return ks[(ks.index(k) + 1) % len(ks)]


def _sample(world: SyntheticWorld, cfg: CapacityConfig, k: float, l: float, seed: int, stream: int):
    """The seed's datasets at (k, l); ``stream`` 0 is the training draw, 1 the held-out draw (nested in l)."""
    rng = np.random.default_rng([world.config.seed, seed, int(k * 1000), stream])
    return world.datasets(k, l, cfg.w, "sampled", n_align=cfg.n_align, l_max=max(cfg.ls), rng=rng)


def _optimum(data, l: float, perturb_from) -> dict[str, float]:
    """gamma (bits/token) of D_p and D_a under the joint optimum of ``data`` at l (tabular: exactly the sampled data)."""
    pm = data.perturbation_model(perturb_from.perturb)
    return {"align": pm.rates(pm.align, l).gamma_bits_per_token, "pretrain": pm.rates(pm.pretrain, l).gamma_bits_per_token}


def _true_kl_bits(world: SyntheticWorld, cfg: CapacityConfig, k: float, l: float, sample) -> float:
    """KL(sample || p_l of the true world) in bits per response: the held-out KL a perfect learner of the world scores."""
    w1, w2, w3 = cfg.w
    weights = (k * w1, k * w2 + 1.0, k * w3 + l)
    p: dict[tuple[int, ...], float] = {}
    for comp, wt in zip(world.components, weights):
        for s, q in zip(comp.sequences, comp.probs):
            p[s] = p.get(s, 0.0) + wt * q / (k + 1.0 + l)
    emp = sample.probs
    return float(sum(e * np.log2(e / p[s]) for s, e in zip(sample.sequences, emp) if e > 0))


def _cell_data(world, cfg, k: float, seed: int, ls, k_wrong: float) -> dict:
    train = {l: _sample(world, cfg, k, l, seed, 0) for l in ls}
    held = {l: _sample(world, cfg, k, l, seed, 1) for l in ls}
    wrong = {l: _sample(world, cfg, k_wrong, l, seed, 0) for l in ls}
    top = max(ls)
    return {"train": train, "held": held,
            "optimum": {l: _optimum(train[top], l, train[top]) for l in ls},
            "optimum_wrong": {l: _optimum(wrong[top], l, wrong[top]) for l in ls},
            "floor": {l: _true_kl_bits(world, cfg, k, l, held[l].union) for l in ls}}


def run(cfg: CapacityConfig, run_dir: RunDir, ctx: Context) -> dict | None:
    """Train every (model, k, seed) base and its (l, seed) continuations (cached units); measure; summarize.

    Under ``ctx.shard`` only this shard's (model, k, seed) cells are computed and None is returned."""
    from ...empirical.training import kl_bits
    from ._fit import Fitter

    world = SyntheticWorld(cfg.world)
    ls, ks = (0.0,) + tuple(sorted(cfg.ls)), sorted(cfg.ks)
    rows = []
    bar = ctx.bar(len(cfg.models) * len(ks) * len(cfg.seeds) * (len(ls) + 1), "capacity models")
    data = {(k, s): _cell_data(world, cfg, k, s, ls, _wrong_k(ks, k)) for k in ks for s in cfg.seeds}
    fitters = [Fitter(run_dir, world, model, ctx.device) for model in cfg.models]
    sizes = [sum(p.numel() for p in f.new_model(0).parameters()) for f in fitters]
    cells = [(m, k, s) for m in range(len(cfg.models)) for k in ks for s in cfg.seeds]
    # a cell's cost: parameters x training sequences (about k + 1 + l per alignment draw), the same for every shard
    mine = ctx.owned(cells, [sizes[m] * (k + 1 + max(ls)) for m, k, _ in cells])
    for m, model in enumerate(cfg.models):
        fitter, n_params = fitters[m], sizes[m]
        for k in ks:
            for seed in cfg.seeds:
                if (m, k, seed) not in mine:  # another shard's (--shard)
                    bar.update(len(ls) + 1)
                    continue
                d = data[(k, seed)]
                d0, h0 = d["train"][0.0], d["held"][0.0]
                measure = {"pretrain": d0.pretrain, "align": d0.align, "pretrain_heldout": h0.pretrain, "align_heldout": h0.align}
                base_key = unit_key(base=1, model=m, k=k, seed=seed)
                fitter.fit(base_key, d0.union, cfg.base, seed=seed, measure=measure)
                bar.update()
                for l in ls:
                    key = unit_key(model=m, k=k, l=l, seed=seed)
                    net, unit = fitter.fit(key, d["train"][l].union, cfg.perturb, seed=seed, init=base_key, measure=measure)
                    held = run_dir.unit(unit_key(heldout=1, model=m, k=k, l=l, seed=seed),
                                        lambda: {"kl_bits": kl_bits(net, fitter.data(d["held"][l].union))})
                    bar.update()
                    rates, opt, wrong = unit["rates"], d["optimum"][l], d["optimum_wrong"][l]
                    rows.append({
                        "capacity": _label(model), "model": m, "n_parameters": n_params, "k": k, "l": l, "seed": seed,
                        "k_wrong": _wrong_k(ks, k), "gamma_align": rates["align"], "gamma_pretrain": rates["pretrain"],
                        "gamma_align_heldout": rates["align_heldout"], "gamma_pretrain_heldout": rates["pretrain_heldout"],
                        "gamma_align_optimum": opt["align"], "gamma_pretrain_optimum": opt["pretrain"],
                        "gamma_align_optimum_wrong_k": wrong["align"], "gamma_pretrain_optimum_wrong_k": wrong["pretrain"],
                        "kl_train_bits": unit["kl_to_optimum_bits"], "kl_heldout_bits": held["kl_bits"],
                        "kl_heldout_floor_bits": d["floor"][l], "n_distinct_train": len(d["train"][l].union.sequences),
                        "steps": unit["steps"], "seconds": unit["seconds"],
                    })
    bar.close()
    if len(mine) < len(cells):
        return None  # this shard's units are saved; the run without --shard collects every unit
    return {"experiment": "capacity", "w": list(cfg.w), "l_star": sign_threshold(cfg.w[2]), "n_align": cfg.n_align,
            "tolerance": cfg.tolerance, "world_sequences": len(world.components[0].sequences) + 2 * cfg.world.n_prompts,
            "rows": rows, "summary": summarize_rows(rows, cfg.tolerance)}


def summarize_rows(rows: list[dict], tolerance: float) -> list[dict]:
    """One :func:`~._capacity_analysis.cell_summary` per (model, k, l > 0), in sweep order."""
    cells = []
    for key in dict.fromkeys((r["model"], r["k"], r["l"]) for r in rows if r["l"] > 0):
        m, k, l = key
        cells.append(cell_summary([r for r in rows if r["model"] == m and r["k"] == k and r["l"] in (0.0, l)], tolerance))
    return cells


def summarize(results: dict) -> str:
    """The summary as a markdown table (:func:`~._capacity_analysis.summarize_table`)."""
    return summarize_table(results)


EXPERIMENT = register(Experiment(
    name="capacity",
    question="In a world with far more sequences than parameters, sampled data: does R_meas follow the tabular R_pred of the same data, from underfitting to memorizing?",
    prediction="THEORY §2.1-2.2 applied to exactly the sampled datasets (their joint optimum); sign flip beyond l* = w3/(1-w3)",
    config_class=CapacityConfig,
    quick=quick_config,
    run=run,
    plot=plot,
    summarize=summarize,
    shardable=True,
))
