"""Plots of the capacity experiment, drawn from saved results only."""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["plot"]


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def plot(results: dict, folder: Path) -> list[Path]:
    """``capacity.png``: R_meas/R_pred (train and held-out) and train/held-out KL against the number of parameters."""
    from .._plotting import figure, save_figure

    fig, (a1, a2) = figure(ncols=2, width=4.8)
    cells = results["summary"]
    keys = list(dict.fromkeys((c["k"], c["l"]) for c in cells))
    for i, (k, l) in enumerate(keys):
        cs = sorted((c for c in cells if (c["k"], c["l"]) == (k, l)), key=lambda c: c["n_parameters"])
        x = [c["n_parameters"] for c in cs]
        a1.plot(x, [_mean(c["R_over_R_pred"]) for c in cs], "o-", color=f"C{i}", label=f"k = {k:g}, l = {l:g}")
        a1.plot(x, [_mean(c["heldout_R_over_R_pred"]) for c in cs], "s--", color=f"C{i}", mfc="none")
        for c in cs:
            a1.plot([c["n_parameters"]] * len(c["R_over_R_pred"]), c["R_over_R_pred"], ".", color=f"C{i}", alpha=0.4)
    # per k (a model can memorize the small training sets and not the large ones): the worst seed and l of each cell
    for j, k in enumerate(dict.fromkeys(c["k"] for c in cells)):
        by_model = {}
        for c in cells:
            if c["k"] == k:
                by_model.setdefault(c["n_parameters"], []).append(c)
        x = sorted(by_model)
        a2.plot(x, [max(max(c["kl_train_bits"]) for c in by_model[n]) for n in x], "o-", color=f"C{j}",
                label=f"train KL, k = {k:g} (max)")
        a2.plot(x, [_mean([_mean(c["kl_heldout_bits"]) for c in by_model[n]]) for n in x], "s--", color=f"C{j}",
                mfc="none", label=f"held-out KL, k = {k:g} (mean)")
    floor = [_mean(c["kl_heldout_floor_bits"]) for c in cells]
    a2.axhspan(min(floor), max(floor), color="grey", alpha=0.2, label="held-out floor (true world)")
    a1.axhline(1.0, color="grey", lw=0.8)
    a1.set_yscale("symlog", linthresh=1.0)
    a1.set_ylabel("R_meas / R_pred (dots: seeds; dashed: held-out)")
    a1.set_title("ratio to the tabular prediction of the same data", fontsize=8)
    a2.axhline(0.1, color="grey", ls="--", lw=0.8)  # the underfitting line: train KL above 0.1 bits
    a2.set_yscale("log")
    a2.set_ylabel("KL (bits per response)")
    a2.set_title("distance to the empirical optimum", fontsize=8)
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel("model parameters")
        ax.legend(fontsize=6)
    return [save_figure(fig, Path(folder) / "capacity.png")]
