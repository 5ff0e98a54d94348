"""``compare --series NAME=DIR``: a tiny model trained for a few steps, its checkpoints saved as a trainer does
(``checkpoint-<step>``); the series' curve must be, number for number, what separate ``compare --checkpoint`` runs
give for each checkpoint, in the order of the steps (not of the folder names), with the CSV and plot from the same
numbers. Also the log axis of the ratio plot and the series' bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.empirical import byte_bpe_tokenizer, tiny_gpt2
from elastic_theory.empirical.compare_series import expand_series, ratio_axis_scale

STEPS = (1, 2, 10)  # 10 sorts before 2 as text: a series sorted by name would be out of step order


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Base: an untrained tiny GPT-2; the run: AdamW on the tuning texts, checkpoints after steps 1, 2 and 10."""
    from pydoc_data.topics import topics

    texts = [topics[k][:200] for k in sorted(topics)[:30]]
    root = tmp_path_factory.mktemp("series")
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    model = tiny_gpt2(tok, seed=0, n_positions=64)
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    tune, pre = texts[:12], texts[12:]
    batch = tok([tok.bos_token + t for t in tune], padding=True, truncation=True, max_length=64, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(1, max(STEPS) + 1):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        if step in STEPS:
            model.save_pretrained(root / "out" / f"checkpoint-{step}")
            tok.save_pretrained(root / "out" / f"checkpoint-{step}")
    (root / "out" / "runs").mkdir()  # a trainer's log folder: not a checkpoint
    (root / "tune.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in tune))
    (root / "pre.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in pre))
    return root


def _compare(root, *args):
    data = ["--data", f"tune={root / 'tune.jsonl'}", "--data", f"pre={root / 'pre.jsonl'}", "--ratio", "tune/pre"]
    return CliRunner().invoke(app, ["compare", "--base", str(root / "base"), *map(str, args), *data, "--no-cache",
                                    "--no-progress"], env={"COLUMNS": "250"})


@pytest.mark.slow  # four compare runs on tiny models (about 10 s)
def test_series_is_the_per_checkpoint_comparisons_in_step_order(run, tmp_path):
    res = _compare(run, "--series", f"sft={run / 'out'}", "--json", tmp_path / "s.json", "--csv", tmp_path / "s.csv",
                   "--plots", tmp_path / "plots")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "s.json").read_text())
    series = report["series"]["sft"]
    assert series["steps"] == list(STEPS) and series["checkpoints"] == [f"sft@{s}" for s in STEPS]
    for i, step in enumerate(STEPS):
        res = _compare(run, "--checkpoint", f"c={run / 'out' / f'checkpoint-{step}'}", "--json", tmp_path / f"{step}.json")
        assert res.exit_code == 0, res.output
        alone = json.loads((tmp_path / f"{step}.json").read_text())["checkpoints"]["c"]
        assert report["checkpoints"][f"sft@{step}"]["datasets"] == alone["datasets"]
        for d, per in series["datasets"].items():
            assert per["delta_bits_per_byte"][i] == alone["datasets"][d]["delta_bits_per_byte"]
            assert per["delta_bits_per_byte_ci95"][i] == alone["datasets"][d]["delta_bits_per_byte_ci95"]
        assert [series["ratio"][key][i] for key in ("value", "ci95", "rays")] == [alone["ratio"][key] for key in ("value", "ci95", "rays")]
    # training on tune lowers its rate, more with every step; the first resolved step is the first interval below 0
    tune = series["datasets"]["tune"]
    assert tune["delta_bits_per_byte"][0] > tune["delta_bits_per_byte"][1] > tune["delta_bits_per_byte"][2]
    for per in series["datasets"].values():
        resolved = [s for s, (lo, hi) in zip(STEPS, per["delta_bits_per_byte_ci95"]) if lo > 0 or hi < 0]
        assert per["first_resolved_step"] == (resolved[0] if resolved else None)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert len(rows) == len(STEPS) * 2
    for row in rows:
        i = STEPS.index(int(row["step"]))
        per = series["datasets"][row["dataset"]]
        assert float(row["delta_bits_per_byte"]) == per["delta_bits_per_byte"][i]  # repr: the float exactly
        assert [float(row["ci95_low"]), float(row["ci95_high"])] == per["delta_bits_per_byte_ci95"][i]
        assert float(row["R"]) == series["ratio"]["value"][i] and row["checkpoint"] == f"sft@{row['step']}"
    assert (tmp_path / "plots" / "compare_series.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # the run fixture trains a tiny model; one compare run
def test_series_table_names_the_first_resolved_step(run, tmp_path):
    res = _compare(run, "--series", f"sft={run / 'out'}/checkpoint-*", "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    series = json.loads((tmp_path / "s.json").read_text())["series"]["sft"]
    assert series["steps"] == list(STEPS)  # the glob gives the same series
    first = series["datasets"]["tune"]["first_resolved_step"]
    assert f"tune at step {first}" in " ".join(res.output.split())


def test_expand_series_sorts_by_step_and_refuses_what_is_not_a_series(tmp_path):
    for name in ("checkpoint-10", "checkpoint-2", "runs", "step-3", "step-03"):
        (tmp_path / name).mkdir()
    assert expand_series("a", str(tmp_path)) == [(2, str(tmp_path / "checkpoint-2")), (10, str(tmp_path / "checkpoint-10"))]
    with pytest.raises(ValueError, match="step-03 and step-3, both at step 3|step-3 and step-03, both at step 3"):
        expand_series("a", f"{tmp_path}/step-*")
    with pytest.raises(ValueError, match="whose name does not end in its step"):
        expand_series("a", f"{tmp_path}/r*")
    with pytest.raises(ValueError, match="holds no checkpoint folders"):
        expand_series("a", str(tmp_path / "runs"))
    with pytest.raises(ValueError, match="no such folder"):
        expand_series("a", str(tmp_path / "none"))


@pytest.mark.parametrize(("args", "message"), [
    ([], "give --checkpoint NAME=MODEL or --series NAME=DIR"),
    (["--checkpoint", "a={base}", "--csv", "{tmp}/x.csv"], "--csv writes the change against the step of a --series"),
    (["--series", "a={tmp}/none"], "--series a={tmp}/none: no such folder"),
    (["--checkpoint", "a={base}", "--series", "a={out}"], "the name 'a' is a --checkpoint's"),
])
def test_series_bad_input_is_one_line_exit_2(tmp_path, args, message):
    """Refused while the options are read: no model or dataset here exists, so a later check would say so instead."""
    res = _compare(tmp_path, *(a.format(tmp=tmp_path, base=tmp_path / "base", out=tmp_path / "out") for a in args))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.output
    assert message.format(tmp=tmp_path) in res.stderr


def test_ratio_axis_is_logarithmic_where_the_values_span_decades():
    assert ratio_axis_scale([1.57, 1.35, 1.85, 4e9]) == "log"  # R and k = 4e9: on a linear axis R sits at 0
    assert ratio_axis_scale([1.57, 1.35, 1.85, 20.0]) == "linear"
    assert ratio_axis_scale([-1.5, 1.35, 4e9]) == "symlog"


def test_ratio_plot_draws_r_and_a_huge_k_on_a_log_axis(tmp_path, monkeypatch):
    """The drawn figure's axis (not only the helper's answer) is logarithmic and holds both R's point and k's line."""
    import matplotlib.figure

    from elastic_theory.empirical.compare_series import plot_comparison

    seen = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: (seen.append((path, fig.axes[0])), real(fig, path, **kw)))
    change = {"delta_bits_per_byte": -0.1, "delta_bits_per_byte_ci95": [-0.12, -0.08]}
    report = {"base": {"datasets": {"a": {}, "p": {}}}, "k": {"k": 4e9, "k_per_token": None},
              "checkpoints": {"t": {"datasets": {"a": change, "p": change},
                                    "ratio": {"value": 1.57, "ci95": [1.35, 1.85], "rays": None, "numerator": "a",
                                              "denominator": "p", "unit": "byte"}}}}
    written = plot_comparison(report, tmp_path)
    assert [p.name for p in written] == ["compare_rate_changes.png", "compare_ratio.png"]
    path, ax = seen[-1]
    lo, hi = ax.get_xlim()
    assert ax.get_xscale() == "log" and lo < 1.35 and hi > 4e9


@pytest.mark.slow  # the run fixture trains a tiny model; two compare runs
def test_checkpoints_saved_without_a_tokenizer_take_the_series_tokenizer(run, tmp_path):
    """A trainer's checkpoints often hold no tokenizer: --tokenizer NAME=PATH with the series' name gives one to
    every checkpoint of it, and the numbers are those of the checkpoints saved with it."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(run / "out", bare)
    for path in bare.glob("checkpoint-*/tokenizer*"):
        path.unlink()
    res = _compare(run, "--series", f"sft={bare}")
    assert res.exit_code == 2 and "has no tokenizer" in res.stderr and "--tokenizer" in res.stderr
    res = _compare(run, "--series", f"sft={bare}", "--tokenizer", f"sft={run / 'base'}", "--json", tmp_path / "bare.json")
    assert res.exit_code == 0, res.output
    res = _compare(run, "--series", f"sft={run / 'out'}", "--json", tmp_path / "full.json")
    assert res.exit_code == 0, res.output
    bare_series, full_series = (json.loads((tmp_path / f).read_text())["series"]["sft"] for f in ("bare.json", "full.json"))
    assert bare_series["datasets"] == full_series["datasets"] and bare_series["ratio"] == full_series["ratio"]
