"""``lm-ratio.png`` from hand-made results: no text of the figure (axis labels, tick labels, the title) overlaps
another, measured on the drawn figure's text boxes (the issue found the right panel's axis label over the title)."""

from __future__ import annotations

import itertools

import matplotlib
import matplotlib.figure
import pytest

from elastic_theory.experiments.lm import _ratio_analysis


def _interval(mean: float) -> dict:
    return {"mean": mean, "low": mean - 0.1, "high": mean + 0.1, "n": 2}


RESULTS = {
    "experiment": "lm-ratio", "model": {"name": "smollm2-135m"}, "setting": "safety", "algorithm": "sft", "lora": False,
    "seeds": [0, 1], "perturb_amount": 16,
    "by_align": {str(n): {"align_amount": n, "k": k, "R_meas": {"value": r, "ci95": [r / 2, r * 2]},
                          "delta_gamma_a": _interval(0.5 * r / k), "delta_gamma_p": _interval(-0.3)}
                 for n, k, r in ((16, 4e4, 9.0), (48, 1.3e4, 4.0), (96, 7e3, 2.0))},
}


def _text_boxes(fig) -> dict:
    """The window boxes of the figure's title and axis labels, as drawn when it is saved."""
    renderer = fig.canvas.get_renderer()
    texts = {"title": fig._suptitle}
    for i, ax in enumerate(fig.axes):
        texts[f"x label {i}"] = ax.xaxis.label
        texts[f"y label {i}"] = ax.yaxis.label
    return {name: t.get_window_extent(renderer) for name, t in texts.items() if t is not None and t.get_text()}, fig.bbox


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    seen = []
    real = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        real(fig, *args, **kwargs)
        seen.append(_text_boxes(fig))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    written = _ratio_analysis.plot(RESULTS, tmp_path)
    assert [p.name for p in written] == ["lm-ratio.png"] and written[0].is_file()
    return seen[0]


def test_no_text_of_the_figure_overlaps_another(drawn):
    boxes, fig_box = drawn
    assert len(boxes) == 5  # the title and both panels' two labels
    overlapping = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes.items(), 2) if ba.overlaps(bb)]
    assert not overlapping, overlapping
    for name, box in boxes.items():  # and nothing is cut off at the figure's edge
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0 and box.y1 <= fig_box.y1, name
