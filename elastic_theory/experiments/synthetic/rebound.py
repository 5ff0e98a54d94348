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

Analysis, per curve (alignment amount :math:`n_+` x scale, the seeds' points pooled): the phase fits of
:mod:`elastic_theory.stats.phase_claim` in :math:`t = \ln(1 + n_-)`, so the aligned model (:math:`n_- = 0`) is the
curve's first point (:math:`\ln(1 + n)` differs from :math:`\ln n` by less than :math:`1/n`, under 0.016 from
:math:`n_- = 64` on, so slopes stay drops per e-fold of data): 1, 2 and 3 phases with free knots, the number chosen
by BIC with its bootstrap stability, on the full grid and on every other amount; the order test of the chosen fit
(``n_resamples`` resamples of whole seed curves), Benjamini-Hochberg over every curve and grid of the run at
``fdr_q``, and an order claimed only when both grids choose the same one and both adjusted p-values pass. The
claim rule's size (straight lines) and power (the paper's fast-then-slow shape with the curve's own overall drop
and noise) are simulated on the run's design (``calibration_curves`` curves each). The steepest phase's drop per
e-fold is the bootstrap bias-corrected one (:func:`~elastic_theory.stats.phase_order.steepest_drop`), per curve;
the paired per-seed comparison of a steeper phase is not made (one seed's curve cannot carry the choice of phases,
docs/phases.md). Compared per seed between the smallest and largest :math:`n_+` on both scales
(:func:`~elastic_theory.stats.behaviour.compare_drops`): the drop over the first :math:`n_-` and the drop per e-fold
of :math:`1 + n_-` of one line over the grid (:math:`n_- = 0` included). Data to revert: the :math:`n_-` at which
:math:`KL(p \| p_0) \le \varepsilon` (Table 3's form), and the :math:`n_-` at which the score first falls back to the
pre-trained model's (both interpolated linearly between grid points; in log KL for the former).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._validation import check_count
from ...infra.rundir import RunDir
from ...stats.behaviour import SCALES, compare_drops, data_to_revert, first_crossing
from ...stats.phases import fit_phases
from ...stats.seedstats import error_bars, format_interval, interval_note, seed_interval
from .. import Context, Experiment, register
from .._phases import analyse_phases, fitted, phase_table
from .._stats import amount_interval, format_amount, min_kl_per_seed, quantity_interval
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
    """Alignment amounts x perturbation amounts (examples; multiples of ``batch_size``), KL threshold ``eps_bits``;
    the phase analysis's resamples per test, false discovery rate and simulated curves per calibration."""

    align_amounts: tuple[int, ...] = (256, 1024, 4096)
    perturb_amounts: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    eps_bits: float = 0.01
    n_resamples: int = 999
    fdr_q: float = 0.05
    calibration_curves: int = 200

    def __post_init__(self):
        super().__post_init__()
        self.check_amounts("align_amounts", self.align_amounts, 2)
        self.check_amounts("perturb_amounts", self.perturb_amounts, 5)
        if not (isinstance(self.eps_bits, (int, float)) and self.eps_bits > 0):
            raise ValueError(f"eps_bits must be > 0 (the KL threshold of 'data to revert'), got {self.eps_bits!r}")
        check_count(self.n_resamples, "n_resamples", 1)
        check_count(self.calibration_curves, "calibration_curves", 1)
        if not (isinstance(self.fdr_q, (int, float)) and 0 < self.fdr_q < 1):
            raise ValueError(f"fdr_q (the false discovery rate of the phase-order claims) must be in (0, 1), "
                             f"got {self.fdr_q!r}")


def quick_config() -> ReboundConfig:
    """Three seeds, a shorter pre-training and grid, 100 curves per calibration: about 1.5 CPU minutes."""
    return ReboundConfig(pretrain=dataclasses.replace(ReboundConfig.pretrain, steps=400), seeds=(0, 1, 2),
                         align_amounts=(256, 4096), perturb_amounts=(64, 128, 256, 512, 1024, 2048),
                         calibration_curves=100)


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


def _line_drop(curve: list[dict], scale: str) -> float:
    """One seed's drop per e-fold of 1 + n-: minus the slope of one line in ln(1 + n-) over the grid, n- = 0 included."""
    return -fit_phases([p["amount"] for p in curve], [p[scale] for p in curve], 1).slopes[0]


def _phases(config: ReboundConfig, units: list[dict], aligns: list[str]) -> dict:
    """The phase analysis of every curve (n+ x scale) of the run (module docstring)."""
    curves = {}
    for a in aligns:
        per_seed = [u["curves"][a] for u in units]
        x = [p["amount"] for c in per_seed for p in c]
        seed = [i for i, c in enumerate(per_seed) for _ in c]
        for scale in SCALES:
            curves[a, scale] = (x, [p[scale] for c in per_seed for p in c], seed)
    return analyse_phases(curves, [0, *config.perturb_amounts], seeds=len(units), q=config.fdr_q,
                          n_resamples=config.n_resamples, calibration_curves=config.calibration_curves,
                          rng=np.random.default_rng(0))


def _revert(config: ReboundConfig, units: list[dict], a: str, amounts: list[int]) -> dict:
    per_seed = [u["curves"][a] for u in units]
    values = [data_to_revert(amounts, [p["kl_to_pretrained_bits"] for p in c], config.eps_bits) for c in per_seed]
    finite = [v for v in values if np.isfinite(v)]
    back = [first_crossing(amounts, [p["probability"] for p in c], u["pretrained"]["probability"])
            for c, u in zip(per_seed, units)]
    return {
        "to_pretrained_score": {"per_seed": back, "interval": amount_interval(back)},
        "per_seed": values,
        "reached_in": f"{len(finite)}/{len(values)} seeds",
        "interval": amount_interval(values),
        "min_kl_bits": seed_interval(min_kl_per_seed([[p["kl_to_pretrained_bits"] for p in c] for c in per_seed]),
                                     scale="log").as_dict(),
    }


def analyse(config: ReboundConfig, units: list[dict]) -> dict:
    """Seed intervals of every curve point, the phase analysis, the paired drop comparison and data to revert."""
    aligns = [str(n) for n in sorted(set(config.align_amounts))]
    amounts = [0, *sorted(set(config.perturb_amounts))]
    curves = {a: [{"perturb_amount": n, **{key: quantity_interval(key, [u["curves"][a][i][key] for u in units])
                                          for key in (*SCALES, "kl_to_pretrained_bits")}}
                  for i, n in enumerate(amounts)] for a in aligns}
    small, large = aligns[0], aligns[-1]
    by_seed = {a: [u["curves"][a] for u in units] for a in (small, large)}
    first = compare_drops(*({s: [_first_drop(c, s) for c in by_seed[a]] for s in SCALES} for a in (small, large)))
    line = compare_drops(*({s: [_line_drop(c, s) for c in by_seed[a]] for s in SCALES} for a in (small, large)))
    return {
        "experiment": NAME,
        "seeds": [u["seed"] for u in units],
        "pretrained": {key: quantity_interval(key, [u["pretrained"][key] for u in units]) for key in SCALES},
        "curves": curves,
        "phases": _phases(config, units, aligns),
        "drop_comparison": {"align_small": int(small), "align_large": int(large),
                            "first_drop": first.as_dict(), "overall_slope": line.as_dict()},
        "data_to_revert": {"eps_bits": config.eps_bits,
                           "by_align": {a: _revert(config, units, a, amounts) for a in aligns}},
        "paper": PAPER,
    }


def plot(results: dict, folder: Path) -> list[Path]:
    """``rebound.png``: score (probability, log-odds) and answer KL to the pre-trained model against 1 + n-, with the
    chosen phase fit of each score curve (full grid)."""
    from .._plotting import figure, save_figure

    fig, axes = figure(3, width=5.0, height=4.2)
    for a, curve in results["curves"].items():
        x = np.array([p["perturb_amount"] for p in curve], dtype=float)
        for ax, key in zip(axes, (*SCALES, "kl_to_pretrained_bits")):
            m, err = error_bars([p[key] for p in curve])
            line, = ax.plot(1 + x, m, "o", label=f"n+ = {a}")
            ax.fill_between(1 + x, m - err[0], m + err[1], color=line.get_color(), alpha=0.2)
            if key in SCALES and a in results["phases"]["by_align"]:
                grid = np.geomspace(1, 1 + x.max(), 200) - 1
                ax.plot(1 + grid, fitted(results["phases"]["by_align"][a][key], grid), color=line.get_color(), lw=1)
    for ax, key in zip(axes[:2], SCALES):
        ax.axhline(float(results["pretrained"][key]["mean"]), color="k", ls="--", lw=1, label="pre-trained")
    axes[2].axhline(results["data_to_revert"]["eps_bits"], color="k", ls="--", lw=1, label="eps")
    axes[2].set_yscale("log")
    for ax, title in zip(axes, ("P(aligned answer | prompt)", "log-odds of it (nats)",
                                "KL(answers || pre-trained answers), bits")):
        ax.set_xscale("log")
        ax.set_xlabel("1 + negative examples n-")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle("Rebound: lines = phase fits chosen by BIC (in ln(1 + n-)); bands = 95% over seeds", fontsize=9)
    return [save_figure(fig, Path(folder) / "rebound.png")]


def summarize(results: dict) -> str:
    """Markdown: the drop comparison on both scales, the phase analysis with its calibration, and data to revert."""
    d, ph = results["drop_comparison"], results["phases"]
    lines = [f"rebound: seeds {results['seeds']}; pre-trained score {format_interval(results['pretrained']['probability'])} "
             f"(log-odds {format_interval(results['pretrained']['log_odds'])}); {interval_note(len(results['seeds']))} "
             "(probabilities on the logit, KL and amounts on the log scale; min KL over every n-, n- = 0 included)", "",
             f"| drop measure (n+ = {d['align_large']} minus n+ = {d['align_small']}, per seed) | probability | log-odds | verdict |",
             "|---|---|---|---|"]
    for key, label in (("first_drop", "drop over the first n- step"),
                       ("overall_slope", "drop per e-fold of 1 + n-, one line over the grid (n- = 0 included)")):
        c = d[key]
        lines.append(f"| {label} | {format_interval(c['difference']['probability'])} | {format_interval(c['difference']['log_odds'])} | {c['verdict']} |")
    lines += ["", *phase_table(ph, "n-")]
    lines += ["", "| n+ | score at n- = 0 | n- back to pre-trained score | data to revert (KL <= eps) | min KL (bits) |",
              "|---|---|---|---|---|"]
    for a, r in results["data_to_revert"]["by_align"].items():
        revert = format_amount(r["interval"], r["per_seed"]) + f" (reached in {r['reached_in']})"
        lines.append(f"| {a} | {format_interval(results['curves'][a][0]['probability'])} | "
                     f"{format_amount(r['to_pretrained_score']['interval'], r['to_pretrained_score']['per_seed'])} | {revert} | "
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
