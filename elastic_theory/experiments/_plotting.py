"""Plot helpers shared by the experiments: matplotlib (Agg) imported lazily, figures written atomically."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

__all__ = ["figure", "plot_track", "plot_tracks", "save_figure"]


def figure(ncols: int = 1, width: float = 5.0, height: float = 3.8):
    """A new ``(fig, axes)`` with ``ncols`` panels side by side (the Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG atomically (temporary file, then rename), close it, return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return path


def read_track(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``{series: [(step, bits_per_token), ...]}`` of a rate-tracker JSONL file (RateTracker or ExactRateTracker).

    A series is the ``dataset`` field, prefixed by ``run`` when lines carry one. ``ValueError``
    naming the line when a line lacks ``step``, ``dataset`` or ``bits_per_token``.
    """
    from ..data.io import iter_jsonl

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for where, rec in iter_jsonl(path, hint="each line must be a rate record"):
        if not isinstance(rec, dict) or not {"step", "dataset", "bits_per_token"} <= set(rec):
            raise ValueError(f"{where}: a rate record needs step, dataset and bits_per_token (RateTracker's format)")
        name = f"{rec['run']}: {rec['dataset']}" if "run" in rec else str(rec["dataset"])
        series[name].append((int(rec["step"]), float(rec["bits_per_token"])))
    if not series:
        raise ValueError(f"{path}: the file holds no rate records")
    return dict(series)


def plot_track(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Rate against step for every series of a tracker JSONL file; PNG at ``out`` (default: next to the file)."""
    path = Path(path)
    series = read_track(path)
    fig, (ax,) = figure(width=6.0)
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None, label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("rate (bits per token)")
    ax.set_title(path.name)
    ax.legend(fontsize=7)
    return save_figure(fig, out if out is not None else path.with_suffix(".png"))


def plot_tracks(results: dict, folder: str | os.PathLike) -> list[Path]:
    """:func:`plot_track` of every tracker file that ``results["tracks"]`` names (relative to ``folder``) and that is there."""
    folder = Path(folder)
    return [plot_track(folder / track) for track in results.get("tracks", []) if (folder / track).is_file()]


def dump_lines(records: list[dict]) -> str:
    """JSONL text of ``records`` (one JSON object per line)."""
    return "".join(json.dumps(r) + "\n" for r in records)
