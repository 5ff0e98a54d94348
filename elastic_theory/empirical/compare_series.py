r"""Checkpoint series for ``compare --series NAME=DIR`` and the plots of a compare report.

A series is the checkpoints of one training run: the ``checkpoint-<step>`` folders a transformers ``Trainer`` writes
into its output folder, or the folders a glob matches (each name ending in its step). Every checkpoint is compared
with the base like a ``--checkpoint`` (labelled ``NAME@STEP``, scored once and cached); the series summary gathers,
per dataset, the change :math:`\Delta(s)` from the base against the step :math:`s` with its paired 95% interval, the
first step whose interval excludes 0 (the change is *resolved* there), and with a ratio :math:`R(s)` with its
Fieller set. Everything here reads the report's numbers; nothing is recomputed.
"""

from __future__ import annotations

import csv
import glob
import io
import re
from pathlib import Path

import numpy as np

__all__ = [
    "expand_series",
    "fieller_text",
    "plot_comparison",
    "plot_series",
    "ratio_axis_scale",
    "series_csv",
    "series_label",
    "series_summary",
    "series_tables",
]

_STEP = re.compile(r"(\d+)$")


def series_label(name: str, step: int) -> str:
    """The checkpoint label of step ``step`` of series ``name`` in the report (``name@step``)."""
    return f"{name}@{step}"


def expand_series(name: str, spec: str) -> list[tuple[int, str]]:
    """``(step, folder)`` of every checkpoint of a series, sorted by step.

    ``spec``: a trainer output folder (its ``checkpoint-<step>`` subfolders) or a glob (``runs/sft/step-*``; each
    match's name ends in its step). ``ValueError`` when nothing matches, a name carries no step, or two share one.
    """
    if any(c in spec for c in "*?["):
        found = [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_dir()]
        where = f"--series {name}={spec}: the glob matches"
    else:
        folder = Path(spec)
        if not folder.is_dir():
            raise ValueError(f"--series {name}={spec}: no such folder (give a trainer's output folder or a glob)")
        found = sorted(p for p in folder.glob("checkpoint-*") if p.is_dir())
        where = f"--series {name}={spec}: the folder holds"
    if not found:
        raise ValueError(f"{where} no checkpoint folders (checkpoint-<step>, or a glob such as {spec.rstrip('/')}/step-*)")
    steps: dict[int, str] = {}
    for path in found:
        m = _STEP.search(path.name)
        if m is None:
            raise ValueError(f"{where} {path.name}, whose name does not end in its step")
        step = int(m.group(1))
        if step in steps:
            raise ValueError(f"{where} {Path(steps[step]).name} and {path.name}, both at step {step}")
        steps[step] = str(path)
    return sorted(steps.items())


def _resolved(ci: list[float]) -> bool:
    return ci[0] > 0 or ci[1] < 0


def series_summary(report: dict, series: dict[str, list[tuple[int, str]]]) -> dict:
    """Per series: ``steps``, ``checkpoints`` (their labels in ``report["checkpoints"]``), per dataset the lists
    ``delta_bits_per_byte`` and ``delta_bits_per_byte_ci95`` against the steps and ``first_resolved_step`` (the first
    step whose paired interval excludes 0, or None), and with a ratio ``ratio`` (``value``, ``ci95``, ``rays`` per step).
    """
    out = {}
    datasets = list(report["base"]["datasets"])
    for name, members in series.items():
        labels = [series_label(name, step) for step, _ in members]
        entries = [report["checkpoints"][label] for label in labels]
        per_dataset = {}
        for d in datasets:
            deltas = [e["datasets"][d]["delta_bits_per_byte"] for e in entries]
            cis = [e["datasets"][d]["delta_bits_per_byte_ci95"] for e in entries]
            first = next((step for (step, _), ci in zip(members, cis) if _resolved(ci)), None)
            per_dataset[d] = {"delta_bits_per_byte": deltas, "delta_bits_per_byte_ci95": cis, "first_resolved_step": first}
        entry = {"steps": [step for step, _ in members], "checkpoints": labels, "folders": [p for _, p in members],
                 "datasets": per_dataset}
        if entries and "ratio" in entries[0]:
            entry["ratio"] = {key: [e["ratio"][key] for e in entries] for key in ("value", "ci95", "rays")}
        out[name] = entry
    return out


def series_csv(summary: dict) -> str:
    """One CSV row per series, step and dataset: the change, its interval, whether it is resolved, and R's set."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["series", "step", "checkpoint", "dataset", "delta_bits_per_byte", "ci95_low", "ci95_high",
                     "resolved", "R", "R_ci95_low", "R_ci95_high"])
    for name, s in summary.items():
        for i, (step, label) in enumerate(zip(s["steps"], s["checkpoints"])):
            ratio = s.get("ratio")
            r_ci = ratio["ci95"][i] if ratio and ratio["ci95"][i] is not None else ["", ""]
            for d, per in s["datasets"].items():
                ci = per["delta_bits_per_byte_ci95"][i]
                writer.writerow([name, step, label, d, repr(per["delta_bits_per_byte"][i]), repr(ci[0]), repr(ci[1]),
                                 int(_resolved(ci)), repr(ratio["value"][i]) if ratio else "",
                                 *(repr(v) if v != "" else "" for v in r_ci)])
    return buf.getvalue()


def series_tables(summary: dict) -> list:
    """Rich tables, one per series: each dataset's change from the base at each step with its paired interval (``*``
    where it is resolved from 0), with a ratio R and its Fieller set, and a caption with the first resolved steps."""
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for name, s in summary.items():
        table = Table(title=f"Series {escape(name)}: change of bits per byte from the base against the step "
                            "(paired 95% intervals; * resolved from 0)")
        table.add_column("step", justify="right")
        for d in s["datasets"]:
            table.add_column(f"Δ{escape(d)}", justify="right")
        if "ratio" in s:
            table.add_column("R (95% set)", justify="right")
        for i, step in enumerate(s["steps"]):
            cells = []
            for per in s["datasets"].values():
                lo, hi = per["delta_bits_per_byte_ci95"][i]
                cells.append(f"{per['delta_bits_per_byte'][i]:+.4f} [{lo:+.4f}, {hi:+.4f}]{'*' if lo > 0 or hi < 0 else ''}")
            if "ratio" in s:
                r = {key: s["ratio"][key][i] for key in ("value", "ci95", "rays")}
                cells.append(f"{r['value']:.4g} {fieller_text(r)}")
            table.add_row(str(step), *cells)
        firsts = ", ".join(f"{escape(d)} at step {per['first_resolved_step']}" if per["first_resolved_step"] is not None
                           else f"{escape(d)} never" for d, per in s["datasets"].items())
        table.caption = f"first resolved: {firsts}"
        tables.append(table)
    return tables


def fieller_text(r: dict) -> str:
    """A saved ratio's Fieller set in words: ``[lo, hi]``, ``R <= a or R >= b`` (two rays) or ``any R``."""
    if r["ci95"] is not None:
        return f"[{r['ci95'][0]:.3g}, {r['ci95'][1]:.3g}]"
    return f"R <= {r['rays'][0]:.3g} or R >= {r['rays'][1]:.3g}" if r.get("rays") else "any R"


def ratio_axis_scale(values: list[float]) -> str:
    """``"log"`` when every value is positive and they span more than two decades (so R near 1 and k = 4e9 are both
    visible), ``"symlog"`` when they span that much with mixed signs, else ``"linear"``."""
    v = np.abs(np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float))
    nonzero = v[v > 0]
    if nonzero.size < 2 or nonzero.max() / nonzero.min() <= 100:
        return "linear"
    return "log" if min(x for x in values if x is not None and np.isfinite(x)) > 0 else "symlog"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_comparison(report: dict, folder: Path) -> list[Path]:
    """Draw, from a saved report, the change of bits per byte per checkpoint and dataset with its paired interval
    (``compare_rate_changes.png``) and, with a ratio, the ratio with its interval against k (``compare_ratio.png``, on
    a log axis when the values span decades). The names start with ``compare_`` so that a folder shared with
    ``verify --plots`` (its own ``ratio.png``) loses nothing."""
    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    names = list(report["checkpoints"])
    datasets = list(report["base"]["datasets"])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(names) * len(datasets)))
    height = 0.8 / len(datasets)
    for j, d in enumerate(datasets):
        y = np.arange(len(names)) + j * height
        rows = [report["checkpoints"][n]["datasets"][d] for n in names]
        x = np.array([r["delta_bits_per_byte"] for r in rows])
        ci = np.array([r["delta_bits_per_byte_ci95"] for r in rows])
        ax.errorbar(x, y, xerr=[x - ci[:, 0], ci[:, 1] - x], fmt="o", capsize=3, label=d)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_yticks(np.arange(len(names)) + 0.4 - height / 2, names)
    ax.set_xlabel("change of bits per byte from the base (paired 95% interval)")
    ax.legend(title="dataset", fontsize="small")
    fig.tight_layout()
    written = [folder / "compare_rate_changes.png"]
    fig.savefig(written[0], dpi=120)
    plt.close(fig)
    ratios = {n: e["ratio"] for n, e in report["checkpoints"].items() if "ratio" in e}
    if ratios:
        written.append(_plot_ratios(plt, ratios, report["k"] or {}, folder / "compare_ratio.png"))
    return written


def _plot_ratios(plt, ratios: dict, k: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(ratios)))
    shown = []
    for i, (n, r) in enumerate(ratios.items()):
        shown.append(r["value"])
        if r["ci95"] is None:
            ax.plot([r["value"]], [i], "o", color="C1")
            ax.annotate(fieller_text(r), (r["value"], i), textcoords="offset points", xytext=(6, 6), fontsize="small")
        else:
            shown.extend(r["ci95"])
            ax.errorbar([r["value"]], [i], xerr=[[r["value"] - r["ci95"][0]], [r["ci95"][1] - r["value"]]], fmt="o",
                        capsize=3, color="C1")
    for key, style in (("k", "--"), ("k_per_token", ":")):
        if k.get(key) is not None:
            shown.append(k[key])
            ax.axvline(k[key], color="grey", ls=style, label=f"{key.replace('_', ' ')} = {k[key]:.4g}")
    scale = ratio_axis_scale(shown)
    if scale == "symlog":
        ax.set_xscale("symlog", linthresh=float(min(abs(v) for v in shown if v)))
    else:
        ax.set_xscale(scale)
    ax.set_yticks(range(len(ratios)), list(ratios))
    first = next(iter(ratios.values()))
    ax.set_xlabel(f"R = Δ{first['numerator']} / (−Δ{first['denominator']}) (bits per {first['unit']}; 95% Fieller)"
                  + ("; log axis" if scale != "linear" else ""))
    if k:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_series(summary: dict, folder: Path) -> list[Path]:
    """``compare_series.png``: per series, each dataset's change against the step with its paired interval (a filled marker
    where it is resolved from 0) and, with a ratio, R against the step with its Fieller interval below."""
    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    has_ratio = any("ratio" in s for s in summary.values())
    fig, axes = plt.subplots(1 + has_ratio, 1, figsize=(7, 3.2 * (1 + has_ratio)), sharex=True, squeeze=False)
    ax = axes[0, 0]
    for i, (name, s) in enumerate(summary.items()):
        for j, (d, per) in enumerate(s["datasets"].items()):
            x, y = np.array(s["steps"]), np.array(per["delta_bits_per_byte"])
            ci = np.array(per["delta_bits_per_byte_ci95"])
            ax.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], fmt="-o", capsize=3, color=f"C{(i * 4 + j) % 10}",
                        label=f"{name}: {d}", mfc="white")
            solved = (ci[:, 0] > 0) | (ci[:, 1] < 0)
            ax.plot(x[solved], y[solved], "o", color=f"C{(i * 4 + j) % 10}", zorder=3)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel("Δ bits per byte from the base")
    ax.set_title("Change from the base per step (paired 95% intervals; filled: resolved from 0)", fontsize="medium")
    ax.legend(fontsize="small")
    if has_ratio:
        ax = axes[1, 0]
        for i, (name, s) in enumerate(summary.items()):
            r = s["ratio"]
            for step, value, ci in zip(s["steps"], r["value"], r["ci95"]):
                err = None if ci is None else [[value - ci[0]], [ci[1] - value]]
                ax.errorbar([step], [value], yerr=err, fmt="o", capsize=3, color=f"C{i}",
                            mfc=f"C{i}" if ci is not None else "white")
            ax.plot(s["steps"], r["value"], "-", color=f"C{i}", label=name)
        ax.set_ylabel("R (95% Fieller; open: unbounded)")
        ax.legend(fontsize="small")
    axes[-1, 0].set_xlabel("training step")
    axes[-1, 0].xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    path = folder / "compare_series.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
