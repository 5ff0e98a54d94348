"""``elastic-theory report``: one self-contained page of saved runs; bad input is one line, exit 2, before any work."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from elastic_theory import experiments
from elastic_theory.cli import app
from tests.experiments.test_report import (
    INJECTION, Page, assert_self_contained, embedded_png, make_run, markdown_rows, stand_in,
)

runner = CliRunner()


@pytest.fixture
def stand_in_registry(monkeypatch):
    """The registry answers 'stand-in' with a fixed summary (the command reads the registry when it runs)."""
    real = experiments.get
    monkeypatch.setattr(experiments, "get", lambda name: stand_in() if name == "stand-in" else real(name))


def _error(res) -> str:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_one_run_without_out_writes_report_html_in_the_run(tmp_path, stand_in_registry):
    run = make_run(tmp_path / "run")
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert res.stderr.strip() == f"wrote {run / 'report.html'} ({len((run / 'report.html').read_bytes()) / 1e3:.0f} kB, " \
                                 "2 plots embedded)"
    page = Page((run / "report.html").read_text(encoding="utf-8"))
    assert_self_contained(page)
    assert sorted(embedded_png(i["src"]) for i in page.images()) == sorted(p.read_bytes() for p in run.glob("*.png"))
    assert all(row in page.rows for row in markdown_rows(stand_in().summarize(None)))


def test_several_runs_need_out_and_share_one_page(tmp_path, stand_in_registry):
    one, two = make_run(tmp_path / "one", plots=1), make_run(tmp_path / "two", plots=0)
    assert "2 run directories: give --out FILE.html" in _error(runner.invoke(app, ["report", str(one), str(two)]))
    assert not (one / "report.html").exists()
    res = runner.invoke(app, ["report", str(one), str(two), "--out", str(tmp_path / "both.html")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "both.html").read_text(encoding="utf-8")
    assert text.count('<section class="run">') == 2 and "The run directory holds no plots" in text
    assert f"elastic-theory report: stand-in ({one}), stand-in ({two})" in text


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "holds no config.json: not a run directory"),
    (lambda d: (d.mkdir(), (d / "notes.txt").write_text("x")), "holds no config.json: not a run directory"),
    (lambda d: None, "no such run directory"),
    (lambda d: make_run(d, experiment="no-such-experiment"), "unknown experiment 'no-such-experiment'"),
    (lambda d: (make_run(d), (d / "results.json").unlink()), "has no results.json (the run did not finish)"),
])
def test_a_bad_run_directory_is_one_line_and_leaves_the_old_page(tmp_path, stand_in_registry, make, message):
    """A good run first, the bad one second: nothing is written (the old page stays), so the runs are all checked
    before the page is built. Kills: writing the page run by run, or opening --out before the checks."""
    good, bad, out = make_run(tmp_path / "good"), tmp_path / "bad", tmp_path / "page.html"
    make(bad)
    out.write_text("old page")
    line = _error(runner.invoke(app, ["report", str(good), str(bad), "--out", str(out)]))
    assert message in line and str(bad) in line
    assert out.read_text() == "old page" and sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "page.html"][
        (0 if bad.exists() else 1):]


def test_an_out_the_page_cannot_go_to_is_refused_before_the_runs_are_read(tmp_path, monkeypatch):
    """--out a folder, below a file, or in a folder without write permission: refused when the command line is parsed
    (the run directories here do not even exist, and no run is read)."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "locked").mkdir()
    missing = str(tmp_path / "no-run")
    assert "is a folder; give a file path" in _error(runner.invoke(app, ["report", missing, "--out", str(tmp_path)]))
    assert "is a file, not a folder" in _error(runner.invoke(app, ["report", missing, "--out", str(tmp_path / "afile" / "r.html")]))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path / "locked") else real_access(p, mode))
    line = _error(runner.invoke(app, ["report", missing, "--out", str(tmp_path / "locked" / "r.html")]))
    assert line == f"error: --out {tmp_path / 'locked' / 'r.html'}: no permission to write in the folder {tmp_path / 'locked'}"


def test_the_default_page_in_a_run_directory_that_is_a_folder_is_refused(tmp_path, stand_in_registry):
    run = make_run(tmp_path / "run")
    (run / "report.html").mkdir()
    assert "report.html: is a folder" in _error(runner.invoke(app, ["report", str(run)]))


def test_html_in_a_run_does_not_reach_the_page_as_html(tmp_path, stand_in_registry):
    """The config, provenance, results and summary all hold '</td>...<script>...': the page parses to no script and
    no image besides the plots, and shows the text as written."""
    run = make_run(tmp_path / "run", plots=1)
    assert runner.invoke(app, ["report", str(run)]).exit_code == 0
    page = Page((run / "report.html").read_text(encoding="utf-8"))
    assert_self_contained(page)
    assert len(page.images()) == 1 and INJECTION in page.all_text


@pytest.fixture(scope="session")
def tiny_resistance_run(tmp_path_factory):
    """A finished run of the synthetic resistance experiment in its smallest valid configuration, with its plot."""
    from elastic_theory.experiments import Context
    from elastic_theory.experiments.synthetic import resistance
    from elastic_theory.infra.config import config_to_dict
    from elastic_theory.infra.rundir import RunDir
    from tests.experiments.test_rebound_resistance_scaling import TINY

    cfg = resistance.ResistanceConfig(**{**TINY, "seeds": (0,)}, checkpoints=(8, 16, 32), finetune_amount=16)
    run = RunDir.open(tmp_path_factory.mktemp("report") / "resistance", resistance.NAME, config_to_dict(cfg))
    results = resistance.run(cfg, run, Context())
    run.write_results(results)
    resistance.plot(json.loads(json.dumps(results)), run.root)
    return run.root


@pytest.mark.slow  # trains a tiny resistance run (about 15 s) and draws its plot
def test_the_page_of_a_real_run_embeds_its_plots_and_every_summary_row(tiny_resistance_run):
    """A run made by the experiment itself: each <img> is a PNG of the run byte for byte, one per PNG file, and every
    row of every table of summarize(results.json) is a row of the page; question and prediction are the registry's."""
    from elastic_theory.experiments import get

    run, out = tiny_resistance_run, tiny_resistance_run.parent / "page.html"
    res = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = Page(out.read_text(encoding="utf-8"))
    assert_self_contained(page)
    pngs = sorted(p.read_bytes() for p in run.glob("*.png"))
    assert len(pngs) == 1 and sorted(embedded_png(i["src"]) for i in page.images()) == pngs
    exp = get("resistance")
    rows = markdown_rows(exp.summarize(json.loads((run / "results.json").read_text())))
    assert len(rows) == 4 and all(row in page.rows for row in rows)  # the header and the pairs 1-2, 1-3, 2-3
    assert exp.question in page.all_text and exp.prediction in page.all_text


def test_out_dash_prints_the_page_and_a_run_without_provenance_says_so(tmp_path, stand_in_registry, monkeypatch):
    """--out - is standard output (no file named '-', none in the run); a run whose provenance.json is gone still has
    its page, which says the provenance is not recorded. Kills: a file called '-', a crash on the missing file."""
    run = make_run(tmp_path / "run", plots=1)
    (run / "provenance.json").unlink()
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", str(run), "--out", "-"])
    assert res.exit_code == 0, res.output
    page = Page(res.stdout)
    assert len(page.images()) == 1 and "provenance.json is missing" in page.all_text and res.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and not (run / "report.html").exists()
