"""Running the commands of README.md and docs/ leaves no untracked file that git reports: every output path they
name (``--json``, ``--out``, ``--plots``, ``--per-document``, ``--csv``) is ignored. Kills a .gitignore that
misses one (the issue found 8: compare.json, align.jsonl, ...)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]
OUTPUT = re.compile(r"(?:--json|--out|--plots|--per-document|--csv) ([^\s`\"']+)")


def output_paths() -> list[str]:
    """The output paths the pages' commands name, placeholders (FILE, DIR, OUT, -) left out."""
    found = {m.group(1).rstrip(";)") for page in PAGES for m in OUTPUT.finditer(page.read_text(encoding="utf-8"))}
    return sorted(p for p in found if p != "-" and not re.search(r"[A-Z]{2,}|\$", p))


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_every_output_the_docs_commands_write_is_ignored():
    paths = output_paths()
    assert {"compare.json", "align.jsonl", "plots/", "rates.json"} <= set(paths)  # the reader finds them
    check = subprocess.run(["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"], input="\n".join(paths),
                           capture_output=True, text=True, cwd=ROOT)
    missed = [line.split("\t")[-1] for line in check.stdout.splitlines() if line.startswith("::")]
    assert missed == []
