"""``elastic-theory demo``: the main job on built-in defaults.

1. the verdict table of every claim (``elastic-theory verify``);
2. the compression protocol on a built-in corpus of real English text (Python's own help text,
   as UTF-8 bytes): entropy, Huffman and Thm 3.4 code lengths per chunk depth, and a real
   entropy-coded round trip;
3. what the theory predicts for the ratio of rate changes at a few (k, l, w3).
"""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, bad_input_exits_2, console
from .ratio_cmd import closed_form_result
from .verify_cmd import MISMATCH_EXIT_CODE

DEMO_DEPTHS = (4, 8, 16, 32)
DEMO_RATIOS = ((1e3, 1e-3, 0.1), (1e6, 1e-3, 0.1), (1e6, 0.05, 0.1), (1e6, 0.2, 0.1), (1e6, 1e-3, 0.0))


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


@app.command("demo")
@bad_input_exits_2
def demo_command(
    json_out: Path | None = typer.Option(None, "--json", help="Also write every number shown as JSON to this file."),
    seed: int = typer.Option(0, "--seed", help="Seed of the randomized claim checks."),
) -> None:
    """Verify the theory claim by claim, code a real-text corpus, and show the predicted rate ratios.

    Exit code 0 only if every claim's verdict is the expected one (as ``elastic-theory verify``).
    """
    from rich.markup import escape
    from rich.table import Table

    from ..claims import render_table, run_verification
    from ..io import write_json_atomic

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

    if json_out is not None:
        write_json_atomic(json_out, {"verify": report.to_json(), "coding": coding, "ratio": ratios})
        out.print(f"wrote {json_out}")
    if not report.all_agree:
        raise typer.Exit(MISMATCH_EXIT_CODE)
