"""``elastic-theory tree``: the table, the JSON keys and values, and exit code 2 on bad input."""

import json
import subprocess
import sys
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from elastic_theory.cli import app

REQUIRED_KEYS = {"n_sequences", "n_leaves", "entropy_bits", "huffman_expected_bits", "paper_ideal_code_bits"}


def write(tmp_path, text, name="d.jsonl"):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def test_tree_json_exact_values(tmp_path):
    # responses [0] x2, [1,0], [1,1]: leaf probabilities 1/2, 1/4, 1/4 -> H = Huffman = 3/2, Thm 3.4 = ceil = 2
    data = write(tmp_path, "[0]\n[1, 0]\n[1, 1]\n[0]\n")
    out = tmp_path / "out" / "tree.json"
    result = CliRunner().invoke(app, ["tree", "--data", str(data), "--depth", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Thm 3.4" in result.stdout and "Huffman" in result.stdout
    got = json.loads(out.read_text())
    assert REQUIRED_KEYS <= got.keys()
    assert (got["n_sequences"], got["n_leaves"], got["vocab_size"], got["mean_chunks"]) == (4, 3, 2, 1)
    assert Fraction(got["entropy_bits"]) == Fraction(got["huffman_expected_bits"]) == Fraction(3, 2)
    assert Fraction(got["paper_ideal_code_bits"]) == 2 and Fraction(got["discrepancy_bits"]) == Fraction(1, 2)


def test_tree_chunks_long_responses(tmp_path):
    # [0,1,1] at depth 2 is two chunks; with [1]: 3 chunks for 2 responses
    data = write(tmp_path, "[0, 1, 1]\n[1]\n")
    out = tmp_path / "t.json"
    result = CliRunner().invoke(app, ["tree", "--data", str(data), "--depth", "2", "--vocab-size", "5", "--json", str(out)])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert (got["mean_chunks"], got["vocab_size"], got["full_entropy_bits"]) == (1.5, 5, 1.0)


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("[0]\n[1, 2\n", [], "d.jsonl:2: not valid JSON"),
        ("[0]\n\"abc\"\n", [], "d.jsonl:2: expected a JSON list"),
        ("", [], "holds no sequences"),
        ("[0, 7]\n", ["--vocab-size", "4"], "token 7 is outside the alphabet"),
        ("[0]\n", ["--vocab-size", "1"], "vocab_size must be >= 2"),
        ("[0]\n", ["--depth", "0"], "--depth must be >= 1"),
    ],
)
def test_tree_bad_input_exits_2(tmp_path, text, extra, message):
    data = write(tmp_path, text)
    args = ["tree", "--data", str(data), *(extra if "--depth" in extra else ["--depth", "2", *extra])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_tree_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["tree", "--data", str(tmp_path / "none.jsonl"), "--depth", "1"])
    assert result.exit_code == 2 and "no such file" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda tmp, data: ["--data", str(tmp)], "is a folder; give the JSONL file itself"),
        (lambda tmp, data: ["--data", str(data), "--json", str(tmp)], "is a folder; give a file path for the output"),
        (lambda tmp, data: ["--data", str(data), "--json", str(data / "out.json")], "--json " + "{tmp}/d.jsonl/out.json: {tmp}/d.jsonl is a file, not a folder"),
    ],
)
def test_tree_unusable_paths_exit_2(tmp_path, args, message):
    """A folder as --data or --json, or --json under a file: one line naming the path, exit 2, no traceback."""
    data = write(tmp_path, "[0]\n[1]\n")
    result = CliRunner().invoke(app, ["tree", *args(tmp_path, data), "--depth", "1"])
    assert result.exit_code == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught OSError


def test_tree_as_a_real_process(tmp_path):
    data = write(tmp_path, "[0]\n[1]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "elastic_theory", "tree", "--data", str(data), "--depth", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "distinct chunks" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "elastic_theory", "tree", "--data", str(data), "--depth", "-1"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--depth must be >= 1" in bad.stderr
