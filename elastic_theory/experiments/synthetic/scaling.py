r"""Experiment 5, scaling (paper Fig. 5-6): does rebound grow with model size and pre-training volume?

Two sweeps, per seed, with the rebound protocol of :mod:`~elastic_theory.experiments.synthetic.rebound` at
one alignment amount (``align_amount`` positive examples) and one perturbation amount
(``perturb_amount`` negative examples):

* **size**: GPT-2 models ``(n_layer, n_embd)`` from ``sizes``, each pre-trained like the rebound
  experiment (full batch, Adam, cosine, ``pretrain_steps``);
* **volume**: the base model (``model``) pre-trained for each of ``volumes`` steps, each run with its
  own cosine schedule annealed to 0 (checkpoints of one constant-rate run at this learning rate were
  unstable: their scores jumped between checkpoints, so each volume is a finished run instead).

Rebound speed of one model, on each scale: the drop of the behaviour score (probability, and
log-odds) from the aligned model to the model after the negative data, and the *fraction of the
alignment gain undone*, :math:`(s_{aligned} - s_{after}) / (s_{aligned} - s_{pretrained})` in
probability. The trend test: per seed, the least-squares slope of each speed against
:math:`\log_2` size (parameters) or :math:`\log_2` volume, with its interval over seeds; the paper's
claim holds here if the slope's interval is above 0.

A GPU configuration (:data:`GPU`) takes the size sweep to about 85M parameters (12 x 768); it is
defined but has not been measured on this project's machines.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...stats.behaviour import SCALES
from ...infra.rundir import RunDir
from ...stats.seedstats import error_bars, format_interval, interval_note, seed_interval
from .._stats import quantity_interval
from ...infra.trainconfig import StageConfig
from .. import Context, Experiment, register
from ._sequential import SequentialSetup, run_experiment

__all__ = ["GPU", "ScalingConfig", "analyse", "measure_seed", "plot", "quick_config", "run", "summarize"]

NAME = "scaling"
PAPER = {
    "size": "rebound grows with model size (Qwen1.5 0.5B, 4B, 7B; Fig. 5)",
    "volume": "rebound grows with pre-training volume (TinyLlama 2.0T, 2.5T, 3.0T tokens; barely visible at 0.1T; Fig. 6)",
}
SPEEDS = ("drop_probability", "drop_log_odds", "fraction_undone")


@dataclass(frozen=True)
class ScalingConfig(SequentialSetup):
    """Sizes as (n_layer, n_embd) pairs, pre-training volumes in steps, one alignment and one perturbation amount."""

    pretrain: StageConfig = StageConfig(optimizer="adam", lr=5e-3, steps=600, schedule="cosine")
    sizes: tuple[tuple[int, int], ...] = ((1, 8), (2, 16), (2, 32), (2, 64))
    volumes: tuple[int, ...] = (75, 150, 300, 600)
    align_amount: int = 1024
    perturb_amount: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        super().__post_init__()
        sizes = [tuple(s) for s in self.sizes]
        if len(set(sizes)) < 4:
            raise ValueError(f"sizes needs >= 4 distinct (n_layer, n_embd) pairs, got {sizes}")
        for n_layer, n_embd in sizes:
            if n_layer < 1 or n_embd < 1 or n_embd % self.model.n_head:
                raise ValueError(f"size ({n_layer}, {n_embd}): n_layer, n_embd >= 1 and n_embd a multiple of "
                                 f"model.n_head = {self.model.n_head}")
        vols = list(self.volumes)
        if len(set(vols)) < 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in vols):
            raise ValueError(f"volumes needs >= 4 distinct positive step counts, got {vols}")
        self.check_amounts("align_amount", (self.align_amount,), 1)
        self.check_amounts("perturb_amount", (self.perturb_amount,), 1)


GPU = ScalingConfig(sizes=((2, 128), (4, 256), (8, 512), (12, 768)), volumes=(300, 600, 1200, 2400),
                    pretrain=StageConfig(optimizer="adam", lr=1e-3, steps=2400, schedule="cosine"))
"""Models up to ~85M parameters: for a CUDA device (``--device cuda``); unmeasured here (no GPU was available)."""


def quick_config() -> ScalingConfig:
    """Two seeds, short pre-training: about 2.5 CPU minutes."""
    return ScalingConfig(pretrain=dataclasses.replace(ScalingConfig.pretrain, steps=300), seeds=(0, 1),
                         sizes=((1, 8), (1, 16), (2, 16), (2, 32)), volumes=(40, 80, 160, 300))


def _speeds(sw, pre, seed: int, config: ScalingConfig) -> dict:
    from ...empirical.training import kl_bits

    start = sw.behaviour(pre)
    aligned, _ = sw.finetune(pre, "aligned", [config.align_amount], sw.generator(seed, 0))
    a = sw.behaviour(aligned)
    after, _ = sw.finetune(aligned, "unaligned", [config.perturb_amount], sw.generator(seed, 1))
    b = sw.behaviour(after)
    gain = a["probability"] - start["probability"]
    return {
        "pretrained": start, "aligned": a, "after": b,
        "pretrain_kl_bits": kl_bits(pre, sw.data["pretrain"]),
        "drop_probability": a["probability"] - b["probability"],
        "drop_log_odds": a["log_odds"] - b["log_odds"],
        "fraction_undone": (a["probability"] - b["probability"]) / gain if gain > 0 else float("nan"),
    }


def measure_seed(config: ScalingConfig, seed: int, state_path=None, device: str = "cpu") -> dict:
    """One seed: rebound speeds of every size and every pre-training volume.

    A size sweep point and a volume sweep point with the same model and step count (the default model
    at the default steps is in both sweeps) are the same seeded run: it is trained and measured once.
    """
    from ...empirical.sequential import SequentialWorld

    sw = SequentialWorld(config, device)
    measured: dict = {}

    def speeds(model, steps: int) -> tuple[int, dict]:
        if (model, steps) not in measured:
            pre = sw.pretrained(seed, model=model, steps=steps)
            measured[model, steps] = (sum(p.numel() for p in pre.parameters()), _speeds(sw, pre, seed, config))
        return measured[model, steps]

    base_steps = sw.setup.pretrain.steps
    size_rows = []
    for n_layer, n_embd in config.sizes:
        n_params, row = speeds(sw.model_config(n_layer=n_layer, n_embd=n_embd), base_steps)
        size_rows.append({"n_layer": n_layer, "n_embd": n_embd, "n_params": n_params, **row})
    volume_rows = [{"pretrain_steps": v, **speeds(sw.setup.model, v)[1]} for v in sorted(set(config.volumes))]
    return {"seed": seed, "size": size_rows, "volume": volume_rows}


def _trend(units: list[dict], sweep: str, x_key: str) -> dict:
    out = {}
    for speed in SPEEDS:
        slopes = []
        for u in units:
            x = np.log2([r[x_key] for r in u[sweep]])
            y = np.array([float(r[speed]) for r in u[sweep]])
            slopes.append(float(np.polyfit(x, y, 1)[0]) if np.isfinite(y).all() else np.nan)
        finite = [s for s in slopes if np.isfinite(s)]
        ci = seed_interval(finite) if finite else None
        out[speed] = {
            "slope_per_doubling": ci.as_dict() if ci else None,
            "seeds_used": f"{len(finite)}/{len(slopes)}",
            "grows": None if ci is None or not ci.excludes(0.0) else bool(ci.low > 0),
        }
    return out


def analyse(config: ScalingConfig, units: list[dict]) -> dict:
    """Speeds per size and per volume with seed intervals, and the trend slopes per doubling."""
    def table(sweep: str, keys: tuple[str, ...]) -> list[dict]:
        rows = []
        for i, first in enumerate(units[0][sweep]):
            vals = [u[sweep][i] for u in units]
            rows.append({**{k: first[k] for k in keys},
                         "pretrain_kl_bits": seed_interval([v["pretrain_kl_bits"] for v in vals], scale="log").as_dict(),
                         **{s: seed_interval([float(v[s]) for v in vals]).as_dict() for s in SPEEDS
                            if all(np.isfinite(float(v[s])) for v in vals)},
                         **{f"{stage}_{scale}": quantity_interval(scale, [v[stage][scale] for v in vals])
                            for stage in ("pretrained", "aligned", "after") for scale in SCALES}})
        return rows

    return {
        "experiment": NAME,
        "seeds": [u["seed"] for u in units],
        "size": table("size", ("n_layer", "n_embd", "n_params")),
        "volume": table("volume", ("pretrain_steps",)),
        "trend": {"size": _trend(units, "size", "n_params"), "volume": _trend(units, "volume", "pretrain_steps")},
        "paper": PAPER,
    }


def plot(results: dict, folder: Path) -> list[Path]:
    """``scaling.png``: each rebound speed against parameters and against pre-training steps (log axes)."""
    from .._plotting import figure, save_figure

    paths = []
    for sweep, x_key, label in (("size", "n_params", "parameters"), ("volume", "pretrain_steps", "pre-training steps")):
        fig, axes = figure(3, width=4.5, height=3.6)
        rows = results[sweep]
        for ax, speed in zip(axes, SPEEDS):
            pts = [(r[x_key], r[speed]) for r in rows if speed in r]
            if pts:
                xs = np.array([p[0] for p in pts], dtype=float)
                m, err = error_bars([p[1] for p in pts])
                ax.errorbar(xs, m, yerr=err, marker="o", capsize=3)
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_title(speed.replace("_", " "), fontsize=9)
        fig.suptitle(f"Rebound speed against {label}; bars = 95% over seeds", fontsize=9)
        paths.append(save_figure(fig, Path(folder) / f"scaling_{sweep}.png"))
    return paths


def summarize(results: dict) -> str:
    """Markdown: speeds per size and per volume, and the trend slopes per doubling."""
    lines = [f"scaling: seeds {results['seeds']}; {interval_note(len(results['seeds']))} (KL on the log scale, scores on "
             "the logit scale, drops and fractions linear)", "",
             "| sweep | x | KL(mixture ‖ pre-trained), bits | pre-trained score | aligned score | drop (probability) | "
             "drop (log-odds) | fraction undone |", "|---|---|---|---|---|---|---|---|"]
    for sweep, label in (("size", "n_params"), ("volume", "pretrain_steps")):
        for r in results[sweep]:
            x = f"{r['n_layer']}x{r['n_embd']} ({r['n_params']:,} params)" if sweep == "size" else f"{r[label]} steps"
            lines.append(f"| {sweep} | {x} | {format_interval(r['pretrain_kl_bits'])} | {format_interval(r['pretrained_probability'])} | "
                         f"{format_interval(r['aligned_probability'])} | {format_interval(r.get('drop_probability'))} | "
                         f"{format_interval(r.get('drop_log_odds'))} | {format_interval(r.get('fraction_undone'))} |")
    lines += ["", "| trend (slope per doubling) | drop (probability) | drop (log-odds) | fraction undone |", "|---|---|---|---|"]
    for sweep in ("size", "volume"):
        t = results["trend"][sweep]
        cells = [f"{format_interval(t[s]['slope_per_doubling'])}: {dict([(True, 'grows'), (False, 'shrinks'), (None, 'unresolved')])[t[s]['grows']]}"
                 for s in SPEEDS]
        lines.append(f"| {sweep} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(cfg: ScalingConfig, run_dir: RunDir, ctx: Context) -> dict:
    """Train and measure every seed (one cached unit each), then analyse."""
    return run_experiment(cfg, run_dir, ctx, NAME, measure_seed, analyse)


EXPERIMENT = register(Experiment(
    name=NAME,
    question="Does the rebound (speed of losing alignment under negative data) grow with model size and pre-training volume?",
    prediction="paper Fig. 5-6: it grows with both; THEORY §2: the ratio grows with k = |D_p|/|D_a| (here: volume)",
    config_class=ScalingConfig,
    quick=quick_config,
    run=run,
    plot=plot,
    summarize=summarize,
))
