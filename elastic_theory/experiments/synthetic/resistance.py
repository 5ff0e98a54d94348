r"""Experiment 3, resistance (paper §5.1, Table 1): is going back to an earlier checkpoint easier than going forward?

Protocol, per seed: pre-train :math:`\theta_0` on the exact mixture; align it on :math:`P_2` and keep
the checkpoints :math:`\theta_1 < \theta_2 < \theta_3` after ``checkpoints`` examples. A checkpoint's
*outputs* are its distribution over every sequence, :math:`q_j`, enumerated exactly (generation is
sampling from it). For each pair :math:`i < j`:

* forward: fine-tune :math:`\theta_i` on ``finetune_amount`` fresh samples of :math:`q_j`;
* inverse: fine-tune :math:`\theta_j` on fresh samples of :math:`q_i`;

both (and the two control fine-tunings below) from the same random numbers: one minibatch stream per seed
and pair, which ``torch.multinomial`` maps through each target's cumulative distribution over the same
enumeration order. The targets differ, so the samples cannot be identical; they are coupled (the same
quantiles), which is as close to "the same sampled data" as the protocol allows, and the paired gaps
keep less sampling noise than independent draws would leave.

and the *alignment loss* is the fine-tuned model's cross-entropy on its target,
:math:`CE(q, \theta') / L` in bits per token, computed exactly (the expectation of the training
loss the paper reports). The paper's claim is inverse < forward.

Controls for target entropy (:mod:`elastic_theory.stats.entropy_matching`): the excess loss
:math:`CE - H(q)` per token, and an entropy-matched target, the pre-trained model's outputs
tempered to exactly :math:`H(q_j)` (resp. :math:`H(q_i)`), on which the same forward and inverse
fine-tunings run. The entropy-adjusted gap is
:math:`(F - I) - (F_{control} - I_{control})`: what remains of the asymmetry once equal-entropy
targets without alignment have been through the same procedure.

**Units.** A seed's three pairs share its pre-training, alignment run and checkpoints: they are one
unit, not three. Intervals are over seeds (:mod:`elastic_theory.stats.seedstats`; losses and entropies,
positive, on the log scale, gaps on the linear one), and the count of the paper's form is per seed
(:func:`~elastic_theory.experiments._stats.seeds_as_units`: the sign of a seed's mean gap over its pairs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from ...infra.rundir import RunDir
from ...stats.seedstats import error_bars, format_interval, interval_note, paired_difference, seed_interval
from .._stats import format_seed_count, seeds_as_units
from .. import Context, Experiment, register
from ._sequential import SequentialSetup, run_experiment

__all__ = ["ResistanceConfig", "analyse", "measure_seed", "plot", "quick_config", "run", "summarize"]

NAME = "resistance"
PAPER = ("inverse alignment loss < forward alignment loss in 27/27 comparisons "
         "(e.g. Llama2-7B on Alpaca: theta2->theta1 0.159 vs theta1->theta2 0.202; Table 1)")
_COUNT_RESOLUTION = 2**40


@dataclass(frozen=True)
class ResistanceConfig(SequentialSetup):
    """Checkpoints (examples of alignment) theta_1 < theta_2 < theta_3, and the fine-tuning amount on outputs."""

    checkpoints: tuple[int, ...] = (256, 1024, 4096)
    finetune_amount: int = 1024

    def __post_init__(self):
        super().__post_init__()
        self.check_amounts("checkpoints", self.checkpoints, 3)
        if list(self.checkpoints) != sorted(set(self.checkpoints)):
            raise ValueError(f"checkpoints must increase strictly (theta_1 < theta_2 < theta_3), got {list(self.checkpoints)}")
        self.check_amounts("finetune_amount", (self.finetune_amount,), 1)


def quick_config() -> ResistanceConfig:
    """Three seeds, a shorter pre-training: about 1.5 CPU minutes."""
    return ResistanceConfig(pretrain=dataclasses.replace(ResistanceConfig.pretrain, steps=400), seeds=(0, 1, 2),
                            finetune_amount=512)


def _as_counts(probs: np.ndarray, sequences: np.ndarray):
    """A distribution over enumerated sequences as integer counts (resolution 2^40) for minibatch sampling."""
    from ...data.synthetic import WeightedSequences

    counts = np.rint(probs * _COUNT_RESOLUTION).astype(np.int64)
    keep = np.flatnonzero(counts)
    return WeightedSequences(tuple(tuple(int(t) for t in sequences[i]) for i in keep), counts[keep])


def measure_seed(config: ResistanceConfig, seed: int, state_path=None, device: str = "cpu") -> dict:
    """Per seed: entropies of every checkpoint's outputs, and the losses of every real and control fine-tuning."""
    from ...empirical.enumeration import all_sequences
    from ...empirical.sequential import SequentialWorld
    from ...stats.entropy_matching import entropy_bits, entropy_matched

    sw = SequentialWorld(config, device)
    L = sw.L
    sequences = all_sequences(sw.V, L)
    pre = sw.pretrained(seed, state_path)
    nets = sw.checkpoints(pre, "aligned", config.checkpoints, sw.generator(seed, 0))
    outputs = [np.exp(sw.log_probs(net)) for net in nets]
    entropy = [entropy_bits(q) for q in outputs]
    p0 = np.exp(sw.log_probs(pre))
    control = [entropy_matched(p0, h)[0] for h in entropy]

    def loss(source: int, target: np.ndarray, tag: int) -> float:
        net, _ = sw.finetune(nets[source], sw.sequence_data(_as_counts(target, sequences)), [config.finetune_amount],
                             sw.generator(seed, 1, tag))
        return float(-(target * sw.log_probs(net)).sum() / np.log(2) / L)

    pairs = {}
    for i, j in combinations(range(len(nets)), 2):
        stream = 10 * i + j  # one minibatch stream per pair, for all four of its fine-tunings (module docstring)
        pairs[f"{i + 1}-{j + 1}"] = {
            "forward": loss(i, outputs[j], stream),
            "inverse": loss(j, outputs[i], stream),
            "forward_control": loss(i, control[j], stream),
            "inverse_control": loss(j, control[i], stream),
            "target_entropy_forward": entropy[j] / L,
            "target_entropy_inverse": entropy[i] / L,
            "target_entropy_control_forward": entropy_bits(control[j]) / L,
            "target_entropy_control_inverse": entropy_bits(control[i]) / L,
        }
    return {"seed": seed, "entropy_bits_per_token": [h / L for h in entropy],
            "pretrained_entropy_bits_per_token": entropy_bits(p0) / L, "pairs": pairs}


def analyse(config: ResistanceConfig, units: list[dict]) -> dict:
    """Per pair: forward, inverse, excess and control losses with seed intervals, and the paired gaps."""
    rows = []
    for key in units[0]["pairs"]:
        v = {name: np.array([u["pairs"][key][name] for u in units]) for name in units[0]["pairs"][key]}
        gap = paired_difference(v["forward"], v["inverse"])
        excess_gap = paired_difference(v["forward"] - v["target_entropy_forward"], v["inverse"] - v["target_entropy_inverse"])
        control_gap = paired_difference(v["forward_control"], v["inverse_control"])
        adjusted = paired_difference(v["forward"] - v["inverse"], v["forward_control"] - v["inverse_control"])
        rows.append({
            "pair": key,
            **{name: seed_interval(v[name], scale="log").as_dict() for name in v},
            "gap_forward_minus_inverse": gap.as_dict(),
            "excess_gap": excess_gap.as_dict(),
            "control_gap": control_gap.as_dict(),
            "entropy_adjusted_gap": adjusted.as_dict(),
            "n_seeds": len(units),
            "inverse_easier": gap.low > 0,
            "beyond_entropy": adjusted.low > 0,
        })
    return {
        "experiment": NAME,
        "seeds": [u["seed"] for u in units],
        "checkpoints": list(config.checkpoints),
        "entropy_bits_per_token": [seed_interval([u["entropy_bits_per_token"][c] for u in units], scale="log").as_dict()
                                   for c in range(len(config.checkpoints))],
        "pretrained_entropy_bits_per_token": seed_interval([u["pretrained_entropy_bits_per_token"] for u in units],
                                                           scale="log").as_dict(),
        "rows": rows,
        "inverse_lower": seeds_as_units(*(np.array([[u["pairs"][key][d] for key in units[0]["pairs"]] for u in units])
                                          for d in ("forward", "inverse"))),
        "paper": PAPER,
    }


def plot(results: dict, folder: Path) -> list[Path]:
    """``resistance.png``: forward vs inverse loss per pair, real targets and entropy-matched controls."""
    from .._plotting import figure, save_figure

    rows = results["rows"]
    fig, (ax,) = figure(1, width=8.0, height=4.2)
    x = np.arange(len(rows))
    for off, name, hatch in ((-0.3, "forward", ""), (-0.1, "inverse", ""), (0.1, "forward_control", "//"),
                             (0.3, "inverse_control", "//")):
        m, err = error_bars([r[name] for r in rows])
        ax.bar(x + off, m, 0.2, yerr=err, hatch=hatch, label=name.replace("_", " "), capsize=3)
    ax.set_xticks(x, [f"theta{r['pair'][0]} vs theta{r['pair'][2]}" for r in rows])
    ax.set_ylabel("alignment loss CE(target, fine-tuned), bits/token")
    ax.set_title("Resistance: forward (earlier <- later outputs) vs inverse; hatched = entropy-matched control",
                 fontsize=9)
    ax.legend(fontsize=8)
    return [save_figure(fig, Path(folder) / "resistance.png")]


def summarize(results: dict) -> str:
    """Markdown: per pair, forward and inverse loss, the gaps and the entropy-adjusted gap."""
    ent = ", ".join(format_interval(e) for e in results["entropy_bits_per_token"])
    lines = [f"resistance: seeds {results['seeds']}; checkpoints after {results['checkpoints']} aligned examples; "
             f"output entropy (bits/token) {ent}; pre-trained {format_interval(results['pretrained_entropy_bits_per_token'])}",
             "", f"{format_seed_count(results['inverse_lower'])}", "",
             f"{interval_note(len(results['seeds']))}; losses and entropies on the log scale (geometric means), gaps "
             "paired by seed", "",
             "| pair i-j | forward (theta_i <- q_j) | inverse (theta_j <- q_i) | forward - inverse | excess-loss gap | "
             "control gap (entropy-matched) | entropy-adjusted gap |", "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['pair']} | {format_interval(r['forward'])} | {format_interval(r['inverse'])} | {format_interval(r['gap_forward_minus_inverse'])} | "
                     f"{format_interval(r['excess_gap'])} | {format_interval(r['control_gap'])} | {format_interval(r['entropy_adjusted_gap'])} |")
    return "\n".join(lines)


def run(cfg: ResistanceConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Train and measure every seed (one cached unit each), then analyse."""
    return run_experiment(cfg, run_dir, ctx, NAME, measure_seed, analyse)


EXPERIMENT = register(Experiment(
    name=NAME,
    question="Is fine-tuning a later alignment checkpoint on an earlier one's outputs easier (lower loss) than the reverse, "
             "beyond what the targets' entropy explains?",
    prediction="paper §5.1 (Table 1): inverse loss < forward loss; THEORY §4.4: control for target entropy",
    config_class=ResistanceConfig,
    quick=quick_config,
    run=run,
    plot=plot,
    summarize=summarize,
))
