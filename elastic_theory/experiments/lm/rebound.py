r"""The rebound and data-to-revert protocols (paper §5.2, Fig. 4, Table 3) on a pretrained causal LM.

``elastic-theory experiment rebound --model MODEL --algorithm sft|dpo [--lora]`` runs ``lm-rebound``;
``experiment data-to-revert --model ...`` runs ``lm-data-to-revert``, the same protocol with a longer
perturbation grid, summarised in Table 3's form. Both are registered here.

**Data** (``setting``). ``safety``: JailbreakBench's 100 harmful goals, aligned response = a
refusal, unaligned = the benchmark's "Sure, here is ..." target
(:func:`~elastic_theory.data.corpora.jailbreakbench_pairs`); ``sentiment``: Pang-Lee polarity pairs
(:func:`~elastic_theory.data.corpora.polarity_pairs`, aligned = the positive side); or the path of a
user's pairs JSONL file (:func:`~elastic_theory.data.corpora.read_pairs_jsonl`). Per seed, a seeded
split (:func:`~elastic_theory.data.corpora.split_train_measure`) holds out ``n_measure`` prompts for
measurement from its measurement side (half the prompts, by a seeded hash of each, the side that
``corpus --split measure`` writes); the training side's prompts are split again, by the same seed, into an *alignment pool* and a
*perturbation pool* (``perturb_prompts="disjoint"``, the default: the perturbation never revisits
a prompt the alignment saw, so what it undoes is the aligned behaviour, not a memorized answer), or
both stages draw from all of them (``"shared"``). Each stage reads a *stream*: the pool in a seeded
order, then again in a fresh order, and so on (an amount larger than the pool is several passes).
The first ``m`` examples of a stream are the same for every longer run (nested data).

**Protocol, per seed.** Align the base model (:func:`~elastic_theory.empirical.finetune.finetune`,
``target="aligned"``) on the first :math:`n_+` examples of the alignment stream: one run over the
largest :math:`n_+`, the model kept (copied in memory; with LoRA the adapter merged into a copy)
at every smaller :math:`n_+` of the grid. From each aligned model, perturb (``target="unaligned"``)
on the perturbation stream, one run measured after every :math:`m` of the grid (:math:`m = 0` is
the aligned model). The perturbation stream is the same for every :math:`n_+` of a seed, so the
comparison between alignment amounts is paired by seed and data. With LoRA each stage trains a
fresh adapter on the merged result of the previous one.

**Measured at each point**, on the held-out pairs (:mod:`elastic_theory.empirical.behaviour_logprobs`,
:mod:`elastic_theory.empirical.behaviour_generation`):
the log-probability margin :math:`\ln \pi(y_a|x) - \ln \pi(y_u|x)` (nats) of the aligned over the
unaligned response, mean over pairs, per response and per token (each response's log-probability
divided by its token count); the KL divergence to the base model per token (bits, over the response
tokens of both sides of every held-out pair), the base's next-token distributions computed once per
seed; and a generation score on the first
``n_generate`` distinct held-out prompts (greedy decoding, ``max_new_tokens``): the refusal rate by
string match (safety) or the mean VADER compound sentiment (sentiment; the polarity pairs share one
prompt, so there it is one greedy answer, a coarse score), at the perturbation amounts in
``generate_amounts`` (None: every point). The base model is measured the same way.

**Rates during training.** With ``track_every`` > 0 a :class:`~elastic_theory.empirical.RateTracker`
writes bits per token of the first ``n_track`` aligned documents of the alignment pool (prompt and
aligned response, as trained on) and of ``n_track`` Wikipedia paragraphs (the pre-training proxy,
:func:`~elastic_theory.data.corpora.wikipedia_sample`) to
``tracks/*.jsonl`` every ``track_every`` optimizer steps of every stage.

**Checkpoints** (``save_checkpoints``, on in the full config): for the first seed, every aligned
model (:math:`m = 0`) and every model after the largest :math:`m`, saved as
``checkpoints/seed=S_align=N_perturb=M`` (weights and tokenizer, LoRA merged) for
``elastic-theory compare --base MODEL --checkpoint NAME=FOLDER ...``.

**Units** (:func:`~elastic_theory.experiments.lm._rebound_protocol.measure_seed`). One cached unit per seed for the base model's scores, one per (seed, :math:`n_+`) for the
aligned model's curve: an interrupted run resumes, re-running the alignment only as far as the
largest missing :math:`n_+`.

**Analysis** (:func:`~elastic_theory.experiments.lm._rebound_analysis.analyse`, from the units only): every
curve point as a mean over seeds with a 95% Student-t interval; per seed and :math:`n_+`, the data to revert (Table 3's form): the
:math:`m` at which KL per token first falls to ``eps_kl_bits`` (:func:`~elastic_theory.stats.behaviour.data_to_revert`,
log-KL interpolated), and the :math:`m` at which the margin and the generation score first fall back
to the base model's (:func:`~elastic_theory.stats.behaviour.first_crossing`); the paired comparison
(largest minus smallest :math:`n_+`) of the drop over the first perturbation step and of the drop
per e-fold of :math:`m` (least-squares slope in :math:`\ln m`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

from ..._validation import check_count
from ...infra.rundir import RunDir, unit_key
from ...infra.trainconfig import FinetuneConfig
from .. import Context, Experiment, register
from ._common import DEFAULT_MODEL, check_common, check_data, load_pairs, measure_missing, run_header, track_files
from ._rebound_analysis import analyse, plot, summarize
from ._rebound_protocol import judge_of, measure_seed, split_seed

__all__ = ["LMReboundConfig", "check", "data_to_revert_config", "quick_config", "run"]

PERTURB_PROMPTS = ("disjoint", "shared")
JUDGE_CHOICES = ("auto", "refusal_rate", "sentiment", "none")


@dataclass(frozen=True)
class LMReboundConfig:
    """A pretrained LM (``model``: anything ``measure`` accepts) aligned and perturbed on preference pairs.

    Amounts are examples, positive multiples of ``finetune.batch_size`` (whole optimizer steps).
    See the module docstring for every field's role.
    """

    model: str = DEFAULT_MODEL
    setting: str = "safety"
    judge: str = "auto"
    finetune: FinetuneConfig = FinetuneConfig(lr=1e-4, batch_size=8, max_length=64)
    align_amounts: tuple[int, ...] = (16, 48)
    perturb_amounts: tuple[int, ...] = (8, 16, 24, 32, 48)
    perturb_prompts: str = "disjoint"
    n_measure: int = 6
    n_generate: int = 6
    max_new_tokens: int = 24
    generate_amounts: tuple[int, ...] | None = (16, 48)
    eps_kl_bits: float = 0.01
    track_every: int = 6
    n_track: int = 2
    save_checkpoints: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        if self.judge not in JUDGE_CHOICES:
            raise ValueError(f"judge must be one of {', '.join(JUDGE_CHOICES)}, got {self.judge!r}")
        if self.perturb_prompts not in PERTURB_PROMPTS:
            raise ValueError(f"perturb_prompts must be one of {', '.join(PERTURB_PROMPTS)}, got {self.perturb_prompts!r}")
        for name, minimum in (("align_amounts", 1), ("perturb_amounts", 2)):
            values = getattr(self, name)
            if len(set(values)) < minimum or len(set(values)) != len(values):
                raise ValueError(f"{name} needs >= {minimum} distinct amounts, got {list(values)}")
        check_common(self, {"align_amounts": self.align_amounts, "perturb_amounts": self.perturb_amounts})
        check_count(self.n_measure, "n_measure", 1)
        check_count(self.n_generate, "n_generate", 0)
        check_count(self.max_new_tokens, "max_new_tokens", 1)
        check_count(self.track_every, "track_every", 0)
        check_count(self.n_track, "n_track", 1)
        if self.n_generate > self.n_measure:
            raise ValueError(f"n_generate = {self.n_generate} must be <= n_measure = {self.n_measure} "
                             "(generation uses the first held-out prompts)")
        if self.generate_amounts is not None and not set(self.generate_amounts) <= set(self.perturb_amounts):
            raise ValueError(f"generate_amounts {list(self.generate_amounts)} must be amounts of perturb_amounts "
                             f"{list(self.perturb_amounts)} (or null for all)")
        if not (isinstance(self.eps_kl_bits, (int, float)) and self.eps_kl_bits > 0 and math.isfinite(self.eps_kl_bits)):
            raise ValueError(f"eps_kl_bits must be finite and > 0 (the KL threshold of data to revert), got {self.eps_kl_bits!r}")
        if not isinstance(self.save_checkpoints, bool):
            raise ValueError(f"save_checkpoints must be true or false, got {self.save_checkpoints!r}")


def quick_config() -> LMReboundConfig:
    """Two seeds, LoRA, batches of 4, two alignment and two perturbation amounts, 2 held-out pairs, 2 generated
    answers of 8 tokens at the last amount, no rate tracking (see experiments/README.md for its CPU time)."""
    return LMReboundConfig(finetune=FinetuneConfig(lr=2e-3, batch_size=4, max_length=64, lora=True),
                           align_amounts=(4, 8), perturb_amounts=(4, 8), n_measure=2, n_generate=2,
                           max_new_tokens=8, generate_amounts=(8,), track_every=0, save_checkpoints=False, seeds=(0, 1))


def data_to_revert_config() -> LMReboundConfig:
    """The data-to-revert default: the rebound protocol with a longer perturbation grid (to reach KL <= eps)."""
    return LMReboundConfig(align_amounts=(16, 48), perturb_amounts=(8, 16, 32, 64, 96), generate_amounts=(32, 96),
                           track_every=0, save_checkpoints=False)


def check(config: LMReboundConfig) -> None:
    """What can be checked before a model loads: the model's files exist, the data exist and suffice for every seed."""
    check_data(config, split_seed)


def run(config: LMReboundConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Load the model once, compute every missing unit (resumable), analyse the saved units; the results are
    those of the run directory's experiment (lm-rebound or lm-data-to-revert)."""
    pairs = load_pairs(config.setting)
    started = time.perf_counter()

    def done(seed: int) -> bool:
        return (all(run_dir.has_unit(unit_key(seed=seed, align=n)) for n in config.align_amounts)
                and run_dir.has_unit(unit_key(seed=seed, base=0)))

    measure_missing(config, ctx.device, done, lambda seed, base_model, tokenizer: measure_seed(
        config, seed, base_model, tokenizer, pairs, run_dir, ctx))
    read = run_dir.read_unit
    base_units = [read(unit_key(seed=s, base=0)) for s in config.seeds]
    units = {n: [read(unit_key(seed=s, align=n)) for s in config.seeds] for n in sorted(set(config.align_amounts))}
    results = analyse(config, base_units, units)
    return {
        **run_header(config, run_dir.experiment, judge=judge_of(config)),
        **results,
        "tracks": track_files(run_dir),
        "compute_seconds_this_call": time.perf_counter() - started,
        "unit_seconds": {str(n): [u["seconds"] for u in us] for n, us in units.items()},
        "paper": PAPER,
    }


PAPER = {
    "faster_after_more": "the more positive data, the faster the score falls under negative data (Fig. 4)",
    "data_to_revert": "fewer negative samples bring KL(model, base) below 0.01 after more positive data (Table 3)",
}


REBOUND = register(Experiment(
    name="lm-rebound",
    question="On a pretrained LM aligned with n+ examples, does the behaviour fall faster under m negative examples "
             "when n+ is larger?",
    prediction="paper §5.2 (Fig. 4, Table 3): the behaviour falls faster, and fewer negative examples revert it, "
               "after more alignment; THEORY §4.1 (sequential fine-tuning is open)",
    config_class=LMReboundConfig, quick=quick_config, run=run, plot=plot, summarize=summarize, check=check,
    variant_of="rebound",
))
# The same protocol with data_to_revert_config as its full config.
DATA_TO_REVERT = register(dataclasses.replace(
    REBOUND, name="lm-data-to-revert", defaults=data_to_revert_config, variant_of="data-to-revert",
    question="On a pretrained LM, how many negative examples bring KL(model || base) per token below eps, "
             "and the behaviour back to the base's, after n+ alignment examples (Table 3's form)?",
))
