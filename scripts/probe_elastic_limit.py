"""The probe's elastic limit against the step at which sequential fine-tuning's pre-training rate actually turns up.

    nice -n 10 python scripts/probe_elastic_limit.py [--lr 1e-4] [--max-steps 1000]

On the sequential-ratio experiment's world, model and base schedule (its default config: k = 4, 16, 64 and seeds
0, 1, 2, each seed's bases one warm-start chain over k), the base is trained toward the joint optimum of
D_p + D_a; then, from the base:

* the probe's step u is one full-batch SGD step at ``--lr`` on D_t's loss as the experiment's arms take it (nats
  per response, ``nll``); its first-order change of the pre-training rate g_p.u, its curvature u^T H_p u (a
  Hessian-vector product) and s* = 2(-g_p.u)/(u^T H_p u): the predicted change is lowest after s*/2 steps of u
  and back at 0 after s* (``elastic_limit``); R1 = (g_a.u)/(-g_p.u) against k as the stationarity check;
* the measured curve: SGD at the same lr on D_t for up to ``--max-steps`` steps with the exact rate gamma_p after
  every step: the step of its minimum and the first step at which it is above its start.

Prints one markdown table (docs/probe.md quotes it). About 5 minutes on one loaded core.
"""

from __future__ import annotations

import argparse
import math

import torch

from elastic_theory.data.synthetic import SyntheticWorld
from elastic_theory.empirical.probe import dot, elastic_limit, gradient, optimizer_update, quadratic_form, ratio
from elastic_theory.empirical.training import SequenceData, build_model, gamma_tensor, kl_bits, nll, train_stage
from elastic_theory.experiments.synthetic.sequential_ratio import SequentialRatioConfig
from elastic_theory.infra.trainconfig import StageConfig


def _base_chains(cfg: SequentialRatioConfig, world: SyntheticWorld):
    """Per seed, the bases for increasing k, each warm-started from the previous k's (as the experiment fits them)."""
    vocab, length = world.config.data_vocab_size, world.config.length
    for seed in cfg.seeds:
        model = None
        for k in sorted(cfg.ks):
            d = world.datasets(k, 1.0, cfg.w)
            union = SequenceData(d.without_perturbation().union, vocab)
            if model is None:
                model = build_model(cfg.model, vocab, length, seed=seed)
            gen = torch.Generator().manual_seed(seed)
            for stage in (cfg.base_warm if k != min(cfg.ks) else cfg.base):
                train_stage(model, union, stage, generator=gen)
            yield k, seed, model, d, kl_bits(model, union)


def probe_row(model, d, vocab: int, lr: float, max_steps: int) -> dict:
    """The prediction at the base and the measured curve of gamma_p under SGD on D_t (module docstring)."""
    data = {r: SequenceData(getattr(d, r), vocab) for r in ("pretrain", "align", "perturb")}
    params = [p for p in model.parameters() if p.requires_grad]
    g = {r: gradient(params, [gamma_tensor(model, data[r])]) for r in ("pretrain", "align")}
    u = optimizer_update(params, gradient(params, [nll(model, data["perturb"])]), "sgd", lr)
    slope, curvature = dot(g["pretrain"], u), quadratic_form(params, [gamma_tensor(model, data["pretrain"])], u)
    s_star, why = elastic_limit(slope, curvature)
    state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    start = float(gamma_tensor(model, data["pretrain"]).detach())
    curve = []

    def on_step(step: int, loss: float) -> None:
        curve.append(float(gamma_tensor(model, data["pretrain"]).detach()) - start)

    train_stage(model, data["perturb"], StageConfig(optimizer="sgd", lr=lr, steps=max_steps, schedule="constant"), on_step=on_step)
    model.load_state_dict(state)
    lowest = min(range(len(curve)), key=curve.__getitem__)
    back = next((n + 1 for n, c in enumerate(curve) if c > 0), None)
    return {"R1": ratio(dot(g["align"], u), slope), "slope": slope, "curvature": curvature, "s_star": s_star,
            "why": why, "measured_min_step": lowest + 1 if curve[lowest] < 0 else None, "measured_back_step": back,
            "min_change": curve[lowest]}


def _fmt(x, digits: int = 3) -> str:
    return "none" if x is None else f"{x:.{digits}g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-4, help="SGD learning rate of the step and of the curve")
    parser.add_argument("--max-steps", type=int, default=1000, help="steps of the measured curve")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = SequentialRatioConfig()
    world = SyntheticWorld(cfg.world)
    print(f"SGD lr = {args.lr:g} on D_t (nats per response), up to {args.max_steps} steps; sequential-ratio's world, "
          "model and base schedule\n")
    print("| k | seed | base KL to optimum (bits) | R1 | g_p.u | u^T H_p u | predicted lowest (s*/2) | measured lowest "
          "| predicted back to start (s*) | measured back above start |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, seed, model, d, kl in _base_chains(cfg, world):
        r = probe_row(model, d, world.config.data_vocab_size, args.lr, args.max_steps)
        half = None if r["s_star"] is None else r["s_star"] / 2
        print(f"| {k:g} | {seed} | {kl:.2g} | {_fmt(r['R1'], 4)} | {r['slope']:.3g} | {r['curvature']:.3g} | "
              f"{_fmt(half)} | {_fmt(r['measured_min_step'])} | {_fmt(r['s_star'])} | {_fmt(r['measured_back_step'])} |",
              flush=True)
        if r["s_star"] is None:
            print(f"<!-- k={k:g} seed={seed}: {r['why']} -->", flush=True)


if __name__ == "__main__":
    main()
