"""``elastic-theory verify``: run the claims registry, print the verdict table, optionally JSON, markdown and plots."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import (
    MISMATCH_EXIT_CODE, app, bad_input_exits_2, console, folder_option, hypothesis_outside_cwd, json_option, require_extra,
    write_result,
)


def write_plots(report_json: dict, directory: Path) -> list[Path]:
    """Draw the verify figures from a report's JSON (``VerificationReport.to_json()``); returns the files written.

    * ``ratio.png``: R/k against l (log axes) for k in {10, 1e3, 1e6} and w3 in {0.1, 0.5}, with the
      sign region l < l* shaded and l* marked;
    * ``precision.png``: significant digits of d gamma/dl from the float64 closed forms and from
      float64 central differences, against the mpmath reference (claim ``highprec_closed_forms``);
    * ``pareto.png``: median |H - offset| against M per alpha with the fitted slopes
      (claim ``pareto_entropy_offset``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..theory import elasticity

    claims = {c["id"]: c for c in report_json["claims"]}
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, w3 in zip(axes, (0.1, 0.5)):
        l_star = elasticity.sign_threshold(w3)
        ls = np.logspace(-6, np.log10(l_star) - 1e-3, 200)
        for k in (10.0, 1e3, 1e6):
            ax.plot(ls, [elasticity.ratio_R(k, l, w3) / k for l in ls], label=f"k = {k:g}")
        ax.axvspan(ls[0], l_star, color="tab:green", alpha=0.1, label="sign region l < l*")
        ax.axvline(l_star, color="k", ls="--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="l = |D_t|/|D_a|", title=f"w3 = {w3} (l* = {l_star:.3g})")
    axes[0].set_ylabel("R / k")
    axes[0].legend()
    fig.tight_layout()
    written.append(directory / "ratio.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    if "highprec_closed_forms" in claims:
        rows = claims["highprec_closed_forms"]["details"]["rows"]
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = [f"{r['quantity'][7]} k={r['k']:.0e} l={r['l']:.0e}" for r in rows]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["closed_form_digits"] for r in rows], 0.4, label="float64 closed form")
        ax.bar(x + 0.2, [r["finite_difference_digits"] for r in rows], 0.4, label="float64 central difference")
        ax.axhline(10, color="k", ls="--", lw=0.8)
        ax.set_xticks(x, labels, rotation=90, fontsize=6)
        ax.set(ylabel="significant digits vs mpmath", title="d gamma_a/dl (a) and d gamma_p/dl (p)", ylim=(0, 22))
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        fig.tight_layout()
        written.append(directory / "precision.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    if "pareto_entropy_offset" in claims:
        fig, ax = plt.subplots(figsize=(5, 4))
        for run in claims["pareto_entropy_offset"]["details"]["convergence"]:
            Ms = [p["M"] for p in run["points"]]
            ax.plot(Ms, [p["median_abs_error"] for p in run["points"]], "o-",
                    label=f"alpha {run['alpha']}: slope {run['fitted_exponent']:.2f} (theory {run['predicted_exponent']:.2f})")
        ax.set(xscale="log", yscale="log", xlabel="M (leaves)", ylabel="median |H - offset| (nats)",
               title="Pareto entropy offset")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(directory / "pareto.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def _claim_ids() -> str:
    from ..claims import CLAIMS

    return ", ".join(CLAIMS)


@app.command("verify")
@bad_input_exits_2
def verify_command(
    json_out: Path | None = json_option("Write every claim with its evidence as JSON to this file."),
    plots: Path | None = folder_option("Write ratio.png, precision.png and pareto.png to this folder.", "--plots"),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of every randomized check (same seed, same table)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the table as GitHub markdown (the table in docs/theory.md; "
                                  "with --faults, the planted-fault table of docs/testing.md after it)."),
    faults: bool = typer.Option(False, "--faults", help="Also run every claim with each of its planted faults (known "
                                "wrong implementations) in place; exit 1 unless each changes its claim's verdict."),
    claim: list[str] | None = typer.Option(None, "--claim", metavar="ID",
                                           help=f"Run only this claim (repeatable). Claim ids: {_claim_ids()}."),
) -> None:
    """Check every claim of the elasticity theory; exit 0 only if every verdict is the expected one.

    Verdicts: holds, approximate (true up to a stated deviation), fails (a counterexample was
    found), measured (a report of how far and how often, for a statement without a sharp
    criterion; it still fails if its invariants break) or inconclusive (no verdict: a statistical
    test too weak to decide, its size and power shown, or the check's own consistency conditions
    failed). A claim expected to fail passes when the counterexample is found. Each row gives the
    worst case's error in units of its own tolerance (> 1: violated). Exit code 1 when a verdict
    differs from the expected one. --faults runs each claim again with each planted fault (a known
    wrong implementation, e.g. the float64 1 - E[P_t/p_l], a Hooke residual of 0, Shannon code
    lengths for Huffman's) and exits 1 unless every one changes its claim's verdict; --json then
    lists the faults tried per claim and whether each was caught.

    Examples:

    
      elastic-theory verify
      elastic-theory verify --claim ratio_lower_bound --claim overlapping_supports
      elastic-theory verify --json verify.json --plots plots/
      elastic-theory verify --faults --json verify.json
    """
    from ..claims import render_faults_markdown, render_markdown, render_table, run_verification

    if seed < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {seed}")
    if plots is not None:
        require_extra("matplotlib", "plots", "--plots")
    with hypothesis_outside_cwd():
        report = run_verification(seed, claim or None, faults=faults,
                                  progress=(lambda line: typer.echo(line, err=True)) if faults else None)
    if markdown:
        text = render_markdown(report) + (f"\n{render_faults_markdown(report)}" if faults else "")
        typer.echo(text, nl=False, err=json_out is not None and str(json_out) == "-")
    else:
        out = console(json_out)
        out.print(render_table(report))
        out.print(report.summary)
    data = report.to_json()
    if json_out is not None:
        write_result(json_out, data)
    if plots is not None:
        for path in write_plots(data, plots):
            typer.echo(f"wrote {path}", err=True)
    if not report.all_agree:
        raise typer.Exit(MISMATCH_EXIT_CODE)
