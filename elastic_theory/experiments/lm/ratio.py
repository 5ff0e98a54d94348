r"""The measured ratio of rate changes, alignment set over pre-training proxy, against the k of the run (THEORY §2).

``elastic-theory experiment ratio --model MODEL --algorithm sft|dpo [--lora]`` runs ``lm-ratio``.

**Theory.** At the joint optimum of pre-training data :math:`D_p` and alignment data :math:`D_a`, a
small perturbation :math:`D_t` changes the two datasets' rates in the ratio
:math:`R = (d\gamma_a/dl) / (-d\gamma_p/dl) = \Theta(k)`, :math:`k = |D_p|/|D_a|`, with
:math:`R \to k` as :math:`l \to 0` in the disjoint-support model (THEORY §2.2): alignment is
forgotten about :math:`k` times faster than pre-training. Applied to exactly this run, the
prediction is :math:`R_{meas} \approx k` to first order, and across alignment amounts
:math:`\ln R_{meas} = \ln k + c`: slope 1 against :math:`\ln k`. The run is sequential
fine-tuning, not the joint optimum the theorem is about (THEORY §4 weakness 1): the experiment
measures how far the prediction carries over.

**Data** (``setting``, as ``lm-rebound``; the polarity pairs of ``sentiment`` share one prompt and are
split by name). Per seed, a seeded split
(:func:`~elastic_theory.data.corpora.split_train_measure`) cuts the prompts in two disjoint pools: the
*perturbation pool* (``n_perturb_pool`` prompts) and the *alignment pool* (the rest), each read
as a seeded stream (:func:`~elastic_theory.experiments.lm._common.stream`; the first :math:`n`
examples are the same for every longer run).

**Protocol, per seed.** Align the base model (``target="aligned"``) on the first :math:`n_+`
examples of the alignment stream, one run over the largest :math:`n_+` of ``align_amounts`` with
the model kept at every :math:`n_+`; from each, perturb (``target="unaligned"``) on the first
``perturb_amount`` = :math:`m` examples of the perturbation stream (the same for every :math:`n_+`).

**Rates** (bits per token, pooled over documents, scored as ``measure`` and the
:class:`~elastic_theory.empirical.RateTracker` score them: whole documents, no special tokens, the
first token conditioned on BOS/EOS). :math:`\gamma_a`: the alignment documents trained on at this
:math:`n_+`, each distinct one once, as the text ``prompt_text(prompt) + aligned response`` (the
whole document the model read, prompt included: the theory's :math:`D_a` is a set of documents,
and the same tokens give :math:`|D_a|`). :math:`\gamma_p`: the first ``n_wikipedia`` paragraphs of
:func:`~elastic_theory.data.corpora.wikipedia_sample` (the pre-training proxy). Both are measured on the
base model, after alignment and after the perturbation; the rate changes are
:math:`\Delta\gamma = \gamma(\text{perturbed}) - \gamma(\text{aligned})` (the base-model rates are
reported, not used), written to ``tracks/*.jsonl`` (with ``track_every`` > 0 also every that many
optimizer steps). Second measure of the alignment set, ``alignment_responses``: bits per token of
the aligned responses only, given their prompts, tokenized as trained (EOS included;
:func:`~elastic_theory.experiments.lm._common.pooled_nll_per_token`), so that the chat template and the
prompts, which the perturbation data share, do not enter; its ratio uses ``k_response_tokens``.

**k of the run.** :math:`k = |D_p| / |D_a|` in tokens: :math:`|D_p|` = ``pretrain_tokens``, the
model's pre-training tokens: by default the built-in model's model-card figure (SmolLM2-135M: 2T, Gemma 3
270M: 6T; :func:`pretrain_tokens_of`), and required (``--set pretrain_tokens=N``) for any other model;
:math:`|D_a|` = the tokens of the :math:`n_+` alignment documents trained on, repeats counted, as
the rates count them (``k``); also with :math:`|D_a|` counted in the response tokens the SFT loss
covers (``k_response_tokens``, EOS included).

**Analysis** (:func:`~elastic_theory.experiments.lm._ratio_analysis.analyse`, from the units only). Per :math:`n_+`:
:math:`R_{meas} = \overline{\Delta\gamma_a} / (-\overline{\Delta\gamma_p})` over seeds with
Fieller's 95% interval (:func:`~elastic_theory.stats.comparison.fieller_interval`, the covariance of the
two seed means, its normal quantile replaced by Student's :math:`t_{n-1}`; no interval when the
denominator is not resolved from 0), the per-seed ratios, :math:`k`, :math:`R_{meas}/k` and the
mean rate changes with seed intervals. Across the grid: per seed the least-squares slope of
:math:`\ln R_{meas}` against :math:`\ln k` (defined when every ratio of the seed is positive), its
seed interval, and the verdict against the predicted 1.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

from ..._validation import check_count
from ...infra.rundir import RunDir, unit_key
from ...infra.trainconfig import FinetuneConfig
from .. import Context, Experiment, register
from ._common import (DEFAULT_MODEL, check_common, check_data, finetune_losses, load_pairs, measure_missing,
                      pooled_nll_per_token, run_header, snapshot, stream, track_files)
from ._ratio_analysis import DATASETS, STATES, analyse, plot, pretrain_tokens_of, summarize

__all__ = ["LMRatioConfig", "check", "measure_seed", "pretrain_tokens_of", "quick_config", "run"]

NAME = "lm-ratio"
"""SmolLM2-135M was pre-trained on 2 trillion tokens (its Hugging Face model card, "Training" section)."""


@dataclass(frozen=True)
class LMRatioConfig:
    """Align on n+ examples (a grid), perturb on m, measure the alignment set's and the proxy's rates (module docstring).

    ``pretrain_tokens`` is the model's pre-training data in tokens, |D_p|: None (the default) takes the built-in
    model's figure from its model card (:func:`pretrain_tokens_of`); any other ``model`` must set it, since a wrong
    |D_p| would move k, and every R/k, by its factor without a warning.
    """

    model: str = DEFAULT_MODEL
    setting: str = "safety"
    finetune: FinetuneConfig = FinetuneConfig(lr=1e-3, batch_size=4, max_length=96, lora=True)
    align_amounts: tuple[int, ...] = (4, 8, 16)  # measured: n+ up to 32 costs 8 CPU min per seed on SmolLM2
    perturb_amount: int = 8
    n_perturb_pool: int = 40
    n_wikipedia: int = 4
    pretrain_tokens: float | None = None
    track_every: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        if len(set(self.align_amounts)) != len(self.align_amounts) or not self.align_amounts:
            raise ValueError(f"align_amounts needs >= 1 distinct amounts, got {list(self.align_amounts)}")
        check_common(self, {"align_amounts": self.align_amounts, "perturb_amount": (self.perturb_amount,)})
        check_count(self.n_perturb_pool, "n_perturb_pool", 1)
        check_count(self.n_wikipedia, "n_wikipedia", 1)
        check_count(self.track_every, "track_every", 0)
        if self.pretrain_tokens is None:
            pretrain_tokens_of(self)  # a built-in model, or say to set it
        elif (isinstance(self.pretrain_tokens, bool) or not isinstance(self.pretrain_tokens, (int, float))
                or not math.isfinite(self.pretrain_tokens) or self.pretrain_tokens <= 0):
            raise ValueError(f"pretrain_tokens must be the model's pre-training tokens, a finite number > 0, "
                             f"got {self.pretrain_tokens!r}")


def quick_config() -> LMRatioConfig:
    """Two seeds, two alignment amounts, one perturbation of two steps: about 3 CPU minutes on SmolLM2-135M."""
    return LMRatioConfig(align_amounts=(4, 8), n_wikipedia=2, seeds=(0, 1))


def _split(pairs, config: LMRatioConfig, seed: int):
    """``(alignment pool, perturbation pool)``: disjoint prompts, seeded."""
    from ...data.corpora import split_train_measure

    key = (lambda p: p.name) if config.setting == "sentiment" else None  # polarity pairs share one prompt
    split = split_train_measure(pairs, n_measure=config.n_perturb_pool, seed=seed, key=key, measure_fraction=None)
    return split.train, split.measure


def _wikipedia(n: int) -> list[str]:
    from ...data.corpora import wikipedia_sample

    paragraphs = [x.text for x in wikipedia_sample("paragraph")]
    if n > len(paragraphs):
        raise ValueError(f"n_wikipedia = {n}: the Wikipedia sample has {len(paragraphs)} paragraphs; ask for fewer")
    return paragraphs[:n]


def check(config: LMRatioConfig) -> None:
    """What can be checked before a model loads: the model's files, the data for every seed, the proxy's size."""
    check_data(config, _split)
    _wikipedia(config.n_wikipedia)


# ------------------------------------------------------------------ measuring
def _documents(tokenizer, examples) -> list[str]:
    from ...empirical.finetune import prompt_text

    return [prompt_text(tokenizer, p.prompt) + p.aligned for p in examples]


def _distinct(items: list) -> list:
    return list(dict.fromkeys(items))


def _response_lengths(tokenizer, examples) -> list[int]:
    """Tokens of each example's aligned response, tokenized as trained (EOS included, prompt excluded)."""
    from ...empirical.behaviour_logprobs import response_token_ids

    return [len(ids) - start for ids, start in (response_token_ids(tokenizer, p.prompt, p.aligned) for p in examples)]


def _response_rate(net, tokenizer, examples) -> dict:
    """Bits per response token of the examples' aligned responses given their prompts (pooled), and the token count."""
    return {"bits_per_token": pooled_nll_per_token(net, tokenizer, examples) / math.log(2),
            "n_tokens": sum(_response_lengths(tokenizer, examples))}


def measure_seed(config: LMRatioConfig, seed: int, base_model, tokenizer, pairs, run_dir: RunDir, ctx: Context) -> None:
    """Compute the missing (seed, n+) units: one alignment run to the largest missing n+, one perturbation per n+."""
    from ...empirical import RateTracker
    from ...empirical.data import check_documents
    from ...empirical.scoring import encode_documents

    aligns = sorted(config.align_amounts)
    keys = {n: unit_key(seed=seed, align=n) for n in aligns}
    missing = [n for n in aligns if not run_dir.has_unit(keys[n])]
    if not missing:
        return
    align_pool, perturb_pool = _split(pairs, config, seed)
    examples = stream(align_pool, max(missing), seed, 0)
    documents = _documents(tokenizer, examples)
    doc_tokens = [len(ids) for ids in encode_documents(tokenizer, check_documents(documents, "alignment"))]
    response_tokens = _response_lengths(tokenizer, examples)
    wiki = _wikipedia(config.n_wikipedia)
    b = config.finetune.batch_size
    every = config.track_every or 10**9
    trackers = {}
    for n in missing:
        path = run_dir.path("tracks", f"{keys[n]}_align.jsonl")
        path.unlink(missing_ok=True)  # a re-run stage rewrites its track
        trackers[n] = RateTracker({"alignment": _distinct(documents[:n]), "wikipedia": wiki}, tokenizer, path, every=every)
    rates: dict[int, dict] = {n: {} for n in missing}
    kept: dict[int, object] = {}

    def at_align(step, net):
        for n in missing:
            if step == 0 or step == n // b:
                state = "base" if step == 0 else "aligned"
                rates[n][state] = {r["dataset"]: r for r in trackers[n].measure(net, step)}
                rates[n][state]["alignment_responses"] = _response_rate(net, tokenizer, _distinct(examples[:n]))
            elif step < n // b:
                trackers[n].maybe_measure(net, step)
            if step == n // b:
                kept[n] = snapshot(net, base_model)

    bar = ctx.bar(max(missing) // b + len(missing) * config.perturb_amount // b, f"seed {seed} optimizer steps")
    t0 = time.perf_counter()
    finetune_losses(copy.deepcopy(base_model), tokenizer, examples, config.finetune, "aligned",
                    seed,
                    {s: (lambda net, s=s: at_align(s, net)) for s in range(max(missing) // b + 1)}, bar)
    align_seconds = time.perf_counter() - t0
    perturbation = stream(perturb_pool, config.perturb_amount, seed, 1)
    last = config.perturb_amount // b
    for n in missing:
        t1 = time.perf_counter()
        path = run_dir.path("tracks", f"{keys[n]}_perturb.jsonl")
        path.unlink(missing_ok=True)
        tracker = RateTracker({"alignment": _distinct(documents[:n]), "wikipedia": wiki}, tokenizer, path, every=every)

        def at_perturb(step, net, n=n, tracker=tracker):
            if step == last:
                rates[n]["perturbed"] = {r["dataset"]: r for r in tracker.measure(net, step)}
                rates[n]["perturbed"]["alignment_responses"] = _response_rate(net, tokenizer, _distinct(examples[:n]))
            elif step:
                tracker.maybe_measure(net, step)

        _, losses = finetune_losses(kept.pop(n), tokenizer, perturbation, config.finetune, "unaligned",
                                    seed,
                                    {s: (lambda net, s=s: at_perturb(s, net)) for s in range(1, last + 1)}, bar)
        run_dir.unit(keys[n], lambda: {
            "seed": seed, "align_amount": n, "perturb_amount": config.perturb_amount,
            "align_tokens": int(sum(doc_tokens[:n])), "align_response_tokens": int(sum(response_tokens[:n])),
            "distinct_align_documents": len(_distinct(documents[:n])),
            "rates": {state: {d: {"bits_per_token": rates[n][state][d]["bits_per_token"],
                                  "n_tokens": rates[n][state][d]["n_tokens"]} for d in DATASETS}
                      for state in STATES},
            "perturb_losses": list(losses),
            "seconds": {"align_run": align_seconds, "perturb_run": time.perf_counter() - t1}})
    bar.close()


def run(config: LMRatioConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Load the model once, compute every missing unit (resumable), analyse the saved units."""
    pairs = load_pairs(config.setting)
    started = time.perf_counter()
    measure_missing(config, ctx.device,
                    lambda seed: all(run_dir.has_unit(unit_key(seed=seed, align=n)) for n in config.align_amounts),
                    lambda seed, base_model, tokenizer: measure_seed(config, seed, base_model, tokenizer, pairs, run_dir, ctx))
    units = {n: [run_dir.read_unit(unit_key(seed=s, align=n)) for s in config.seeds] for n in config.align_amounts}
    return {**run_header(config, NAME), **analyse(config, units),
            "tracks": track_files(run_dir), "compute_seconds_this_call": time.perf_counter() - started,
            "unit_seconds": {str(n): [u["seconds"] for u in us] for n, us in units.items()}}


EXPERIMENT = register(Experiment(
    name=NAME,
    question="On a pretrained LM aligned with n+ examples and perturbed, is the ratio of the alignment set's rate change "
             "to the pre-training proxy's about k = |D_p|/|D_a|, and does it scale as k across n+?",
    prediction="THEORY §2 (paper Thm. 4.2): R = Theta(k), R -> k to first order at the joint optimum; slope 1 in ln k",
    config_class=LMRatioConfig, quick=quick_config, run=run, plot=plot, summarize=summarize, check=check,
    variant_of="ratio",
))
