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
model's pre-training tokens (SmolLM2-135M: 2T, from its model card; set it for another model);
:math:`|D_a|` = the tokens of the :math:`n_+` alignment documents trained on, repeats counted, as
the rates count them (``k``); also with :math:`|D_a|` counted in the response tokens the SFT loss
covers (``k_response_tokens``, EOS included).

**Analysis** (:func:`analyse`, from the units only). Per :math:`n_+`:
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
from pathlib import Path

import numpy as np

from ..._validation import check_count
from ...infra.rundir import RunDir, unit_key
from ...stats.seedstats import error_bars, format_interval, saved_number, seed_interval
from ...infra.trainconfig import FinetuneConfig
from .. import Context, Experiment, register
from ._common import (DEFAULT_MODEL, check_common, check_data, finetune_losses, load_base, load_pairs, missing_unit,
                      pooled_nll_per_token, snapshot, stream)

__all__ = ["LMRatioConfig", "analyse", "fieller_seed_ratio", "measure_seed", "plot", "quick_config", "run", "summarize"]

NAME = "lm-ratio"
SMOLLM2_135M_PRETRAIN_TOKENS = 2.0e12
"""SmolLM2-135M was pre-trained on 2 trillion tokens (its Hugging Face model card, "Training" section)."""
STATES = ("base", "aligned", "perturbed")
DATASETS = ("alignment", "alignment_responses", "wikipedia")


@dataclass(frozen=True)
class LMRatioConfig:
    """Align on n+ examples (a grid), perturb on m, measure the alignment set's and the proxy's rates (module docstring).

    ``pretrain_tokens`` is the model's pre-training data in tokens, |D_p|: the default is
    SmolLM2-135M's (2T tokens, its model card); set it when ``model`` is another model.
    """

    model: str = DEFAULT_MODEL
    setting: str = "safety"
    finetune: FinetuneConfig = FinetuneConfig(lr=1e-3, batch_size=4, max_length=96, lora=True)
    align_amounts: tuple[int, ...] = (4, 8, 16)  # measured: n+ up to 32 costs 8 CPU min per seed on SmolLM2
    perturb_amount: int = 8
    n_perturb_pool: int = 40
    n_wikipedia: int = 4
    pretrain_tokens: float = SMOLLM2_135M_PRETRAIN_TOKENS
    track_every: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        if len(set(self.align_amounts)) != len(self.align_amounts) or not self.align_amounts:
            raise ValueError(f"align_amounts needs >= 1 distinct amounts, got {list(self.align_amounts)}")
        check_common(self, {"align_amounts": self.align_amounts, "perturb_amount": (self.perturb_amount,)})
        check_count(self.n_perturb_pool, "n_perturb_pool", 1)
        check_count(self.n_wikipedia, "n_wikipedia", 1)
        check_count(self.track_every, "track_every", 0)
        if (isinstance(self.pretrain_tokens, bool) or not isinstance(self.pretrain_tokens, (int, float))
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
    split = split_train_measure(pairs, n_measure=config.n_perturb_pool, seed=seed, key=key)
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
    from ...empirical.behaviour_lm import response_token_ids

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


# ------------------------------------------------------------------ analysis
def fieller_seed_ratio(numerators, denominators, level: float = 0.95) -> dict:
    r"""Ratio of seed means :math:`\bar N / \bar D` with Fieller's interval, Student-t quantile.

    The covariance is that of the two means (sample covariance over seeds / n). Fieller's set uses
    :math:`z^2`; passing :func:`~elastic_theory.stats.comparison.fieller_interval` the level whose normal
    quantile equals :math:`t_{(1+level)/2, n-1}` makes it use :math:`t^2` (few seeds: wider, honest).
    ``ci95`` is None for one seed or an unresolved denominator (the set is unbounded).
    """
    from scipy import stats

    from ...stats.comparison import fieller_interval

    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    n = num.size
    value = float(num.mean() / den.mean()) if den.mean() != 0 else math.nan
    ci = None
    if n >= 2:
        t = float(stats.t.ppf(0.5 + level / 2, n - 1))
        z_level = float(2 * stats.norm.cdf(t) - 1)
        cov = np.cov(np.vstack([num, den]), ddof=1) / n
        ci = fieller_interval(float(num.mean()), float(den.mean()), cov, level=z_level)
    return {"value": value, "ci95": None if ci is None else [float(ci[0]), float(ci[1])], "n_seeds": int(n),
            "per_seed": [float(a / b) if b != 0 else math.nan for a, b in zip(num, den)]}


def _delta(unit: dict, dataset: str) -> float:
    r = unit["rates"]
    return float(r["perturbed"][dataset]["bits_per_token"] - r["aligned"][dataset]["bits_per_token"])


def analyse(config: LMRatioConfig, units: dict[int, list[dict]]) -> dict:
    """R_meas per n+ (Fieller interval over seeds), k, R/k, and the slope of ln R against ln k across n+.

    ``units[n_plus]`` lists the per-seed units of that alignment amount, in the same seed order for every n+.
    """
    aligns = sorted(units)
    by_align = {}
    log_r, log_k = [], []
    for n in aligns:
        us = units[n]
        da = np.array([_delta(u, "alignment") for u in us])
        da_resp = np.array([_delta(u, "alignment_responses") for u in us])
        dp = np.array([_delta(u, "wikipedia") for u in us])
        k = np.array([config.pretrain_tokens / u["align_tokens"] for u in us])
        k_resp = np.array([config.pretrain_tokens / u["align_response_tokens"] for u in us])
        ratio = fieller_seed_ratio(da, -dp)
        ratio_resp = fieller_seed_ratio(da_resp, -dp)
        by_align[str(n)] = {
            "align_amount": n,
            "delta_gamma_a": seed_interval(da).as_dict(), "delta_gamma_p": seed_interval(dp).as_dict(),
            "R_meas": ratio,
            "k": float(k.mean()), "k_per_seed": k.tolist(), "k_response_tokens": float(k_resp.mean()),
            "R_over_k": ratio["value"] / float(k.mean()),
            "responses": {"delta_gamma_a": seed_interval(da_resp).as_dict(), "R_meas": ratio_resp,
                          "R_over_k": ratio_resp["value"] / float(k_resp.mean())},
            "align_tokens": [u["align_tokens"] for u in us],
            "rates": {state: {d: seed_interval([u["rates"][state][d]["bits_per_token"] for u in us]).as_dict()
                              for d in DATASETS} for state in STATES},
            "signs_as_theorem": f"{int(((da > 0) & (dp < 0)).sum())}/{len(us)} seeds with d gamma_a > 0 > d gamma_p",
        }
        log_r.append([math.log(r) if r > 0 else math.nan for r in ratio["per_seed"]])
        log_k.append(np.log(k).tolist())
    slope = None
    if len(aligns) >= 2:
        lr, lk = np.array(log_r).T, np.array(log_k).T  # seeds x n+
        per_seed = [float(np.polyfit(x, y, 1)[0]) if np.isfinite(y).all() else math.nan for x, y in zip(lk, lr)]
        finite = [s for s in per_seed if math.isfinite(s)]
        interval = seed_interval(finite).as_dict() if finite else None
        verdict = ("undefined (a non-positive ratio in every seed)" if interval is None
                   else "inconclusive (one seed)" if interval["n"] < 2
                   else "consistent with 1" if interval["low"] <= 1 <= interval["high"] else "differs from 1")
        slope = {"per_seed": per_seed, "seeds_defined": f"{len(finite)}/{len(per_seed)}", "interval": interval,
                 "predicted": 1.0, "verdict": verdict}
    return {
        "seeds": [u["seed"] for u in units[aligns[0]]],
        "pretrain_tokens": config.pretrain_tokens,
        "perturb_amount": config.perturb_amount,
        "by_align": by_align,
        "slope_ln_R_vs_ln_k": slope,
        "units": {"rates": "bits per token", "R_meas": "d gamma_a / (-d gamma_p), both in bits per token",
                  "k": "pretrain_tokens / alignment document tokens trained on (repeats counted)",
                  "responses": "gamma_a over the aligned responses given their prompts; R over k_response_tokens"},
        "prediction": "R_meas ~ k (THEORY §2: first order, joint optimum); slope of ln R_meas against ln k = 1",
    }


def run(config: LMRatioConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Load the model once, compute every missing unit (resumable), analyse the saved units."""
    from ...empirical.loading import locate_model

    pairs = load_pairs(config.setting)
    started = time.perf_counter()
    loaded = None
    for seed in config.seeds:
        if all(run_dir.has_unit(unit_key(seed=seed, align=n)) for n in config.align_amounts):
            continue
        loaded = loaded or load_base(config.model, ctx.device)
        _, base_model, tokenizer = loaded
        measure_seed(config, seed, base_model, tokenizer, pairs, run_dir, ctx)
    units = {n: [run_dir.unit(unit_key(seed=s, align=n), missing_unit) for s in config.seeds] for n in config.align_amounts}
    tracks = sorted(run_dir.relative(p) for p in run_dir.root.glob("tracks/*.jsonl"))
    return {"experiment": NAME, "model": locate_model(config.model).describe(), "setting": config.setting,
            "algorithm": config.finetune.algorithm, "lora": config.finetune.lora, **analyse(config, units),
            "tracks": tracks, "compute_seconds_this_call": time.perf_counter() - started,
            "unit_seconds": {str(n): [u["seconds"] for u in us] for n, us in units.items()}}


# ------------------------------------------------------------------ plots and tables
def plot(results: dict, folder: Path) -> list[Path]:
    """``lm-ratio.png``: R_meas against k (log-log, Fieller intervals, the line R = k), and the rate changes per n+."""
    from .._plotting import figure, save_figure

    rows = list(results["by_align"].values())
    fig, (ax, deltas) = figure(2, width=4.8, height=4.0)
    k = np.array([r["k"] for r in rows])
    for r in rows:
        v, ci = saved_number(r["R_meas"]["value"]), r["R_meas"]["ci95"]
        if v > 0:  # a log axis shows positive ratios only; the table has every one
            yerr = None if ci is None or ci[0] <= 0 else [[v - ci[0]], [ci[1] - v]]
            ax.errorbar([r["k"]], [v], yerr=yerr, fmt="o", capsize=3, color="C0")
            ax.annotate(f"n+={r['align_amount']}", (r["k"], v), fontsize=7)
    ax.plot(k, k, "k--", lw=1, label="R = k (prediction)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k = |D_p| / |D_a| (tokens)")
    ax.set_ylabel("R_meas = d gamma_a / (-d gamma_p)")
    ax.legend(fontsize=8)
    n_plus = [r["align_amount"] for r in rows]
    for key, label in (("delta_gamma_a", "d gamma_a (alignment set)"), ("delta_gamma_p", "d gamma_p (Wikipedia)")):
        m, err = error_bars([r[key] for r in rows])
        deltas.errorbar(n_plus, m, yerr=err, marker="o", capsize=3, label=label)
    deltas.axhline(0, color="k", lw=0.8)
    deltas.set_xscale("log")
    deltas.set_xlabel("alignment examples n+")
    deltas.set_ylabel(f"rate change over the perturbation (m = {results['perturb_amount']}), bits/token")
    deltas.legend(fontsize=8)
    fig.suptitle(f"{NAME}: {results['model']['name']}, {results['setting']}, {results['algorithm']}"
                 f"{' + LoRA' if results['lora'] else ''}; 95% intervals over seeds {results['seeds']}", fontsize=9)
    paths = [save_figure(fig, Path(folder) / "lm-ratio.png")]
    from .._plotting import plot_track

    for track in results.get("tracks", []):
        if (Path(folder) / track).is_file():
            paths.append(plot_track(Path(folder) / track))
    return paths


def _fieller(r: dict) -> str:
    ci = r["ci95"]
    return f"{saved_number(r['value']):.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else " (no interval)")


def summarize(results: dict) -> str:
    """Markdown: per n+ the rate changes, R_meas, k and R_meas/k; the slope of ln R against ln k."""
    lines = [f"{NAME}: {results['model']['name']}, setting {results['setting']}, {results['algorithm']}"
             f"{' + LoRA' if results['lora'] else ''}; seeds {results['seeds']}; perturbation m = "
             f"{results['perturb_amount']}; |D_p| = {results['pretrain_tokens']:.3g} tokens; rates in bits/token; "
             "seed intervals 95% (t; Fieller for R)", "",
             "| n+ | d gamma_a | d gamma_p | R_meas = d gamma_a / (-d gamma_p) | k | R_meas / k | signs as theorem | "
             "responses only: d gamma_a, R_meas, R_meas / k_response |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["by_align"].values():
        lines.append(f"| {r['align_amount']} | {format_interval(r['delta_gamma_a'])} | {format_interval(r['delta_gamma_p'])} | "
                     f"{_fieller(r['R_meas'])} | {r['k']:.3g} | {saved_number(r['R_over_k']):.3g} | {r['signs_as_theorem']} | "
                     f"{format_interval(r['responses']['delta_gamma_a'])}, {_fieller(r['responses']['R_meas'])}, "
                     f"{saved_number(r['responses']['R_over_k']):.3g} |")
    s = results["slope_ln_R_vs_ln_k"]
    if s:
        lines += ["", f"slope of ln R_meas against ln k over n+: {format_interval(s['interval'])} "
                      f"(seeds with every ratio > 0: {s['seeds_defined']}); predicted {s['predicted']}: {s['verdict']}"]
    lines += ["", f"prediction: {results['prediction']}"]
    return "\n".join(lines)


EXPERIMENT = register(Experiment(
    name=NAME,
    question="On a pretrained LM aligned with n+ examples and perturbed, is the ratio of the alignment set's rate change "
             "to the pre-training proxy's about k = |D_p|/|D_a|, and does it scale as k across n+?",
    prediction="THEORY §2 (paper Thm. 4.2): R = Theta(k), R -> k to first order at the joint optimum; slope 1 in ln k",
    config_class=LMRatioConfig, quick=quick_config, run=run, plot=plot, summarize=summarize, check=check,
))
