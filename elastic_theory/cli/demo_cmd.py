"""``elastic-theory demo``: the main job on built-in defaults.

1. the verdict table of every claim (``elastic-theory verify``);
2. the compression protocol on a built-in corpus of real English text (Python's own help text,
   as UTF-8 bytes): entropy, Huffman and Thm 3.4 code lengths per chunk depth, and a real
   entropy-coded round trip;
3. what the theory predicts for the ratio of rate changes at a few (k, l, w3);
4. the quick joint-ratio and rebound experiments (``elastic-theory experiment NAME --quick``), run
   side by side in two processes of one thread each;
5. a markdown report of all of it, with the experiments' plots (``DIR/report.md``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer

from .app import app, bad_input_exits_2, console
from .ratio_cmd import closed_form_result
from .verify_cmd import MISMATCH_EXIT_CODE

DEMO_DEPTHS = (4, 8, 16, 32)
DEMO_RATIOS = ((1e3, 1e-3, 0.1), (1e6, 1e-3, 0.1), (1e6, 0.05, 0.1), (1e6, 0.2, 0.1), (1e6, 1e-3, 0.0))
DEMO_EXPERIMENTS = ("joint-ratio", "rebound")


def corpus_coding(depths: tuple[int, ...] = DEMO_DEPTHS) -> dict:
    """Code-length reports and an entropy-coded round trip of the built-in corpus at each depth.

    Returns ``{"corpus": {...}, "depths": [{**CodeLengthReport.as_dict(), "coded_bits",
    "coded_over_ideal", "round_trip_exact"}, ...]}``; lengths in bits per response.
    """
    from ..coding import ChunkCoder, code_length_report
    from ..examples import BYTE_VOCAB_SIZE, stdlib_sentences
    from ..tree import TokenTree

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
    return [closed_form_result(k, l, w3)[0] for k, l, w3 in settings]


def check_experiment_dirs(out: Path, names=DEMO_EXPERIMENTS) -> None:
    """Raise ``ValueError`` before any work unless ``out`` can hold the report and each quick run (new, or one to resume)."""
    from ..experiments import config_to_dict, get
    from ..runs import RunDir

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the demo's runs and report")
    if (out / "report.md").is_dir():
        raise ValueError(f"{out / 'report.md'} is a folder; remove it or give another --out")
    for name in names:
        exp = get(name)
        RunDir.check(out / name, exp.name, config_to_dict(exp.quick()))


def run_quick_experiments(out: Path, names=DEMO_EXPERIMENTS, extra: tuple[str, ...] = ()) -> dict[str, float]:
    """Run ``elastic-theory experiment NAME --quick --out OUT/NAME`` for each name, in parallel on >= 2 cores.

    Each child gets one torch thread (unless ``OMP_NUM_THREADS`` is set), so two of them fill two
    cores; its stderr goes to ``OUT/NAME.log``. A run that exists resumes. Returns the wall seconds
    of each experiment; a failed child raises ``ValueError`` with its last error line. Ctrl-C reaches
    the children too: their finished units stay.
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
                    if proc.returncode != 0:
                        for _, other, _ in running.values():
                            other.terminate()
                        last = (path.read_text(encoding="utf-8").strip().splitlines() or ["no message"])[-1]
                        raise ValueError(f"quick {key} failed (exit {proc.returncode}): {last} (full log: {path})")
            time.sleep(0.2)
    return seconds


def write_report(out: Path, report, ratios: list[dict], names=DEMO_EXPERIMENTS, seconds: dict | None = None) -> Path:
    """``OUT/report.md``: the claims table, the predicted ratios and each quick experiment's answer and plots."""
    from ..claims import render_markdown
    from ..experiments import get
    from ..io import write_text_atomic
    from ..runs import read_run

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
        lines += [f"![{name}]({name}/{png.name})" for png in sorted((out / name).glob("*.png"))]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n", what="the demo report")
    return path


@app.command("demo")
@bad_input_exits_2
def demo_command(
    json_out: Path | None = typer.Option(None, "--json", help="Also write every number shown as JSON to this file."),
    seed: int = typer.Option(0, "--seed", help="Seed of the randomized claim checks."),
    out_dir: Path = typer.Option(Path("demo-report"), "--out", help="Folder for the quick experiments' runs and report.md (rerun to resume)."),
    experiments: bool = typer.Option(True, "--experiments/--no-experiments", help="Run the quick joint-ratio and rebound experiments and write the report."),
) -> None:
    """Verify the theory claim by claim, code a real-text corpus, show the predicted rate ratios, run the quick
    joint-ratio and rebound experiments (about 3 minutes on 2 cores), and write a markdown report with their plots.

    Exit code 0 only if every claim's verdict is the expected one (as ``elastic-theory verify``).
    """
    from rich.markup import escape
    from rich.table import Table

    from ..claims import render_table, run_verification
    from ..io import write_json_atomic

    if json_out is not None and json_out.is_dir():
        raise ValueError(f"--json {json_out} is a folder; give a file path for the JSON output")
    if experiments:
        check_experiment_dirs(out_dir)
    out = console()
    out.rule("1. The elasticity theory, claim by claim (elastic-theory verify)")
    report = run_verification(seed)
    out.print(render_table(report))
    out.print(report.summary)

    out.rule("2. Compression protocol on real text (elastic-theory tree)")
    coding = corpus_coding()
    c = coding["corpus"]
    out.print(f"{c['name']}: {c['n_responses']} responses, {c['distinct_responses']} distinct, "
              f"mean {c['mean_length_tokens']:.1f} tokens, V = {c['vocab_size']}")
    table = Table(title="bits per response; responses coded as chunks of <= d tokens")
    for col in ("d", "M chunks", "E[#chunks]", "H (whole)", "E[c]*H_d", "Huffman", "Thm 3.4", "Thm 3.4 - Huffman",
                "ANS coded", "coded/ideal", "round trip"):
        table.add_column(escape(col), justify="right")
    for r in coding["depths"]:
        table.add_row(
            str(r["depth"]), f"{r['n_leaves']:,}", f"{r['mean_chunks']:.3f}", f"{r['full_entropy_bits']:.3f}",
            f"{r['entropy_bits']:.3f}", f"{r['huffman_expected_bits']:.3f}", f"{r['paper_ideal_code_bits']:.3f}",
            f"{r['discrepancy_bits']:+.3f}", f"{r['coded_bits']:.3f}", f"{r['coded_over_ideal']:.5f}",
            "exact" if r["round_trip_exact"] else "[red]MISMATCH[/]",
        )
    out.print(table)

    out.rule("3. Predicted ratio of rate changes, disjoint supports (elastic-theory ratio)")
    ratios = ratio_predictions()
    table = Table(title="R = (d gamma_a/dl) / (-d gamma_p/dl); theorem: R = Theta(k) for l < l* = w3/(1-w3)")
    for col in ("k", "l", "w3", "R", "R/k", "l*", "sign claim"):
        table.add_column(col, justify="right")
    for r in ratios:
        table.add_row(f"{r['k']:g}", f"{r['l']:g}", f"{r['w3']:g}", f"{r['R']:.6g}", f"{r['R_over_k']:.6g}",
                      f"{r['l_star']:.4g}", "holds" if r["sign_valid"] else "[magenta]fails (l >= l*)[/]")
    out.print(table)

    results = {"verify": report.to_json(), "coding": coding, "ratio": ratios}
    if experiments:
        out.rule("4. Quick experiments: joint-ratio and rebound (elastic-theory experiment NAME --quick)")
        out.print(f"running {' and '.join(DEMO_EXPERIMENTS)} side by side in {out_dir} (a few minutes; a rerun resumes) ...")
        try:
            seconds = run_quick_experiments(out_dir)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: finished units are saved under {out_dir}; rerun the same command to resume", err=True)
            raise typer.Exit(130) from None
        from ..experiments import get
        from ..runs import read_run

        for name in DEMO_EXPERIMENTS:
            results[name] = read_run(out_dir / name)[2]
            out.print(f"[bold]{name}[/] ({seconds[name]:.0f} s)")
            out.print(get(name).summarize(results[name]), markup=False)
        out.rule("5. Report")
        out.print(f"wrote {write_report(out_dir, report, ratios, seconds=seconds)}")
    if json_out is not None:
        write_json_atomic(json_out, results)
        out.print(f"wrote {json_out}")
    if not report.all_agree:
        raise typer.Exit(MISMATCH_EXIT_CODE)
