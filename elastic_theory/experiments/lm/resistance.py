r"""Resistance (paper §5.1, Table 1) on a pretrained causal LM: is going back easier than going forward?

``elastic-theory experiment resistance --model MODEL --algorithm sft|dpo [--lora]`` runs ``lm-resistance``
(the synthetic ``resistance`` experiment is the same protocol on an enumerable world).

**Data** (``setting``: ``safety`` or a pairs JSONL file; ``sentiment`` is refused, its pairs share one
prompt). Per seed,
:func:`~elastic_theory.data.corpora.split_train_measure` holds out ``n_prompts`` prompts (the *output
prompts*, never trained on during alignment) from its measurement side; the training side's prompts are
the alignment pool, read as a
seeded stream (:func:`~elastic_theory.experiments.lm._common.stream`).

**Protocol, per seed.** Align the base model (``target="aligned"``) on the first :math:`n_3`
examples of the stream, keeping the models :math:`\theta_1, \theta_2, \theta_3` after
:math:`n_1 < n_2 < n_3` examples (``checkpoints``; with LoRA the adapter merged into a copy).
Each checkpoint's *outputs* :math:`q_j` are its greedy responses
(:func:`~elastic_theory.empirical.behaviour_generation.generate_greedy`, at most ``max_new_tokens``) to the
output prompts. For every pair :math:`i < j`:

* *forward* :math:`\theta_i \leftarrow q_j`: fine-tune a copy of :math:`\theta_i` on :math:`q_j`;
* *inverse* :math:`\theta_j \leftarrow q_i`: fine-tune a copy of :math:`\theta_j` on :math:`q_i`;

both with the run's algorithm, learning rate and batch size, on ``finetune_amount`` examples: the
output prompts in the same seeded order for both directions (several passes when
``finetune_amount`` exceeds ``n_prompts``). With DPO the chosen response is the target
checkpoint's output and the rejected one the trained checkpoint's own output on the same prompt.

A greedy output cut off at ``max_new_tokens`` gets the tokenizer's EOS appended when it is trained on
(trl's prompt-completion SFT/DPO): every loss and the own loss below include that token, whose cost
after a cut-off sentence is high (an EOS the generator did not emit). It enters both directions alike;
a longer ``max_new_tokens`` lets more outputs stop by themselves, at the price of longer sequences.

**Losses** (all in nats; the paper's claim is inverse < forward):

* ``train_loss_mean``: the mean over the run's optimizer steps of the training loss the trainer
  logs at each step (:class:`~elastic_theory.empirical.finetune.FinetuneResult`), i.e. the loss of
  each batch *before* its update. SFT: mean negative log-likelihood per target-response token of
  the batch (EOS included, prompt masked). DPO: the batch mean of the DPO loss (nats per pair, not
  per token). This is the paper's "training loss" and the headline.
* ``train_loss_final``: the last step's logged loss.
* ``target_nll_after``: after the fine-tuning, the negative log-likelihood of the whole target set
  (every output prompt once) per response token, pooled (total nats / total tokens), tokenized as
  trained (:func:`~elastic_theory.empirical.behaviour_logprobs.response_log_probs`). Per token for both
  algorithms.

**Control for target entropy** (THEORY §4 weakness 4). A target set of lower entropy gives a lower
loss whatever the direction. Each target set's *own loss*, :math:`h_j`, is its pooled per-token NLL
under the checkpoint that generated it (greedy outputs: a low, non-zero number; an estimate of how
predictable the target is). The controlled comparison subtracts it from each loss (*excess loss*):
forward :math:`F - h_j`, inverse :math:`I - h_i`. It applies to per-token losses only (not to
DPO's training loss, which is reported raw).

**Analysis** (:func:`analyse`, from the units only). Per pair :math:`i < j` and loss: forward and
inverse with 95% Student-t intervals over seeds, the paired gap :math:`F - I` and the controlled
gap :math:`(F - h_j) - (I - h_i)`, each with its seed interval and a verdict: ``holds`` (the gap's
interval is above 0, inverse easier), ``fails`` (below 0) or ``inconclusive`` (it contains 0, or
one seed). Losses are positive, so their intervals are on the log scale (around the geometric mean);
gaps on the linear one (:mod:`elastic_theory.stats.seedstats`). The count of the paper's 27/27 form is
per seed, the independent unit (a seed's pairs share its alignment run, checkpoints and outputs):
the seeds whose mean gap over their pairs is above 0, with a sign test
(:func:`~elastic_theory.experiments._stats.seeds_as_units`); the (seed, pair) cells are kept beside it,
marked as not independent. Both directions of a pair already train on the same prompts in the same
order (the targets are different checkpoints' outputs, so the data cannot be identical).

**Units.** One cached unit per seed (the alignment run, the generations and the six fine-tunings):
an interrupted run resumes at the first unfinished seed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from ..._validation import check_count
from ...infra.rundir import RunDir, unit_key
from ...stats.seedstats import error_bars, format_interval, interval_note, paired_difference, saved_number, seed_interval
from ...infra.trainconfig import FinetuneConfig
from .. import Context, Experiment, register
from .._stats import format_seed_count, seeds_as_units
from ._common import (DEFAULT_MODEL, check_common, check_data, finetune_losses, load_pairs, measure_missing,
                      plot_title, pooled_nll_per_token, run_header, snapshot, stream, summary_title)

__all__ = ["LMResistanceConfig", "analyse", "measure_seed", "plot", "quick_config", "run", "summarize", "verdict"]

NAME = "lm-resistance"
LOSSES = ("train_loss_mean", "train_loss_final", "target_nll_after")
PAPER = {
    "claim": "inverse alignment loss < forward alignment loss (models return to earlier checkpoints more easily)",
    "count": "27/27 comparisons (Alpaca, TruthfulQA, BeaverTails x Llama2-7B/13B, Llama3-8B; Table 1)",
    "example": {"model": "Llama2-7B", "data": "Alpaca", "inverse_theta2_to_theta1": 0.159,
                "forward_theta1_to_theta2": 0.202},
}


@dataclass(frozen=True)
class LMResistanceConfig:
    """A pretrained LM's alignment checkpoints fine-tuned on each other's outputs (module docstring).

    ``checkpoints`` (alignment examples n_1 < n_2 < n_3) and ``finetune_amount`` are positive
    multiples of ``finetune.batch_size`` (whole optimizer steps).
    """

    model: str = DEFAULT_MODEL
    setting: str = "safety"
    finetune: FinetuneConfig = FinetuneConfig(lr=1e-3, batch_size=4, max_length=96, lora=True)
    checkpoints: tuple[int, ...] = (4, 8, 16)
    n_prompts: int = 8
    finetune_amount: int = 8
    max_new_tokens: int = 16
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        if len(self.checkpoints) < 2 or list(self.checkpoints) != sorted(set(self.checkpoints)):
            raise ValueError(f"checkpoints must be >= 2 strictly increasing amounts (theta_1 < theta_2 < ...), "
                             f"got {list(self.checkpoints)}")
        check_common(self, {"checkpoints": self.checkpoints, "finetune_amount": (self.finetune_amount,)})
        check_count(self.n_prompts, "n_prompts", 1)
        check_count(self.max_new_tokens, "max_new_tokens", 1)


def quick_config() -> LMResistanceConfig:
    """Two seeds, two checkpoints (one forward/inverse pair), two fine-tuning steps per direction: about 3 CPU
    minutes on SmolLM2-135M (a step of 4 x ~70 tokens with LoRA is ~8 CPU seconds on the shared 2-core machine)."""
    return LMResistanceConfig(checkpoints=(4, 16), n_prompts=4, max_new_tokens=12, seeds=(0, 1))


def _split(pairs, config: LMResistanceConfig, seed: int):
    from ...data.corpora import split_train_measure

    if config.setting == "sentiment":
        raise ValueError("setting sentiment: its pairs share one prompt, so every checkpoint's greedy outputs would be "
                         "one answer repeated; use safety or a pairs JSONL file with distinct prompts")
    return split_train_measure(pairs, n_measure=config.n_prompts, seed=seed)


def check(config: LMResistanceConfig) -> None:
    """What can be checked before a model loads: the model's files exist, the data suffice for every seed."""
    check_data(config, _split)


# ------------------------------------------------------------------ measuring
def _targets(prompts, outputs: list[list[str]], j: int, i: int):
    """Preference pairs whose aligned side is checkpoint ``j``'s output (the target), unaligned side ``i``'s own."""
    from ...data.corpora import PreferencePair

    return [PreferencePair(f"output-prompt-{p}", prompt, outputs[j][p], outputs[i][p]) for p, prompt in enumerate(prompts)]


def _check_lengths(tokenizer, targets, max_length: int) -> None:
    from ...empirical.behaviour_logprobs import response_token_ids

    longest = max(len(response_token_ids(tokenizer, t.prompt, t.aligned)[0]) for t in targets)
    if longest > max_length:
        raise ValueError(f"a generated target is {longest} tokens with its prompt, more than finetune.max_length = "
                         f"{max_length}: raise finetune.max_length or lower max_new_tokens (the losses would be on "
                         "cut-off targets)")


def measure_seed(config: LMResistanceConfig, seed: int, base_model, tokenizer, pairs, ctx: Context) -> dict:
    """One seed: align, keep the checkpoints, generate their outputs, run every forward and inverse fine-tuning."""
    from ...empirical.behaviour_generation import generate_greedy

    split = _split(pairs, config, seed)
    prompts = [p.prompt for p in split.measure]
    b = config.finetune.batch_size
    n_pairs = len(config.checkpoints) * (len(config.checkpoints) - 1)
    bar = ctx.bar(max(config.checkpoints) // b + n_pairs * config.finetune_amount // b, f"seed {seed} optimizer steps")
    kept: dict[int, object] = {}
    at = {n // b: (lambda net, n=n: kept.__setitem__(n, snapshot(net, base_model))) for n in config.checkpoints}
    t0 = time.perf_counter()
    finetune_losses(copy.deepcopy(base_model), tokenizer, stream(split.train, max(config.checkpoints), seed, 0),
                    config.finetune, "aligned", seed, at, bar)
    nets = [kept[n] for n in config.checkpoints]
    outputs = [generate_greedy(net, tokenizer, prompts, max_new_tokens=config.max_new_tokens) for net in nets]
    own = [_targets(prompts, outputs, j, j) for j in range(len(nets))]
    for targets in own:
        _check_lengths(tokenizer, targets, config.finetune.max_length)
    own_nll = [pooled_nll_per_token(net, tokenizer, t) for net, t in zip(nets, own)]
    align_seconds = time.perf_counter() - t0
    order = stream(list(range(len(prompts))), config.finetune_amount, seed, 1)

    def direction(source: int, target: int) -> dict:
        targets = _targets(prompts, outputs, target, source)
        started = time.perf_counter()
        before = pooled_nll_per_token(nets[source], tokenizer, targets)
        model, losses = finetune_losses(copy.deepcopy(nets[source]), tokenizer, [targets[k] for k in order],
                                        config.finetune, "aligned", seed, {}, bar)
        return {"losses": list(losses), "train_loss_mean": float(np.mean(losses)), "train_loss_final": float(losses[-1]),
                "target_nll_before": before, "target_nll_after": pooled_nll_per_token(model, tokenizer, targets),
                "seconds": time.perf_counter() - started}

    results = {}
    for i, j in combinations(range(len(nets)), 2):
        results[f"{i + 1}-{j + 1}"] = {"forward": direction(i, j), "inverse": direction(j, i)}
    bar.close()
    return {"seed": seed, "checkpoints": list(config.checkpoints), "algorithm": config.finetune.algorithm,
            "prompts": prompts, "outputs": outputs, "own_nll_per_token": own_nll,
            "distinct_outputs": [len(set(o)) for o in outputs], "pairs": results,
            "seconds": {"align_generate": align_seconds}}


# ------------------------------------------------------------------ analysis
def verdict(gap: dict) -> str:
    """``holds`` when the forward-minus-inverse interval lies above 0, ``fails`` below 0, else ``inconclusive``."""
    low, high = saved_number(gap["low"]), saved_number(gap["high"])
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    return "holds" if low > 0 else "fails" if high < 0 else "inconclusive"


def _per_token(loss: str, algorithm: str) -> bool:
    return loss == "target_nll_after" or algorithm == "sft"


def analyse(config: LMResistanceConfig, units: list[dict]) -> dict:
    """Per pair and loss: forward, inverse, raw and entropy-controlled gaps with seed intervals and verdicts; counts."""
    algorithm = config.finetune.algorithm
    own = np.array([u["own_nll_per_token"] for u in units])  # seeds x checkpoints
    rows, cells = [], {}
    for key in units[0]["pairs"]:
        i, j = (int(c) - 1 for c in key.split("-"))
        row = {"pair": key, "forward": f"theta{i + 1} <- q{j + 1}", "inverse": f"theta{j + 1} <- q{i + 1}", "losses": {}}
        for loss in LOSSES:
            f = np.array([u["pairs"][key]["forward"][loss] for u in units])
            inv = np.array([u["pairs"][key]["inverse"][loss] for u in units])
            gap = paired_difference(f, inv).as_dict()
            entry = {"forward": seed_interval(f, scale="log").as_dict(), "inverse": seed_interval(inv, scale="log").as_dict(),
                     "forward_per_seed": f.tolist(), "inverse_per_seed": inv.tolist(),
                     "gap_forward_minus_inverse": gap, "verdict": verdict(gap)}
            sides = {"raw": (f, inv)}
            if _per_token(loss, algorithm):
                controlled = paired_difference(f - own[:, j], inv - own[:, i]).as_dict()
                entry.update(controlled_gap=controlled, controlled_verdict=verdict(controlled))
                sides["controlled"] = (f - own[:, j], inv - own[:, i])
            row["losses"][loss] = entry
            for name, (a, b) in sides.items():  # seeds x pairs, per loss and kind
                cells.setdefault(loss, {}).setdefault(name, ([], []))
                cells[loss][name][0].append(a)
                cells[loss][name][1].append(b)
        row["before_finetuning"] = {d: seed_interval([u["pairs"][key][d]["target_nll_before"] for u in units],
                                                     scale="log").as_dict() for d in ("forward", "inverse")}
        rows.append(row)
    return {
        "seeds": [u["seed"] for u in units],
        "checkpoints": list(config.checkpoints),
        "own_nll_per_token": [seed_interval(own[:, c], scale="log").as_dict() for c in range(own.shape[1])],
        "distinct_outputs": [u["distinct_outputs"] for u in units],
        "n_prompts": config.n_prompts,
        "rows": rows,
        "inverse_lower": {loss: {k: seeds_as_units(np.array(a).T, np.array(b).T) for k, (a, b) in c.items()}
                          for loss, c in cells.items()},
        "verdicts": {loss: {"raw": [r["losses"][loss]["verdict"] for r in rows],
                            "controlled": [r["losses"][loss].get("controlled_verdict") for r in rows]} for loss in LOSSES},
        "units": {"train_loss": "nats per target token" if algorithm == "sft" else "nats per pair (DPO loss)",
                  "target_nll_after": "nats per target token", "own_nll_per_token": "nats per token"},
        "paper": PAPER,
    }


def run(config: LMResistanceConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Load the model once, compute every missing seed (resumable), analyse the saved units."""
    pairs = load_pairs(config.setting)
    started = time.perf_counter()
    measure_missing(config, ctx.device, lambda seed: run_dir.has_unit(unit_key(seed=seed)),
                    lambda seed, base_model, tokenizer: run_dir.unit(
                        unit_key(seed=seed), lambda: measure_seed(config, seed, base_model, tokenizer, pairs, ctx)))
    units = [run_dir.read_unit(unit_key(seed=seed)) for seed in config.seeds]
    return {**run_header(config, NAME), **analyse(config, units),
            "compute_seconds_this_call": time.perf_counter() - started,
            "unit_seconds": [{"align_generate": u["seconds"]["align_generate"],
                              "finetunes": sum(d["seconds"] for p in u["pairs"].values() for d in p.values())}
                             for u in units]}


# ------------------------------------------------------------------ plots and tables
def plot(results: dict, folder: Path) -> list[Path]:
    """``lm-resistance.png``: forward vs inverse per pair and loss (seed intervals); the own loss of each target set."""
    from .._plotting import figure, save_figure

    rows = results["rows"]
    fig, axes = figure(len(LOSSES) + 1, width=4.6, height=4.0)
    x = np.arange(len(rows))
    for ax, loss in zip(axes[:-1], LOSSES):
        for off, side in ((-0.2, "forward"), (0.2, "inverse")):
            m, err = error_bars([r["losses"][loss][side] for r in rows])
            ax.bar(x + off, m, 0.4, yerr=err, capsize=3, label=side)
        ax.set_xticks(x, [f"{r['forward']}\n{r['inverse']}" for r in rows], fontsize=7)
        ax.set_title(f"{loss} ({results['units']['train_loss' if loss.startswith('train') else loss]})", fontsize=8)
    own, err = error_bars(results["own_nll_per_token"])
    axes[-1].errorbar(results["checkpoints"], own, yerr=err, fmt="k^-", capsize=3)
    axes[-1].set_xlabel("alignment examples of checkpoint j")
    axes[-1].set_title("own loss h_j of q_j under theta_j (nats/token)", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{plot_title(results)}; paper: inverse < forward in 27/27", fontsize=9)
    return [save_figure(fig, Path(folder) / "lm-resistance.png")]


def summarize(results: dict) -> str:
    """Markdown: per pair and loss, forward, inverse, the raw and controlled gaps and verdicts; counts; the paper."""
    own = ", ".join(f"h{c + 1} {format_interval(h)}" for c, h in enumerate(results["own_nll_per_token"]))
    lines = [f"{summary_title(results)}; checkpoints after {results['checkpoints']} aligned examples; "
             f"{results['n_prompts']} output prompts; {interval_note(len(results['seeds']))} (losses on the log scale: "
             "geometric means; gaps paired by seed)", "",
             f"own loss of each checkpoint's outputs (nats/token): {own}", "",
             "| pair | loss | forward | inverse | forward - inverse | verdict | controlled gap | controlled verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        for loss in LOSSES:
            e = r["losses"][loss]
            lines.append(f"| {r['forward']} vs {r['inverse']} | {loss} | {format_interval(e['forward'])} | "
                         f"{format_interval(e['inverse'])} | {format_interval(e['gap_forward_minus_inverse'])} | "
                         f"{e['verdict']} | {format_interval(e.get('controlled_gap'))} | {e.get('controlled_verdict', 'n/a')} |")
    lines += ["", "Seeds are the independent unit (a seed's pairs share its alignment run and checkpoints):"]
    lines += [f"- {loss}, {kind}: {format_seed_count(c)}" for loss, by in results["inverse_lower"].items() for kind, c in by.items()]
    lines += ["", f"paper: {PAPER['count']}; e.g. {PAPER['example']['model']} on {PAPER['example']['data']}: theta2->theta1 "
        f"{PAPER['example']['inverse_theta2_to_theta1']} vs theta1->theta2 {PAPER['example']['forward_theta1_to_theta2']}"]
    return "\n".join(lines)


EXPERIMENT = register(Experiment(
    name=NAME,
    question="On a pretrained LM, is fine-tuning a later alignment checkpoint on an earlier one's outputs easier "
             "(lower training loss) than the reverse, and does it stay so once each target's own loss is subtracted?",
    prediction="paper §5.1 (Table 1): inverse loss < forward loss, 27/27; THEORY §4 weakness 4: control for target entropy",
    config_class=LMResistanceConfig, quick=quick_config, run=run, plot=plot, summarize=summarize, check=check,
    variant_of="resistance",
))
