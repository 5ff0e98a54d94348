r"""Experiment 4, rebound (paper §5.2, Fig. 4, Table 3): does alignment fall faster after more of it?

Protocol, per seed: pre-train a small GPT-2 on the exact pre-training mixture
:math:`w_1 P_1 + w_2 P_2 + w_3 P_3`; align it on :math:`n_+` positive examples (drawn from
:math:`P_2`, the aligned answers), checkpointed at every :math:`n_+` of the grid; fine-tune each
aligned checkpoint on :math:`n_-` negative examples (from :math:`P_3`, the other answers to the same
prompts), measured at every :math:`n_-` of the grid (:mod:`elastic_theory.empirical.sequential`:
one constant-rate run over nested fresh data per curve). The negative data order is the same for
every :math:`n_+` of a seed, so comparisons between alignment amounts are paired by seed and data.

Measured at each point: the behaviour score :math:`\bar\pi` (mean over the world's prompts of the
model's probability of the aligned answer; :mod:`elastic_theory.stats.behaviour`) as a probability and
as log-odds, and the answer divergence from the pre-trained model, the mean over prompts of
:math:`KL(p(\cdot|x) \| p_0(\cdot|x))` (bits per response, exact by enumeration; the KL of whole
sequences would be dominated by the prompt marginal, which fine-tuning on :math:`P_2`'s prompts
alone shifts by up to :math:`\log_2(1/w_2)`). The world's answers are random sequences, so nothing carries
over to unseen prompts: the score averages over all prompts of the world, not held-out ones.

Analysis: the two-phase fit of each curve in :math:`\ln n_-` (:mod:`elastic_theory.stats.twophase`,
pooled over seeds, breakpoint with its profile interval, bootstrap test against one line); the
drop over the first :math:`n_-`, the drop per e-fold of :math:`n_-` over the whole grid (one line)
and in the steeper of the two phases (the paper's fast phase comes first; which one is steeper is
measured, not assumed), compared per seed between the smallest and largest :math:`n_+` on both scales (:func:`~elastic_theory.stats.behaviour.compare_drops`); and the
data to revert, the :math:`n_-` at which :math:`KL(p \| p_0) \le \varepsilon` (Table 3's form), and
the :math:`n_-` at which the score first falls back to the pre-trained model's (both interpolated
linearly between grid points; in log KL for the former).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...stats.behaviour import SCALES, compare_drops, data_to_revert, first_crossing
from ...infra.rundir import RunDir
from ...stats.seedstats import error_bars, format_interval, seed_interval
from ...stats.twophase import fit_two_phase, hinge
from .. import Context, Experiment, register
from ._sequential import SequentialSetup, run_experiment

__all__ = ["ReboundConfig", "analyse", "measure_seed", "plot", "quick_config", "run", "summarize"]

NAME = "rebound"
PAPER = {
    "faster_after_more": "the more positive data, the faster the score falls under negative data (Fig. 4)",
    "two_phase": "the fall is two-phase: fast, then slow near the pre-trained level (Fig. 4)",
    "data_to_revert": "fewer negative samples bring KL(model, base) below 0.01 after more positive data "
                      "(Llama2-7B: 961, 844, 801, 729 after 1k, 2k, 5k, 10k; Table 3)",
}


@dataclass(frozen=True)
class ReboundConfig(SequentialSetup):
    """Alignment amounts x perturbation amounts (examples; multiples of ``batch_size``), KL threshold ``eps_bits``."""

    align_amounts: tuple[int, ...] = (256, 1024, 4096)
    perturb_amounts: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    eps_bits: float = 0.01
    n_bootstrap: int = 99

    def __post_init__(self):
        super().__post_init__()
        self.check_amounts("align_amounts", self.align_amounts, 2)
        self.check_amounts("perturb_amounts", self.perturb_amounts, 5)
        if not (isinstance(self.eps_bits, (int, float)) and self.eps_bits > 0):
            raise ValueError(f"eps_bits must be > 0 (the KL threshold of 'data to revert'), got {self.eps_bits!r}")


def quick_config() -> ReboundConfig:
    """Three seeds, a shorter pre-training and grid: about 1.5 CPU minutes."""
    return ReboundConfig(pretrain=dataclasses.replace(ReboundConfig.pretrain, steps=400), seeds=(0, 1, 2),
                         align_amounts=(256, 4096), perturb_amounts=(64, 128, 256, 512, 1024, 2048))


def measure_seed(config: ReboundConfig, seed: int, state_path=None, device: str = "cpu") -> dict:
    """One seed: the pre-trained model's score, and per alignment amount the curve over perturbation amounts."""
    from ...empirical.sequential import SequentialWorld

    sw = SequentialWorld(config, device)
    pre = sw.pretrained(seed, state_path)
    log_p0 = sw.log_probs(pre)

    def measure(net, log_p=None) -> dict:
        log_p = sw.log_probs(net) if log_p is None else log_p
        return {**sw.behaviour(net), "kl_to_pretrained_bits": sw.answer_kl_bits(log_p, log_p0)}

    aligned = sw.checkpoints(pre, "aligned", config.align_amounts, sw.generator(seed, 0))
    curves = {}
    for n_plus, net in zip(sorted(set(config.align_amounts)), aligned):
        _, curves[str(n_plus)] = sw.finetune(net, "unaligned", [0, *config.perturb_amounts], sw.generator(seed, 1),
                                             measure)
    return {"seed": seed, "pretrained": measure(pre, log_p0), "curves": curves}


def _first_drop(curve: list[dict], scale: str) -> float:
    return curve[0][scale] - curve[1][scale]


def analyse(config: ReboundConfig, units: list[dict]) -> dict:
    """Seed intervals of every curve point, two-phase fits, the paired drop comparison and data to revert."""
    rng = np.random.default_rng(0)
    aligns = [str(n) for n in sorted(set(config.align_amounts))]
    amounts = [0, *sorted(set(config.perturb_amounts))]
    curves, fits, revert = {}, {}, {}
    speeds = {m: {a: {s: [] for s in SCALES} for a in aligns} for m in ("overall", "steepest")}
    for a in aligns:
        per_seed = [u["curves"][a] for u in units]
        curves[a] = [
            {"perturb_amount": n, **{key: seed_interval([c[i][key] for c in per_seed]).as_dict()
                                     for key in (*SCALES, "kl_to_pretrained_bits")}}
            for i, n in enumerate(amounts)
        ]
        fits[a] = {}
        for scale in SCALES:
            x = np.array([p["amount"] for c in per_seed for p in c[1:]], dtype=float)
            y = np.array([p[scale] for c in per_seed for p in c[1:]])
            fits[a][scale] = fit_two_phase(x, y, n_bootstrap=config.n_bootstrap, rng=rng).as_dict()
            for c in per_seed:
                f = fit_two_phase([p["amount"] for p in c[1:]], [p[scale] for p in c[1:]])
                speeds["overall"][a][scale].append(-f.line_slope)
                speeds["steepest"][a][scale].append(max(-f.slope_before, -f.slope_after))
            for m in speeds:
                fits[a][scale][f"{m}_drop_per_efold"] = seed_interval(speeds[m][a][scale]).as_dict()
        values = [data_to_revert(amounts, [p["kl_to_pretrained_bits"] for p in c], config.eps_bits) for c in per_seed]
        finite = [v for v in values if np.isfinite(v)]
        back = [first_crossing(amounts, [p["probability"] for p in c], u["pretrained"]["probability"])
                for c, u in zip(per_seed, units)]
        revert[a] = {
            "to_pretrained_score": {"per_seed": back, "interval": seed_interval(back).as_dict()
                                    if np.isfinite(back).all() else None},
            "per_seed": values,
            "reached_in": f"{len(finite)}/{len(values)} seeds",
            "interval": seed_interval(finite).as_dict() if len(finite) == len(values) else None,
            "min_kl_bits": seed_interval([min(p["kl_to_pretrained_bits"] for p in c[1:]) for c in per_seed]).as_dict(),
        }
    small, large = aligns[0], aligns[-1]
    by_seed = {a: [u["curves"][a] for u in units] for a in (small, large)}
    first = compare_drops(*({s: [_first_drop(c, s) for c in by_seed[a]] for s in SCALES} for a in (small, large)))
    overall = compare_drops(speeds["overall"][small], speeds["overall"][large])
    steepest = compare_drops(speeds["steepest"][small], speeds["steepest"][large])
    return {
        "experiment": NAME,
        "seeds": [u["seed"] for u in units],
        "pretrained": {key: seed_interval([u["pretrained"][key] for u in units]).as_dict() for key in SCALES},
        "curves": curves,
        "two_phase": fits,
        "drop_comparison": {"align_small": int(small), "align_large": int(large),
                            "first_drop": first.as_dict(), "overall_slope": overall.as_dict(),
                            "steepest_phase_slope": steepest.as_dict()},
        "data_to_revert": {"eps_bits": config.eps_bits, "by_align": revert},
        "paper": PAPER,
    }


def plot(results: dict, folder: Path) -> list[Path]:
    """``rebound.png``: score (probability, log-odds) and answer KL to the pre-trained model against negative data."""
    from .._plotting import figure, save_figure

    fig, axes = figure(3, width=5.0, height=4.2)
    for a, curve in results["curves"].items():
        x = np.array([p["perturb_amount"] for p in curve[1:]], dtype=float)
        for ax, key in zip(axes, (*SCALES, "kl_to_pretrained_bits")):
            m, err = error_bars([p[key] for p in curve[1:]])
            line, = ax.plot(x, m, "o", label=f"n+ = {a}")
            ax.fill_between(x, m - err[0], m + err[1], color=line.get_color(), alpha=0.2)
            ax.axhline(float(curve[0][key]["mean"]), color=line.get_color(), ls=":", lw=1)
            if key in SCALES:
                f = results["two_phase"][a][key]
                xs = np.geomspace(x.min(), x.max(), 100)
                ax.plot(xs, hinge(xs, f["intercept"], f["slope_before"], f["slope_after"], f["breakpoint_log"]),
                        color=line.get_color(), lw=1)
    for ax, key in zip(axes[:2], SCALES):
        ax.axhline(float(results["pretrained"][key]["mean"]), color="k", ls="--", lw=1, label="pre-trained")
    axes[2].axhline(results["data_to_revert"]["eps_bits"], color="k", ls="--", lw=1, label="eps")
    axes[2].set_yscale("log")
    for ax, title in zip(axes, ("P(aligned answer | prompt)", "log-odds of it (nats)",
                                "KL(answers || pre-trained answers), bits")):
        ax.set_xscale("log")
        ax.set_xlabel("negative examples n-")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle("Rebound: dotted = after alignment (n- = 0); lines = two-phase fits; bands = 95% over seeds", fontsize=9)
    return [save_figure(fig, Path(folder) / "rebound.png")]


def summarize(results: dict) -> str:
    """Markdown: the drop comparison on both scales, the two-phase fits, and data to revert."""
    d = results["drop_comparison"]
    lines = [f"rebound: seeds {results['seeds']}; pre-trained score {format_interval(results['pretrained']['probability'])} "
             f"(log-odds {format_interval(results['pretrained']['log_odds'])}); 95% t-intervals over seeds", "",
             f"| drop measure (n+ = {d['align_large']} minus n+ = {d['align_small']}, per seed) | probability | log-odds | verdict |",
             "|---|---|---|---|"]
    for key, label in (("first_drop", "drop over the first n- step"),
                       ("overall_slope", "drop per e-fold of n-, one line over the grid"),
                       ("steepest_phase_slope", "drop per e-fold of n-, steeper of the two phases")):
        c = d[key]
        lines.append(f"| {label} | {format_interval(c['difference']['probability'])} | {format_interval(c['difference']['log_odds'])} | {c['verdict']} |")
    lines += ["", "| n+ | scale | score at n- = 0 | breakpoint n- [95% CI] | slope before / after | p(one line) | "
              "n- back to pre-trained score | data to revert (KL <= eps) | min KL (bits) |", "|---|---|---|---|---|---|---|---|---|"]
    for a, fits in results["two_phase"].items():
        r = results["data_to_revert"]["by_align"][a]
        for scale, f in fits.items():
            ci = f"{f['breakpoint']:.0f} [{f['ci'][0]:.0f}, {f['ci'][1]:.0f}]" + (" (censored)" if f["ci_censored"] else "")
            revert = format_interval(r["interval"]) if r["interval"] else f"not reached ({r['reached_in']})"
            lines.append(f"| {a} | {scale} | {format_interval(results['curves'][a][0][scale])} | {ci} | "
                         f"{f['slope_before']:.3g} / {f['slope_after']:.3g} | {f['p_two_phase']:.3g} | "
                         f"{format_interval(r['to_pretrained_score']['interval'])} | {revert} | "
                         f"{format_interval(r['min_kl_bits'])} |")
    return "\n".join(lines)


def run(cfg: ReboundConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Train and measure every seed (one cached unit each), then analyse."""
    return run_experiment(cfg, run_dir, ctx, NAME, measure_seed, analyse)


EXPERIMENT = register(Experiment(
    name=NAME,
    question="After alignment on n+ positive examples, does the behaviour fall faster under negative data when n+ is larger?",
    prediction="paper §5.2 (Fig. 4, Table 3): faster fall after more alignment, two-phase; THEORY §2 predicts "
               "elasticity only for the joint optimum (sequential fine-tuning is open, THEORY §4.1)",
    config_class=ReboundConfig,
    quick=quick_config,
    run=run,
    plot=plot,
    summarize=summarize,
))
