"""``elastic-theory report RUN_DIR...``: one self-contained HTML page of saved runs, side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, bad_input_exits_2, json_option

REPORT_NAME = "report.html"
"""The page's file name inside the run directory when one run is given without ``--out``."""


def report_path(run_dirs: list[Path], out: Path | None) -> Path:
    """Where the page goes: ``--out``, else ``RUN_DIR/report.html`` for one run; several runs need ``--out``."""
    if out is not None:
        return out
    if len(run_dirs) > 1:
        raise ValueError(f"{len(run_dirs)} run directories: give --out FILE.html for the page that shows them side by side")
    return run_dirs[0] / REPORT_NAME


@app.command("report")
@bad_input_exits_2
def report_command(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="Run directories of elastic-theory experiment "
                                          "(each with config.json and results.json); several are shown side by side."),
    out: Path | None = json_option(f"The HTML file to write (default: RUN_DIR/{REPORT_NAME} for one run; several runs "
                                   "need it).", "--out"),
) -> None:
    """Write one self-contained HTML page of saved runs: question, prediction, tables, plots, verdicts, provenance.

    Built only from the run directory's files (results.json, config.json, provenance.json, the PNGs): nothing is
    recomputed. Plots are embedded in the page, which needs no other file and no network to open.

    Examples:

    \b
      elastic-theory report runs/joint-ratio-quick
      elastic-theory report runs/rebound runs/lm-rebound --out rebound.html
    """
    from ..data.io import check_output_path, write_text_atomic
    from ..experiments import get
    from ..experiments._report import load_run, render_report

    runs = [load_run(path) for path in run_dirs]  # every run checked before any page is built
    for run in runs:
        try:
            get(run.experiment)
        except ValueError as exc:  # an unknown experiment: the registry lists the known ones
            raise ValueError(f"{run.path / 'config.json'}: {exc}") from None
    target = report_path(run_dirs, out)
    check_output_path(target, "--out")
    page = render_report(runs)
    write_text_atomic(target, page, what="--out")
    if str(target) != "-":
        typer.echo(f"wrote {target} ({len(page.encode('utf-8')) / 1e3:.0f} kB, {sum(len(r.plots) for r in runs)} plots "
                   "embedded)", err=True)


__all__ = ["REPORT_NAME", "report_command", "report_path"]
