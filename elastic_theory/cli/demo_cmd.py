"""``elastic-theory demo``: the main job on built-in defaults.

1. the verdict table of every claim (``elastic-theory verify``);
2. the compression protocol on a built-in corpus of real English text (Python's own help text,
   as UTF-8 bytes): entropy, Huffman and Thm 3.4 code lengths per chunk depth, and a real
   entropy-coded round trip;
3. what the theory predicts for the ratio of rate changes at a few (k, l, w3);
4. the quick joint-ratio and rebound experiments (``elastic-theory experiment NAME --quick``), run
   side by side in two processes of one thread each, with joint-ratio's verdict per k under the full
   runs' rule (:func:`joint_ratio_verdicts`: certified only where the rate-error bound is below the signal);
5. a markdown report of all of it, with the experiments' plots (``DIR/report.md``), and the same as one
   self-contained HTML page, its plots embedded (``DIR/report.html``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer

from .app import (
    MISMATCH_EXIT_CODE, app, bad_input_exits_2, console, escape, hypothesis_outside_cwd, interrupted, json_option, write_result,
)

DEMO_DEPTHS = (4, 8, 16, 32)
DEMO_RATIOS = ((1e3, 1e-3, 0.1), (1e6, 1e-3, 0.1), (1e6, 0.05, 0.1), (1e6, 0.2, 0.1), (1e6, 1e-3, 0.0))
DEMO_EXPERIMENTS = ("joint-ratio", "rebound")


def corpus_coding(depths: tuple[int, ...] = DEMO_DEPTHS) -> dict:
    """Code-length reports and an entropy-coded round trip of the built-in corpus at each depth.

    Returns ``{"corpus": {...}, "depths": [{**CodeLengthReport.as_dict(), "coded_bits",
    "coded_over_ideal", "round_trip_exact"}, ...]}``; lengths in bits per response.
    """
    from ..theory.coding import ChunkCoder, code_length_report
    from ..data.builtin_text import BYTE_VOCAB_SIZE, stdlib_sentences
    from ..theory.tree import TokenTree

    sentences = stdlib_sentences()
    tree = TokenTree.from_sequences(sentences, BYTE_VOCAB_SIZE)
    rows = []
    for d in depths:
        report = code_length_report(tree, d)
        coder = ChunkCoder(tree.chunked(d), d)
        encoded = coder.encode(sentences)
        rows.append({
            **report.as_dict(),
            "coded_bits": encoded.n_bits / len(sentences),
            "coded_over_ideal": encoded.n_bits / encoded.ideal_bits,
            "round_trip_exact": coder.decode(encoded) == sentences,
        })
    corpus = {
        "name": "pydoc_data.topics sentences (UTF-8 bytes)",
        "n_responses": len(sentences),
        "vocab_size": BYTE_VOCAB_SIZE,
        "mean_length_tokens": tree.mean_length,
        "distinct_responses": tree.n_leaves,
    }
    return {"corpus": corpus, "depths": rows}


def ratio_predictions(settings=DEMO_RATIOS) -> list[dict]:
    """``elastic-theory ratio``'s numbers at each (k, l, w3): R, R/k, both derivatives, l*, sign_valid, Theta constants.

    The sign-claim warnings beyond l* are not re-raised: the table's last column says it.
    """
    from ..theory.elasticity import closed_form_result

    return [closed_form_result(k, l, w3)[0] for k, l, w3 in settings]


def check_experiment_dirs(out: Path, names=DEMO_EXPERIMENTS) -> None:
    """Raise ``ValueError`` before any work unless ``out`` can hold the report and each quick run (new, or one to resume)."""
    from ..experiments import get
    from ..infra.config import config_to_dict
    from ..infra.rundir import RunDir
    from .app import DEFAULT_THREADS

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the demo's runs and report")
    for report in ("report.md", "report.html"):
        if (out / report).is_dir():
            raise ValueError(f"{out / report} is a folder; remove it or give another --out")
    for name in names:
        exp = get(name)
        RunDir.check(out / name, exp.name, config_to_dict(exp.quick()), DEFAULT_THREADS)  # the children's --threads


def run_quick_experiments(out: Path, names=DEMO_EXPERIMENTS, extra: tuple[str, ...] = ()) -> dict[str, float]:
    """Run ``elastic-theory experiment NAME --quick --out OUT/NAME`` for each name, in parallel on >= 2 cores.

    Each child runs on the default one torch thread (and one OpenMP thread unless ``OMP_NUM_THREADS`` is
    set), so two of them fill two cores; its stderr goes to ``OUT/NAME.log``, removed when it stays empty. A run
    that exists resumes.
    Returns the wall seconds of each experiment; a failed child raises ``ValueError`` with its last error
    line. Ctrl-C reaches the children too: their finished units stay.
    """
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    parallel = (os.cpu_count() or 1) >= 2
    out.mkdir(parents=True, exist_ok=True)
    seconds, running = {}, {}
    for name in names:
        cmd = [sys.executable, "-m", "elastic_theory", "experiment", name, "--quick", "--out", str(out / name),
               "--no-progress", *extra]
        log = out / f"{name}.log"
        with log.open("w", encoding="utf-8") as err:
            running[name] = (time.perf_counter(), subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env), log)
        while running and (not parallel or len(running) == len(names) or name == names[-1]):
            for key, (t0, proc, path) in list(running.items()):
                if proc.poll() is not None:
                    seconds[key] = time.perf_counter() - t0
                    del running[key]
                    if proc.returncode == 0 and path.stat().st_size == 0:
                        path.unlink()  # nothing was said: no empty log left beside the report
                    if proc.returncode != 0:
                        for _, other, _ in running.values():
                            other.terminate()
                        last = (path.read_text(encoding="utf-8").strip().splitlines() or ["no message"])[-1]
                        raise ValueError(f"quick {key} failed (exit {proc.returncode}): {last} (full log: {path})")
            time.sleep(0.2)
    return seconds


def joint_ratio_verdicts(results: dict) -> list[str]:
    """One line per k of a joint-ratio run, under the full runs' rule (docs/experiments.md, joint-ratio).

    Agreement is *certified* only where every seed's rate-error bound at its measured KL is below its
    measured changes (``bound_to_signal`` < 1); otherwise the relative error is within (or beyond) the
    optimizer's spread and the line says "not certified" with the bound-to-signal ratio, whatever the
    relative error: a -1.0% at KL 0.06 bits says nothing about the theorem.
    """
    from ..stats.seedstats import saved_number

    lines = []
    for s in results["summary"]:
        certified = s["certified_per_seed"]
        head = ("certified" if s["verdict"] == "certified" else
                "certified DISAGREEMENT" if s["verdict"] == "certified disagreement" else "not certified")
        lines.append(f"k = {s['k']:g}: {head} ({sum(certified)}/{len(certified)} seeds certified, bound/signal "
                     f"{saved_number(s['bound_to_signal']):.2g}, largest KL to the optimum {s['max_kl_to_optimum_bits']:.2g} "
                     f"bits): R {saved_number(s['R_measured']):.4g} against {saved_number(s['R_predicted']):.4g} "
                     f"({saved_number(s['R_relative_error']) * 100:+.2g}%); {s['verdict']}")
    return lines


def write_report(out: Path, report, ratios: list[dict], names=DEMO_EXPERIMENTS, seconds: dict | None = None) -> Path:
    """``OUT/report.md``: the claims table, the predicted ratios and each quick experiment's answer and plots; the same
    as ``OUT/report.html``, a page with the plots embedded (:func:`~elastic_theory.experiments._report.markdown_to_html`)."""
    from ..claims import render_markdown
    from ..experiments._report import html_page, markdown_to_html
    from ..experiments import get
    from ..data.io import write_text_atomic
    from ..infra.rundir import read_run

    lines = ["# elastic-theory demo report", "",
             f"Regenerated by `elastic-theory demo --out {out}` (claims seed {report.seed}); every number below comes "
             "from that command.", "", "## 1. The elasticity theory, claim by claim", "", render_markdown(report),
             report.summary, "", "## 2. Predicted ratio of rate changes (disjoint supports)", "",
             "| k | l | w3 | R | R/k | l* | sign claim |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['k']:g} | {r['l']:g} | {r['w3']:g} | {r['R']:.6g} | {r['R_over_k']:.6g} | {r['l_star']:.4g} | "
              f"{'holds' if r['sign_valid'] else 'fails (l >= l*)'} |" for r in ratios]
    for i, name in enumerate(names, start=3):
        exp = get(name)
        _, _, results = read_run(out / name)
        took = f" ({seconds[name]:.0f} s wall)" if seconds and name in seconds else ""
        lines += ["", f"## {i}. {name} (quick){took}", "", f"*{exp.question}* Prediction: {exp.prediction}.", "",
                  f"Command: `elastic-theory experiment {name} --quick --out {out / name}`", "", exp.summarize(results), ""]
        if name == "joint-ratio":
            lines += ["Verdicts (the full runs' rule: certified only where the rate-error bound is below the signal):", "",
                      *(f"- {v}" for v in joint_ratio_verdicts(results)), "", JOINT_RATIO_READING, ""]
        lines += [f"![{name}]({name}/{png.name})" for png in sorted((out / name).glob("*.png"))]
    path, text = out / "report.md", "\n".join(lines) + "\n"
    page = html_page("elastic-theory demo report", markdown_to_html(text, images_from=out), heading=False)
    write_text_atomic(path, text, what="the demo report")
    write_text_atomic(out / "report.html", page, what="the demo's HTML report")
    return path


JOINT_RATIO_READING = (
    "What this can and cannot show (docs/experiments.md, \"What the experiments show, and what they cannot\"): the "
    "world has 27 sequences and the network 3,424 parameters, so the run tests that the optimizer finds the joint "
    "optimum's table, not how a network that generalizes follows the theorem; a seed far from the optimum (its KL "
    "is in the table) says nothing, which is what \"not certified\" says. The influence column is k at any "
    "stationary point of the joint loss, whatever the data of the step (the first-order identity, verify's "
    "first_order_ratio_identity): it checks stationarity, not the theorem, whose content is the signs.")
"""The reading the demo's report gives under the quick joint-ratio's verdicts (the docs' summary, in short)."""

WIDE_TABLE_COLUMNS = 120
"""From this terminal width on, the demo's claims table also shows each claim's evidence."""

_CODING_ROWS = (
    ("n_leaves", "distinct chunks M", "{:,}"),
    ("mean_chunks", "E[#chunks] per response", "{:.3f}"),
    ("full_entropy_bits", "H, whole responses", "{:.3f}"),
    ("entropy_bits", "ideal chunk code E[c] H_d", "{:.3f}"),
    ("huffman_expected_bits", "Huffman chunk code", "{:.3f}"),
    ("paper_ideal_code_bits", "Thm 3.4: E[c] ceil(H_d)", "{:.3f}"),
    ("discrepancy_bits", "Thm 3.4 - Huffman", "{:+.3f}"),
    ("coded_bits", "ANS coder, measured", "{:.3f}"),
    ("coded_over_ideal", "ANS / ideal", "{:.5f}"),
)


def claims_table(report, width: int):
    """The verdict of every claim in a table that fits ``width`` columns: claim ids never break, and
    the evidence column is shown from :data:`WIDE_TABLE_COLUMNS` on (``verify`` shows everything)."""
    from rich import box
    from rich.table import Table

    colour = {"holds": "green", "approximate": "yellow", "fails": "magenta", "measured": "cyan", "inconclusive": "blue"}
    table = Table(title=f"elasticity claims (seed {report.seed})", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("claim", no_wrap=True)
    table.add_column("expected", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("as expected", overflow="fold")
    wide = width >= WIDE_TABLE_COLUMNS
    if wide:
        table.add_column("evidence", overflow="fold", ratio=1)
    for r in report.results:
        row = [escape(r.id), r.expected, f"[{colour.get(r.verdict, 'white')}]{r.verdict}[/]",
               "yes" if r.agrees else "[bold red]NO[/]"]
        table.add_row(*row, *([escape(r.evidence.summary)] if wide else []))
    return table


def coding_table(coding: dict):
    """Code lengths per depth, one column per depth (fits 80 columns for the four demo depths)."""
    from rich import box
    from rich.table import Table

    table = Table(title="bits per response; responses coded as chunks of <= d tokens", box=box.SIMPLE_HEAD)
    table.add_column("quantity", no_wrap=True)
    for r in coding["depths"]:
        table.add_column(f"d = {r['depth']}", justify="right", no_wrap=True)
    for key, label, fmt in _CODING_ROWS:
        table.add_row(escape(label), *(fmt.format(r[key]) for r in coding["depths"]))
    table.add_row("round trip", *("exact" if r["round_trip_exact"] else "[red]MISMATCH[/]" for r in coding["depths"]))
    return table


def ratio_table(ratios: list[dict]):
    from rich import box
    from rich.table import Table

    table = Table(title="R = (d gamma_a/dl) / (-d gamma_p/dl); theorem: R = Theta(k) for l < l* = w3/(1-w3)",
                  box=box.SIMPLE_HEAD)
    for col in ("k", "l", "w3", "R", "R/k", "l*", "sign claim"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in ratios:
        table.add_row(f"{r['k']:g}", f"{r['l']:g}", f"{r['w3']:g}", f"{r['R']:.6g}", f"{r['R_over_k']:.6g}",
                      f"{r['l_star']:.4g}", "holds" if r["sign_valid"] else "[magenta]fails (l >= l*)[/]")
    return table


def next_steps() -> list[tuple[str, str]]:
    """What to try after the demo, as (what it does, command), for the commands this installation has."""
    names = {c.name for c in app.registered_commands}
    steps = [
        ("every claim with its evidence, as JSON, and figures", "elastic-theory verify --json verify.json --plots plots/"),
        ("the predicted ratio at your own (k, l, w3)", "elastic-theory ratio --k 1000 --l 0.01 --w3 0.1"),
        ("code lengths of a token dataset (one JSON list of ids per line)", "elastic-theory tree --data examples/D.jsonl --depth 8"),
        ("bits per byte of a real language model on your text",
         "elastic-theory measure --model smollm2-135m --data prose=examples/prose.jsonl"),
    ]
    if "experiment" in names:
        steps.append(("the paper's experiments, rerun", "elastic-theory experiment --help"))
    if "compare" in names:
        steps.append(("rates of two models side by side", "elastic-theory compare --help"))
    steps.append(("options and examples of every command", "elastic-theory COMMAND --help"))
    steps.append(("the math behind every number", "docs/theory.md, docs/measurement.md, docs/protocol.md"))
    return steps


@app.command("demo")
@bad_input_exits_2
def demo_command(
    json_out: Path | None = json_option("Also write every number shown as JSON to this file."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the randomized claim checks."),
    out_dir: Path = typer.Option(Path("demo-report"), "--out", metavar="DIR",
                                 help="Folder for the quick experiments' runs, report.md and report.html (rerun to resume)."),
    experiments: bool = typer.Option(True, "--experiments/--no-experiments",
                                     help="Run the quick joint-ratio and rebound experiments and write the report."),
) -> None:
    """Verify the theory claim by claim, code a real-text corpus, show the predicted rate ratios, run the quick
    joint-ratio and rebound experiments (about 3 minutes on 2 cores), and write a markdown report with their plots
    (report.md) and the same as one HTML page with the plots embedded (report.html).

    Exit code 0 only if every claim's verdict is the expected one (as elastic-theory verify).
    Takes a few minutes on two CPU cores (about a minute with --no-experiments); tables fit the
    terminal's width.

    Examples:

    \b
      elastic-theory demo
      elastic-theory demo --no-experiments --seed 1 --json demo.json
      elastic-theory demo --out demo-report   # rerun to resume the quick experiments
    """
    from ..claims import run_verification

    if seed < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {seed}")
    if experiments:
        check_experiment_dirs(out_dir)
    out = console(json_out)
    out.rule("1. The elasticity theory, claim by claim (elastic-theory verify)")
    with hypothesis_outside_cwd():
        report = run_verification(seed)
    out.print(claims_table(report, out.width))
    out.print(report.summary)

    out.rule("2. Compression protocol on real text (elastic-theory tree)")
    coding = corpus_coding()
    c = coding["corpus"]
    out.print(f"{c['name']}: {c['n_responses']} responses, {c['distinct_responses']} distinct, "
              f"mean {c['mean_length_tokens']:.1f} tokens, V = {c['vocab_size']}")
    out.print(coding_table(coding))

    out.rule("3. Predicted ratio of rate changes, disjoint supports (elastic-theory ratio)")
    ratios = ratio_predictions()
    out.print(ratio_table(ratios))

    results = {"verify": report.to_json(), "coding": coding, "ratio": ratios}
    if experiments:
        out.rule("4. Quick experiments (elastic-theory experiment NAME --quick)")
        out.print(f"running {' and '.join(DEMO_EXPERIMENTS)} side by side in {out_dir} (a few minutes; a rerun resumes) ...")
        try:
            seconds = run_quick_experiments(out_dir)
        except KeyboardInterrupt:
            raise interrupted(f"interrupted: finished units are saved under {out_dir}; rerun the same command to resume") from None
        from ..experiments import get
        from ..infra.rundir import read_run

        for name in DEMO_EXPERIMENTS:
            results[name] = read_run(out_dir / name)[2]
            out.print(f"[bold]{name}[/] ({seconds[name]:.0f} s)")
            out.print(get(name).summarize(results[name]), markup=False)
            if name == "joint-ratio":
                results[name]["demo_verdicts"] = joint_ratio_verdicts(results[name])
                out.print("\n".join(results[name]["demo_verdicts"]), markup=False)
        out.rule("5. Report")
        written = write_report(out_dir, report, ratios, seconds=seconds)
        out.print(f"wrote {written} and {written.with_name('report.html')} (one page, plots embedded)")
    if json_out is not None:
        write_result(json_out, {**results, "config": {"seed": seed, "out": str(out_dir), "experiments": experiments}})
    out.rule("What to try next")
    out.print("(in a checkout set up by scripts/bootstrap.sh, first: source .venv/bin/activate)", highlight=False)
    for what, command in next_steps():
        out.print(f"{escape(what)}:\n  {escape(command)}", highlight=False)
    if not report.all_agree:
        raise typer.Exit(MISMATCH_EXIT_CODE)
