"""The per-seed protocol of ``lm-rebound`` and ``lm-data-to-revert``: the seeded held-out / alignment /
perturbation split, the measurement of one model state, and the alignment and perturbation runs of one seed,
written as cached units. :mod:`~elastic_theory.experiments.lm.rebound` describes the protocol; ``config`` is
its ``LMReboundConfig``."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...infra.rundir import RunDir, unit_key
from .. import Context
from ._common import finetune_losses, snapshot, stream

__all__ = ["JUDGES", "Measurer", "SeedData", "judge_of", "measure_seed", "split_seed"]

JUDGES = {"safety": "refusal_rate", "sentiment": "sentiment"}


def judge_of(config) -> str | None:
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


def split_seed(pairs, config, seed: int) -> SeedData:
    """The seeded held-out / alignment / perturbation split (:mod:`~elastic_theory.experiments.lm.rebound`);
    ``ValueError`` when too small."""
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


# ------------------------------------------------------------------ measuring
class Measurer:
    """Scores one model state on a seed's held-out pairs (:mod:`~elastic_theory.experiments.lm.rebound`), against the
    base model's distributions."""

    def __init__(self, base_model, tokenizer, data: SeedData, config):
        from ...empirical import behaviour_generation, behaviour_logprobs

        self.logprobs, self.generation = behaviour_logprobs, behaviour_generation
        self.tokenizer, self.data, self.config = tokenizer, data, config
        self.base = behaviour_logprobs.base_log_probs(base_model, tokenizer, data.measure)
        self.judge = judge_of(config)

    def generation_score(self, model) -> float | None:
        """Refusal rate (fraction of refusals) or mean VADER compound of greedy answers to the generation prompts."""
        if self.judge is None:
            return None
        fn = self.generation.refusal_rate if self.judge == "refusal_rate" else self.generation.sentiment_score
        return fn(model, self.tokenizer, self.data.generate_prompts, max_new_tokens=self.config.max_new_tokens).mean

    def __call__(self, model, generate: bool = True) -> dict:
        t0 = time.perf_counter()  # every measure runs the model in eval mode and restores its mode
        m = self.logprobs.margins(model, self.tokenizer, self.data.measure)
        out = {"margin_per_token": float(m.per_token.mean()), "margin_per_response": float(m.per_response.mean()),
               "kl_bits_per_token": self.logprobs.kl_to_base_per_token(model, self.base, self.tokenizer).bits_per_token,
               "generation_score": self.generation_score(model) if generate else None}
        return {**out, "seconds": time.perf_counter() - t0}


def _tracker(config, tokenizer, data: SeedData, path: Path):
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


def measure_seed(config, seed: int, base_model, tokenizer, pairs, run_dir: RunDir, ctx: Context) -> None:
    """Compute the missing units of one seed (:mod:`~elastic_theory.experiments.lm.rebound`: Protocol); finished
    ones are left as they are."""
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
