"""Write the example datasets that README.md and docs/ use (run from anywhere; writes next to this file).

    python examples/make_examples.py

Deterministic: token files are enumerated (no random numbers); text files are paragraphs of
Python's own help text (``pydoc_data.topics``, shipped with CPython), so a given Python minor
version always writes the same bytes. tests/test_docs_commands.py checks that the committed files
are this script's output.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def token_datasets() -> dict[str, list[list[int]]]:
    """D_p, D_a, D_t for ``perturb`` and a real-text token file for ``tree``.

    * ``T.jsonl`` (D_t): the 4 responses of length 2 over tokens {4, 5};
    * ``P.jsonl`` (D_p): the 80 responses of length 2 and 3 over tokens {0, 1, 2, 3}, plus D_t five
      times (20 responses): D_t is a component of pre-training with weight w3 = 20/100 = 0.2;
    * ``A.jsonl`` (D_a): the 10 responses of length 1 and 3 over tokens {6, 7}, a support disjoint
      from D_p, so k = |D_p|/|D_a| = 10 and l* = w3/(1 - w3) = 0.25 (THEORY §2.2);
    * ``D.jsonl``: the first 200 sentences of Python's help text as UTF-8 bytes (tokens 0..255).
    """
    from elastic_theory.data.builtin_text import stdlib_sentences

    def words(alphabet, *lengths):
        return [list(w) for n in lengths for w in itertools.product(alphabet, repeat=n)]

    perturb = words((4, 5), 2)
    return {
        "T.jsonl": perturb,
        "P.jsonl": words(range(4), 2, 3) + perturb * 5,
        "A.jsonl": words((6, 7), 1, 3),
        "D.jsonl": stdlib_sentences(200),
    }


def text_datasets() -> dict[str, str]:
    """``prose.jsonl`` (JSONL, field ``text``) and ``prose.txt`` (one document per line): 20 paragraphs each, the
    first prose paragraph (not a heading or code; 80 to 400 characters, whitespace-normalized) of successive help
    topics."""
    from pydoc_data.topics import topics

    paragraphs = []
    for key in sorted(topics):
        for block in topics[key].split("\n\n"):
            text = " ".join(block.split())
            if 80 <= len(text) <= 400 and not block.startswith(" ") and "***" not in text and "===" not in text:
                paragraphs.append(text)
                break
    return {
        "prose.jsonl": "".join(json.dumps({"text": p}) + "\n" for p in paragraphs[:20]),
        "prose.txt": "".join(p + "\n" for p in paragraphs[20:40]),
    }


def files() -> dict[str, str]:
    """File name -> exact contents of every example file."""
    out = {name: "".join(json.dumps(seq) + "\n" for seq in seqs) for name, seqs in token_datasets().items()}
    out.update(text_datasets())
    return out


def main() -> None:
    for name, text in files().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")
    print(f"(Python {sys.version_info.major}.{sys.version_info.minor})")


if __name__ == "__main__":
    main()
