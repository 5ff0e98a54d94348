"""Built-in example corpora: real English text shipped with Python, as byte-level token sequences.

The demo and the docs use these so that every number they print can be regenerated on any
machine with nothing downloaded.
"""

from __future__ import annotations

import re

__all__ = ["BYTE_VOCAB_SIZE", "stdlib_sentences"]

BYTE_VOCAB_SIZE = 256


def stdlib_sentences(n: int = 1000, min_chars: int = 8, max_chars: int = 100) -> list[list[int]]:
    """The first ``n`` sentences of ``pydoc_data.topics`` (Python's own help text, shipped with CPython).

    Each sentence is whitespace-normalized, kept if it has ``min_chars`` to ``max_chars``
    characters, and returned as its UTF-8 bytes (token ids 0..255, vocabulary size 256).
    Deterministic: the same interpreter version gives the same corpus.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    from pydoc_data.topics import topics

    out: list[list[int]] = []
    for key in sorted(topics):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(topics[key].split())):
            if min_chars <= len(sentence) <= max_chars:
                out.append(list(sentence.encode("utf-8")))
                if len(out) == n:
                    return out
    raise ValueError(f"pydoc_data.topics holds only {len(out)} sentences of {min_chars}-{max_chars} characters; ask for fewer")
