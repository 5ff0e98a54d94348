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
measurement; the other prompts are split again, by the same seed, into an *alignment pool* and a
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

**Measured at each point**, on the held-out pairs (:mod:`elastic_theory.empirical.behaviour_lm`):
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

**Units.** One cached unit per seed for the base model's scores, one per (seed, :math:`n_+`) for the
aligned model's curve: an interrupted run resumes, re-running the alignment only as far as the
largest missing :math:`n_+`.

**Analysis** (:func:`analyse`, from the units only): every curve point as a mean over seeds with a
95% Student-t interval; per seed and :math:`n_+`, the data to revert (Table 3's form): the
:math:`m` at which KL per token first falls to ``eps_kl_bits`` (:func:`~elastic_theory.stats.behaviour.data_to_revert`,
log-KL interpolated), and the :math:`m` at which the margin and the generation score first fall back
to the base model's (:func:`~elastic_theory.stats.behaviour.first_crossing`); the paired comparison
(largest minus smallest :math:`n_+`) of the drop over the first perturbation step and of the drop
per e-fold of :math:`m` (least-squares slope in :math:`\ln m`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..._validation import check_count
from ...stats.behaviour import data_to_revert, first_crossing
from ...infra.rundir import RunDir, unit_key
from ...stats.seedstats import error_bars, format_interval, paired_difference, seed_interval
from ...infra.trainconfig import FinetuneConfig
from .. import Context, Experiment, register
from ._common import (DEFAULT_MODEL, check_common, check_data, finetune_losses, load_base, load_pairs,
                      missing_unit, snapshot, stream)

__all__ = ["LMReboundConfig", "analyse", "judge_of", "plot", "quick_config", "run", "summarize"]

PERTURB_PROMPTS = ("disjoint", "shared")
JUDGES = {"safety": "refusal_rate", "sentiment": "sentiment"}
JUDGE_CHOICES = ("auto", "refusal_rate", "sentiment", "none")
MEASURES = ("margin_per_token", "margin_per_response", "kl_bits_per_token", "generation_score")
PAPER_TABLE3 = {
    "unit": "unsafe (negative) samples needed to bring KL(model, base) below 0.01, after n+ safe samples",
    "align_amounts": [1000, 2000, 5000, 10000],
    "Llama2-7B": [961, 844, 801, 729],
    "Gemma-2B": [923, 853, 709, 598],
}


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


# ------------------------------------------------------------------ data
def judge_of(config: LMReboundConfig) -> str | None:
    """The generation score: ``config.judge``, or with ``"auto"`` the setting's (refusal rate for safety, mean
    sentiment for sentiment, none for a user's file); None when nothing is generated."""
    judge = JUDGES.get(config.setting) if config.judge == "auto" else config.judge
    return None if judge == "none" or not config.n_generate else judge


@dataclass(frozen=True)
class SeedData:
    """One seed's held-out pairs and the two training pools (alignment, perturbation)."""

    measure: list
    align_pool: list
    perturb_pool: list
    seed: int
    generate_prompts: list = field(default_factory=list)


def split_seed(pairs, config: LMReboundConfig, seed: int) -> SeedData:
    """The seeded held-out / alignment / perturbation split (module docstring); ``ValueError`` when too small."""
    from ...data.corpora import split_train_measure

    key = (lambda p: p.name) if config.setting == "sentiment" else None  # polarity pairs share one prompt
    split = split_train_measure(pairs, n_measure=config.n_measure, seed=seed, key=key)
    train = split.train
    if config.perturb_prompts == "shared":
        align_pool = perturb_pool = train
    else:
        if len(train) < 2:
            raise ValueError(f"{len(train)} training prompt(s) after holding out n_measure = {config.n_measure}: "
                             "disjoint alignment and perturbation pools need >= 2; lower n_measure")
        half = len(train) // 2
        align_pool, perturb_pool = train[:half], train[half:]
    distinct = list(dict.fromkeys(p.prompt for p in split.measure))
    return SeedData(split.measure, align_pool, perturb_pool, seed, distinct[: config.n_generate])


def check(config: LMReboundConfig) -> None:
    """What can be checked before a model loads: the model's files exist, the data exist and suffice for every seed."""
    check_data(config, split_seed)


# ------------------------------------------------------------------ measuring
class Measurer:
    """Scores one model state on a seed's held-out pairs (module docstring), against the base model's distributions."""

    def __init__(self, base_model, tokenizer, data: SeedData, config: LMReboundConfig):
        from ...empirical import behaviour_lm

        self.lm, self.tokenizer, self.data, self.config = behaviour_lm, tokenizer, data, config
        self.base = behaviour_lm.base_log_probs(base_model, tokenizer, data.measure)
        self.judge = judge_of(config)

    def generation_score(self, model) -> float | None:
        """Refusal rate (fraction of refusals) or mean VADER compound of greedy answers to the generation prompts."""
        if self.judge is None:
            return None
        fn = self.lm.refusal_rate if self.judge == "refusal_rate" else self.lm.sentiment_score
        return fn(model, self.tokenizer, self.data.generate_prompts, max_new_tokens=self.config.max_new_tokens).mean

    def __call__(self, model, generate: bool = True) -> dict:
        t0 = time.perf_counter()  # every measure runs the model in eval mode and restores its mode
        m = self.lm.margins(model, self.tokenizer, self.data.measure)
        out = {"margin_per_token": float(m.per_token.mean()), "margin_per_response": float(m.per_response.mean()),
               "kl_bits_per_token": self.lm.kl_to_base_per_token(model, self.base, self.tokenizer).bits_per_token,
               "generation_score": self.generation_score(model) if generate else None}
        return {**out, "seconds": time.perf_counter() - t0}


def _tracker(config: LMReboundConfig, tokenizer, data: SeedData, path: Path):
    """A rate tracker on the alignment pool's aligned documents and the Wikipedia proxy, or None (``track_every`` 0)."""
    if not config.track_every:
        return None
    from ...data.corpora import wikipedia_sample
    from ...empirical import RateTracker
    from ...empirical.finetune import prompt_text

    path.unlink(missing_ok=True)  # a re-run stage rewrites its track, never appends to an interrupted one
    aligned = [prompt_text(tokenizer, p.prompt) + p.aligned for p in data.align_pool[: config.n_track]]
    wiki = [x.text for x in wikipedia_sample("paragraph")[: config.n_track]]
    return RateTracker({"alignment": aligned, "wikipedia": wiki}, tokenizer, path, every=config.track_every)


def _save(model, tokenizer, run_dir: RunDir, name: str) -> None:
    """Save ``model`` (a plain model: adapters are merged by :func:`~elastic_theory.experiments.lm._common.snapshot`) as ``checkpoints/NAME`` for ``compare``."""
    from ...empirical.finetune import save_checkpoint

    save_checkpoint(model, tokenizer, run_dir.path("checkpoints", name), overwrite=True)


def measure_seed(config: LMReboundConfig, seed: int, base_model, tokenizer, pairs, run_dir: RunDir, ctx: Context) -> None:
    """Compute the missing units of one seed (module docstring: Protocol); finished ones are left as they are."""
    data = split_seed(pairs, config, seed)
    aligns = sorted(set(config.align_amounts))
    keys = {n: unit_key(seed=seed, align=n) for n in aligns}
    missing = [n for n in aligns if not run_dir.has_unit(keys[n])]
    base_key = unit_key(seed=seed, base=0)
    if not missing and run_dir.has_unit(base_key):
        return
    measure = Measurer(base_model, tokenizer, data, config)
    run_dir.unit(base_key, lambda: {"seed": seed, "n_measure": len(data.measure), "n_generate": len(data.generate_prompts),
                                    "scores": measure(base_model)})
    if not missing:
        return
    b = config.finetune.batch_size
    perturb = sorted(set(config.perturb_amounts))
    generate_at = set(perturb if config.generate_amounts is None else config.generate_amounts) | {0}
    bar = ctx.bar(max(missing) // b + len(missing) * perturb[-1] // b, f"seed {seed} optimizer steps")
    aligned = {}
    started = time.perf_counter()
    finetune_losses(copy.deepcopy(base_model), tokenizer, stream(data.align_pool, max(missing), seed, 0), config.finetune,
                    "aligned", seed, {n // b: (lambda net, n=n: aligned.__setitem__(n, snapshot(net, base_model))) for n in missing},
                    bar, _tracker(config, tokenizer, data, run_dir.path("tracks", f"{unit_key(seed=seed)}_align.jsonl")))
    align_seconds = time.perf_counter() - started
    examples = stream(data.perturb_pool, perturb[-1], seed, 1)
    for n in missing:
        curve: list[dict] = []
        t0 = time.perf_counter()
        at = {m // b: (lambda net, m=m: curve.append({"perturb_amount": m, **measure(net, m in generate_at)}))
              for m in (0, *perturb)}
        start = aligned.pop(n)
        if config.save_checkpoints and seed == config.seeds[0]:
            _save(start, tokenizer, run_dir, f"{keys[n]}_perturb=0")
        perturbed, _ = finetune_losses(start, tokenizer, examples, config.finetune, "unaligned", seed, at, bar,
                                       _tracker(config, tokenizer, data, run_dir.path("tracks", f"{keys[n]}_perturb.jsonl")))
        if config.save_checkpoints and seed == config.seeds[0]:
            _save(snapshot(perturbed, base_model), tokenizer, run_dir, f"{keys[n]}_perturb={perturb[-1]}")
        run_dir.unit(keys[n], lambda: {"seed": seed, "align_amount": n, "curve": curve,
                                       "seconds": {"align_run": align_seconds, "perturb_run": time.perf_counter() - t0}})
    bar.close()


# ------------------------------------------------------------------ analysis
def _interval_or_none(values) -> dict | None:
    return seed_interval(values).as_dict() if values and all(math.isfinite(v) for v in values) else None


def _crossing_summary(values: list[float]) -> dict:
    finite = [v for v in values if math.isfinite(v)]
    return {"per_seed": values, "reached_in": f"{len(finite)}/{len(values)} seeds", "interval": _interval_or_none(values)}


def _slope_per_efold(amounts, values) -> float:
    """Least-squares slope of ``values`` against ``ln amounts`` (the fall per e-fold of perturbation data, negated)."""
    return -float(np.polyfit(np.log(amounts), values, 1)[0])


def analyse(config: LMReboundConfig, base_units: list[dict], units: dict[int, list[dict]]) -> dict:
    """Seed intervals of every curve point, data to revert per alignment amount, and the paired drop comparison.

    ``units[n_plus]`` lists the per-seed units of that alignment amount in the order of ``base_units``.
    """
    aligns = sorted(units)
    scores = [MEASURES[0], MEASURES[1]] + (["generation_score"] if judge_of(config) else [])
    base = {k: seed_interval([u["scores"][k] for u in base_units]).as_dict() for k in scores}
    curves, revert = {}, {}
    for n in aligns:
        per_seed = [u["curve"] for u in units[n]]
        points = []
        for i, p in enumerate(per_seed[0]):
            point = {"perturb_amount": p["perturb_amount"]}
            for k in MEASURES:
                vals = [c[i][k] for c in per_seed]
                point[k] = None if any(v is None for v in vals) else seed_interval(vals).as_dict()
            for k in scores:  # paired by seed: each seed's held-out pairs differ, and so does its base's score
                vals = [c[i][k] for c in per_seed]
                point[f"{k}_minus_base"] = None if any(v is None for v in vals) else paired_difference(
                    vals, [u["scores"][k] for u in base_units]).as_dict()
            points.append(point)
        curves[str(n)] = points
        amounts = [p["perturb_amount"] for p in per_seed[0]]
        entry = {"kl": _crossing_summary([data_to_revert(amounts, [p["kl_bits_per_token"] for p in c], config.eps_kl_bits)
                                          for c in per_seed])}
        for k in scores:
            pts = [[(p["perturb_amount"], p[k]) for p in c if p[k] is not None] for c in per_seed]
            entry[f"{k}_back_to_base"] = _crossing_summary(
                [first_crossing([a for a, _ in s], [v for _, v in s], u["scores"][k]) for s, u in zip(pts, base_units)])
        entry["min_kl_bits_per_token"] = seed_interval([min(p["kl_bits_per_token"] for p in c[1:]) for c in per_seed]).as_dict()
        revert[str(n)] = entry
    comparison = None
    if len(aligns) >= 2:
        small, large = aligns[0], aligns[-1]
        comparison = {"align_small": small, "align_large": large}
        for k in scores:
            drops, slopes = {}, {}
            for n in (small, large):
                pts = [[(p["perturb_amount"], p[k]) for p in u["curve"] if p[k] is not None] for u in units[n]]
                drops[n] = [s[0][1] - s[1][1] for s in pts]
                slopes[n] = [_slope_per_efold([a for a, _ in s[1:]], [v for _, v in s[1:]]) if len(s) > 2 else math.nan
                             for s in pts]
            comparison[k] = {"first_drop": paired_difference(drops[large], drops[small]).as_dict()}
            if all(math.isfinite(v) for n in (small, large) for v in slopes[n]):
                comparison[k]["drop_per_efold"] = paired_difference(slopes[large], slopes[small]).as_dict()
    return {
        "seeds": [u["seed"] for u in base_units],
        "base": base,
        "curves": curves,
        "data_to_revert": {"eps_kl_bits_per_token": config.eps_kl_bits, "by_align": revert, "paper_table3": PAPER_TABLE3},
        "drop_comparison": comparison,
    }


def run(config: LMReboundConfig, run_dir: RunDir, ctx: Context, name: str = "lm-rebound") -> dict:
    """Load the model once, compute every missing unit (resumable), analyse the saved units."""
    from ...empirical.loading import locate_model

    pairs = load_pairs(config.setting)
    started = time.perf_counter()
    loaded = None
    for seed in config.seeds:
        done = all(run_dir.has_unit(unit_key(seed=seed, align=n)) for n in config.align_amounts)
        if done and run_dir.has_unit(unit_key(seed=seed, base=0)):
            continue
        loaded = loaded or load_base(config.model, ctx.device)
        _, base_model, tokenizer = loaded
        measure_seed(config, seed, base_model, tokenizer, pairs, run_dir, ctx)
    load = run_dir.unit
    base_units = [load(unit_key(seed=s, base=0), missing_unit) for s in config.seeds]
    units = {n: [load(unit_key(seed=s, align=n), missing_unit) for s in config.seeds] for n in sorted(set(config.align_amounts))}
    results = analyse(config, base_units, units)
    tracks = sorted(run_dir.relative(p) for p in run_dir.root.glob("tracks/*.jsonl"))
    return {
        "experiment": name,
        "model": locate_model(config.model).describe(),
        "setting": config.setting,
        "judge": judge_of(config),
        "algorithm": config.finetune.algorithm,
        "lora": config.finetune.lora,
        **results,
        "tracks": tracks,
        "compute_seconds_this_call": time.perf_counter() - started,
        "unit_seconds": {str(n): [u["seconds"] for u in us] for n, us in units.items()},
        "paper": PAPER,
    }


PAPER = {
    "faster_after_more": "the more positive data, the faster the score falls under negative data (Fig. 4)",
    "data_to_revert": "fewer negative samples bring KL(model, base) below 0.01 after more positive data (Table 3)",
}


# ------------------------------------------------------------------ plots and tables
_LABELS = {"margin_per_token_minus_base": "log-prob margin (aligned - unaligned) minus the base's, nats/token",
           "kl_bits_per_token": "KL(model || base) per token (bits)",
           "generation_score": "generation score"}


def plot(results: dict, folder: Path) -> list[Path]:
    """``lm-rebound.png`` (margin, KL, generation score against m, per n+, seed bands), ``lm-data-to-revert.png``
    (data to revert against n+, next to the paper's Table 3), and one rate-against-step plot per track."""
    from .._plotting import figure, plot_track, save_figure

    keys = [k for k in _LABELS if k != "generation_score" or results.get("judge")]
    fig, axes = figure(len(keys), width=4.6, height=4.0)
    for n, curve in results["curves"].items():
        for ax, key in zip(axes, keys):
            pts = [p for p in curve if p[key] is not None]
            x = np.array([max(p["perturb_amount"], 0.5) for p in pts], dtype=float)
            m, err = error_bars([p[key] for p in pts])
            ax.errorbar(x, m, yerr=err, marker="o", capsize=3, label=f"n+ = {n}")
    for ax, key in zip(axes, keys):
        if key in results["base"]:
            ax.axhline(float(results["base"][key]["mean"]), color="k", ls="--", lw=1, label="base model")
        if key.endswith("_minus_base"):
            ax.axhline(0.0, color="k", ls="--", lw=1, label="base model")
        ax.set_xscale("log")
        ax.set_xlabel("perturbation examples m (m = 0 drawn at 0.5)")
        title = _LABELS[key] + (f": {results['judge']}" if key == "generation_score" else "")
        ax.set_title(title, fontsize=9)
    if "kl_bits_per_token" in keys:
        ax = axes[keys.index("kl_bits_per_token")]
        ax.axhline(results["data_to_revert"]["eps_kl_bits_per_token"], color="r", ls=":", lw=1, label="eps")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{results['experiment']}: {results['model']['name']}, {results['setting']}, {results['algorithm']}"
                 f"{' + LoRA' if results['lora'] else ''}; 95% intervals over seeds {results['seeds']}", fontsize=9)
    paths = [save_figure(fig, Path(folder) / "lm-rebound.png")]

    fig, (ours, paper) = figure(2, width=4.6, height=3.8)
    revert = results["data_to_revert"]
    aligns = [int(n) for n in revert["by_align"]]
    for key, label in (("kl", "KL <= eps"), ("margin_per_token_back_to_base", "margin back to base"),
                       ("generation_score_back_to_base", "generation score back to base")):
        rows = [revert["by_align"][str(n)].get(key) for n in aligns]
        if any(r is None for r in rows):
            continue
        xs = [n for n, r in zip(aligns, rows) if r["interval"] is not None]
        if xs:
            m, err = error_bars([r["interval"] for r in rows if r["interval"] is not None])
            ours.errorbar(xs, m, yerr=err, marker="o", capsize=3, label=label)
    ours.set_xlabel("alignment examples n+")
    ours.set_ylabel("perturbation examples to revert")
    ours.set_title("this run (seeds that reached it)", fontsize=9)
    ours.legend(fontsize=8)
    table = revert["paper_table3"]
    for model in ("Llama2-7B", "Gemma-2B"):
        paper.plot(table["align_amounts"], table[model], marker="s", label=model)
    paper.set_xscale("log")
    paper.set_xlabel("safe examples n+")
    paper.set_ylabel("unsafe examples to KL < 0.01")
    paper.set_title("paper, Table 3", fontsize=9)
    paper.legend(fontsize=8)
    paths.append(save_figure(fig, Path(folder) / "lm-data-to-revert.png"))
    for track in results.get("tracks", []):
        if (Path(folder) / track).is_file():
            paths.append(plot_track(Path(folder) / track))
    return paths


def summarize(results: dict) -> str:
    """Markdown: base scores, the curves, the drop comparison and data to revert next to Table 3."""
    judge = results.get("judge")
    keys = ["margin_per_token", "margin_per_response", "kl_bits_per_token"] + (["generation_score"] if judge else [])
    lines = [f"{results['experiment']}: {results['model']['name']}, setting {results['setting']}, "
             f"{results['algorithm']}{' + LoRA' if results['lora'] else ''}; seeds {results['seeds']}; "
             "means with 95% t-intervals over seeds; margins in nats, KL in bits per token", "",
             "base model: " + ", ".join(f"{k} {format_interval(v)}" for k, v in results["base"].items()), "",
             "| n+ | m | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for n, curve in results["curves"].items():  # data to revert (Table 3's form): the ends of each curve only
        shown = curve if results["experiment"] != "lm-data-to-revert" else [curve[0], curve[-1]]
        for p in shown:
            lines.append(f"| {n} | {p['perturb_amount']} | " + " | ".join(format_interval(p[k]) for k in keys) + " |")
    d = results["drop_comparison"]
    if d:
        lines += ["", f"| drop (n+ = {d['align_large']} minus n+ = {d['align_small']}, paired by seed) | first step | per e-fold of m |",
                  "|---|---|---|"]
        for k in (k for k in keys if k in d):
            lines.append(f"| {k} | {format_interval(d[k]['first_drop'])} | {format_interval(d[k].get('drop_per_efold'))} |")
    r = results["data_to_revert"]
    cols = ["kl"] + [f"{k}_back_to_base" for k in keys if k in results["base"]]
    lines += ["", f"data to revert (perturbation examples; KL threshold {r['eps_kl_bits_per_token']} bits/token; "
              "paper: unsafe samples to KL < 0.01)", "",
              "| n+ | " + " | ".join(cols) + " | min KL per token |", "|---|" + "---|" * (len(cols) + 1)]
    for n, e in r["by_align"].items():
        cells = [format_interval(e[c]["interval"]) if e[c]["interval"] else f"not reached ({e[c]['reached_in']})"
                 for c in cols]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {format_interval(e['min_kl_bits_per_token'])} |")
    t = r["paper_table3"]
    lines += ["", "| paper, Table 3 | " + " | ".join(f"n+ = {n}" for n in t["align_amounts"]) + " |",
              "|---|" + "---|" * len(t["align_amounts"])]
    for model in ("Llama2-7B", "Gemma-2B"):
        lines.append(f"| {model} | " + " | ".join(str(v) for v in t[model]) + " |")
    return "\n".join(lines)


def _register(name: str, full, question: str) -> Experiment:
    return register(Experiment(
        name=name, question=question,
        prediction="paper §5.2 (Fig. 4, Table 3): the behaviour falls faster, and fewer negative examples revert it, "
                   "after more alignment; THEORY §4.1 (sequential fine-tuning is open)",
        config_class=LMReboundConfig, quick=quick_config,
        run=lambda config, run_dir, ctx: run(config, run_dir, ctx, name),
        plot=plot, summarize=summarize, defaults=full, check=check,
    ))


REBOUND = _register("lm-rebound", LMReboundConfig,
                    "On a pretrained LM aligned with n+ examples, does the behaviour fall faster under m negative examples "
                    "when n+ is larger?")
DATA_TO_REVERT = _register("lm-data-to-revert", data_to_revert_config,
                           "On a pretrained LM, how many negative examples bring KL(model || base) per token below eps, "
                           "and the behaviour back to the base's, after n+ alignment examples (Table 3's form)?")
