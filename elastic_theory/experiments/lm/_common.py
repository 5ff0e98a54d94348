"""Pieces shared by the real-model protocols (``lm-rebound``, ``lm-resistance``, ``lm-ratio``): checks, loading,
training with callbacks, snapshots, scoring, the loop over seeds of ``run``, and the titles of plots and tables."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ...infra.trainconfig import FinetuneConfig

__all__ = ["DEFAULT_MODEL", "SETTINGS", "check_common", "check_data", "finetune_losses", "load_base", "load_pairs",
           "measure_missing", "plot_title", "pooled_nll_per_token", "run_header", "snapshot", "stream",
           "summary_title", "track_files"]

DEFAULT_MODEL = "smollm2-135m"
SETTINGS = ("safety", "sentiment")


def load_pairs(setting: str):
    """The preference pairs of ``setting`` (a named setting or a pairs JSONL path); ``ValueError`` if absent."""
    from ...data import corpora

    if setting == "safety":
        return corpora.jailbreakbench_pairs()
    if setting == "sentiment":
        return corpora.polarity_pairs(seed=0)
    if not Path(setting).is_file():
        raise ValueError(f"setting {setting!r}: expected {' or '.join(SETTINGS)}, or the path of a pairs JSONL file")
    return corpora.read_pairs_jsonl(setting)


def stream(pool, n: int, seed: int, stage: int) -> list:
    """The first ``n`` examples of a stage's stream: ``pool`` in seeded orders, one fresh permutation per pass.

    The stream does not depend on ``n``: ``stream(pool, m, ...)`` is a prefix of ``stream(pool, n, ...)`` for ``m <= n``.
    """
    rng = np.random.default_rng([seed, stage])
    out: list = []
    while len(out) < n:
        out.extend(pool[i] for i in rng.permutation(len(pool)))
    return out[:n]


def check_common(config, amounts: dict[str, tuple[int, ...]]) -> None:
    """The checks every real-model config shares: ``model``, ``setting`` and ``seeds``, and every amount of
    ``amounts`` (name -> values) a positive multiple of ``config.finetune.batch_size`` (whole optimizer steps)."""
    if not isinstance(config.model, str) or not config.model:
        raise ValueError(f"model must be a model name or path, got {config.model!r}")
    if not isinstance(config.setting, str) or not config.setting:
        raise ValueError(f"setting must be safety, sentiment or a pairs JSONL path, got {config.setting!r}")
    b = config.finetune.batch_size
    for name, values in amounts.items():
        for n in values:
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or n % b:
                raise ValueError(f"{name}: {n!r} must be a positive multiple of finetune.batch_size = {b} "
                                 "(amounts are whole optimizer steps)")
    if not config.seeds or len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"seeds must be at least one distinct integer, got {list(config.seeds)}")


def check_data(config, split) -> list:
    """What can be checked before a model loads: the model's files exist, and ``split(pairs, config, seed)``
    succeeds for every seed (the data suffice); returns the pairs."""
    from ...empirical.loading import locate_model

    locate_model(config.model)
    pairs = load_pairs(config.setting)
    for seed in config.seeds:
        split(pairs, config, seed)
    return pairs


def load_base(model: str, device: str):
    """``(source, model, tokenizer)`` of the base model, loaded once per run."""
    from ...empirical.loading import load_model_and_tokenizer, locate_model

    source = locate_model(model)
    net, tokenizer = load_model_and_tokenizer(model, device=device, source=source)
    return source, net, tokenizer


def measure_missing(config, device: str, done, measure) -> None:
    """Call ``measure(seed, base_model, tokenizer)`` for every seed of ``config.seeds`` that is not ``done(seed)``,
    loading the base model (:func:`load_base`) once, at the first such seed: a finished run loads no model."""
    loaded = None
    for seed in config.seeds:
        if done(seed):
            continue
        loaded = loaded or load_base(config.model, device)
        _, base_model, tokenizer = loaded
        measure(seed, base_model, tokenizer)


def run_header(config, name: str, **extra) -> dict:
    """The first keys of a protocol's results: ``experiment``, ``model`` (where it was loaded from), ``setting``,
    then ``extra`` in its order, then ``algorithm`` and ``lora``."""
    from ...empirical.loading import locate_model

    return {"experiment": name, "model": locate_model(config.model).describe(), "setting": config.setting, **extra,
            "algorithm": config.finetune.algorithm, "lora": config.finetune.lora}


def track_files(run_dir) -> list[str]:
    """The rate-tracker files of the run directory, relative to it, sorted."""
    return sorted(run_dir.relative(p) for p in run_dir.root.glob("tracks/*.jsonl"))


def _run_label(results: dict, setting: str) -> str:
    return (f"{results['experiment']}: {results['model']['name']}, {setting}{results['setting']}, {results['algorithm']}"
            f"{' + LoRA' if results['lora'] else ''}")


def plot_title(results: dict) -> str:
    """``NAME: MODEL, SETTING, ALGORITHM[ + LoRA]; 95% intervals over seeds [...]``: what a protocol's figure shows."""
    return f"{_run_label(results, '')}; 95% intervals over seeds {results['seeds']}"


def summary_title(results: dict) -> str:
    """``NAME: MODEL, setting SETTING, ALGORITHM[ + LoRA]; seeds [...]``: how a protocol's summary starts."""
    return f"{_run_label(results, 'setting ')}; seeds {results['seeds']}"


def finetune_losses(model, tokenizer, examples, config: FinetuneConfig, target: str, seed: int,
                    at_steps: dict, bar, tracker=None) -> tuple[object, tuple[float, ...]]:
    """Fine-tune, calling ``at_steps[step](model)`` at the listed optimizer steps (0 = before the first) and
    advancing ``bar`` once per step; ``tracker`` (a :class:`~elastic_theory.empirical.RateTracker` or None) measures
    as :func:`~elastic_theory.empirical.finetune.run_finetune` says. Return the trained model and the loss the
    trainer logged at each step (nats, see ``FinetuneResult``). The trainer's scratch files go to a temporary
    folder that is removed afterwards."""
    from ...empirical.finetune import run_finetune

    def on_step(step, net):
        if step in at_steps:
            at_steps[step](net)
        if step:
            bar.update()

    result = run_finetune(model, tokenizer, examples, config, target=target, seed=seed, on_step=on_step, tracker=tracker)
    return result.model, result.losses


def snapshot(net, template):
    """The current weights of the model being trained (a LoRA adapter merged in), in a copy of ``template``.

    ``template`` is the base model, which never went through a trainer: the copy is a plain model of
    the base's class that carries no trainer state or adapter, ready for the next stage.
    """
    weights = copy.deepcopy(net).merge_and_unload() if hasattr(net, "merge_and_unload") else net
    clone = copy.deepcopy(template)
    clone.load_state_dict(weights.state_dict())
    return clone.eval()


def pooled_nll_per_token(model, tokenizer, pairs) -> float:
    """Negative log-likelihood of the pairs' aligned responses, pooled: total nats over total response tokens,
    tokenized as trained (:func:`~elastic_theory.empirical.behaviour_logprobs.response_log_probs`, EOS included)."""
    from ...empirical.behaviour_logprobs import response_log_probs

    scores = response_log_probs(model, tokenizer, pairs, "aligned")  # in eval mode, the model's mode restored
    return float(-scores.log_prob.sum() / scores.n_tokens.sum())
