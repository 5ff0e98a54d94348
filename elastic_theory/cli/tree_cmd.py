"""``elastic-theory tree``: the token tree of a JSONL dataset and its code lengths at a depth."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, bad_input_exits_2, console, escape, json_option, write_result


def tree_summary(sequences: list[list[int]], vocab_size: int, depth: int) -> dict[str, float | int]:
    """The numbers ``elastic-theory tree`` prints: tree size plus the coding report at ``depth`` (per response, bits).

    A depth at or beyond the longest response codes every response as one chunk, so every depth
    from there on gives the same report: it is computed at ``effective_depth`` = min(depth, longest
    response) (exact, and no depth is too large), and ``depth`` is reported as asked.
    """
    from ..theory.coding import code_length_report
    from ..theory.tree import TokenTree

    tree = TokenTree.from_sequences(sequences, vocab_size)
    effective = min(depth, max(1, max(len(s) for s in sequences)))
    report = code_length_report(tree, effective)
    return {
        "vocab_size": vocab_size,
        "n_nodes": tree.n_nodes,
        "full_n_leaves": tree.n_leaves,
        "mean_length_tokens": tree.mean_length,
        **report.as_dict(),
        "depth": depth,
        "effective_depth": effective,
    }


_ROWS = (
    ("n_sequences", "responses |D|", ""),
    ("vocab_size", "alphabet size V", ""),
    ("n_nodes", "prefix-tree nodes (full tree)", ""),
    ("full_n_leaves", "distinct responses (full-tree leaves)", ""),
    ("mean_length_tokens", "mean response length", "tokens"),
    ("depth", "chunk depth d", "tokens"),
    ("effective_depth", "depth computed at (longest response caps it)", "tokens"),
    ("n_leaves", "distinct chunks M (coded leaves)", ""),
    ("mean_chunks", "E[max(1, ceil(|x|/d))]", "chunks/response"),
    ("chunk_entropy_bits", "H_d (chunk-leaf entropy)", "bits/chunk"),
    ("huffman_bits_per_chunk", "Huffman E[len]", "bits/chunk"),
    ("full_entropy_bits", "H (whole responses, lower bound)", "bits/response"),
    ("entropy_bits", "ideal chunk code E[c] * H_d", "bits/response"),
    ("huffman_expected_bits", "Huffman chunk code", "bits/response"),
    ("paper_ideal_code_bits", "Thm 3.4: E[c] * ceil(H_d)", "bits/response"),
    ("discrepancy_bits", "Thm 3.4 minus Huffman", "bits/response"),
    ("relative_discrepancy", "(Thm 3.4 - Huffman) / Huffman", ""),
)


@app.command("tree")
@bad_input_exits_2
def tree_command(
    data: Path = typer.Option(..., "--data", metavar="FILE", help="JSONL file: one JSON list of integer token ids per line (a response)."),
    depth: int = typer.Option(..., "--depth", metavar="D", help="Pruning/chunk depth d >= 1: responses are coded as chunks of <= d tokens."),
    vocab_size: int | None = typer.Option(
        None, "--vocab-size", metavar="V", help="Alphabet size V >= 2; default: the largest token id + 1 (at least 2)."
    ),
    json_out: Path | None = json_option("Also write the numbers as a JSON object to this file."),
) -> None:
    """Build the token tree of a dataset and compare entropy, Huffman and Thm 3.4 code lengths at depth d.

    All code lengths are per response in bits, for the responses chunked at d (for responses no
    longer than d that is the tree pruned at d). Bad input exits with code 2 and a message.

    Examples:

    \b
      elastic-theory tree --data examples/D.jsonl --depth 8
      elastic-theory tree --data examples/D.jsonl --depth 2 --vocab-size 256 --json tree.json
      elastic-theory tree --data examples/D.jsonl --depth 100 --json -
    """
    from .._validation import check_depth, check_vocab_size
    from ..data.io import infer_vocab_size, read_token_jsonl

    d = check_depth(depth, "--depth")
    if vocab_size is not None:
        check_vocab_size(vocab_size)
    sequences = read_token_jsonl(data, vocab_size)
    V = vocab_size if vocab_size is not None else infer_vocab_size(sequences)
    summary = tree_summary(sequences, V, d)

    from rich.table import Table

    table = Table(title=f"Token tree of {escape(data.name)}, coded in chunks of <= {d} tokens")
    for column in ("quantity", "value", "unit"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for key, label, unit in _ROWS:
        value = summary[key]
        table.add_row(escape(label), f"{value:,}" if isinstance(value, int) else f"{value:.6g}", unit)
    console(json_out).print(table)
    if json_out is not None:
        write_result(json_out, {"data": str(data), **summary})
