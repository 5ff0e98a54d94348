"""Built-in example corpora: real English text shipped with Python, as byte-level token sequences.

The demo and the docs use these so that every number they print can be regenerated on any
machine with nothing downloaded.
"""

from __future__ import annotations

import bz2
import functools
import importlib.util
import re
from pathlib import Path

from ..theory.tree import TokenTree

__all__ = [
    "BYTE_VOCAB_SIZE",
    "WIKIPEDIA_SAMPLE",
    "gensim_test_file",
    "prose_lines",
    "stdlib_sentences",
    "wikipedia_articles",
    "wikipedia_prefix_tree",
    "wikipedia_sentences",
]

#: Size of the byte alphabet: text coded as UTF-8 bytes uses tokens 0 .. 255.
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


#: File name of the shortened Wikipedia dump shipped with gensim's test data (the offline real-text corpus).
WIKIPEDIA_SAMPLE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def gensim_test_file(name: str) -> Path:
    """A file of gensim's test data, found without importing gensim (its import is slow and not needed)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the Wikipedia sample ships with gensim: install it with `pip install gensim==4.4.0`")
    path = Path(spec.submodule_search_locations[0]) / "test" / "test_data" / name
    if not path.is_file():
        raise ValueError(f"gensim's test data lacks {name}: install gensim==4.4.0, the version this corpus was read from")
    return path


def _strip_wiki_markup(text: str) -> str:
    """Drop comments, references, templates ``{{...}}`` and tables ``{|...|}`` (nested), HTML tags and
    bold/italic quotes; keep the visible text of links ``[[target|text]]`` and ``[url text]``."""
    text = re.sub(r"<!--.*?-->|<ref[^>]*/>|<ref[^>]*>.*?</ref>", "", text, flags=re.S)
    kept, depth = [], 0
    for piece in re.split(r"(\{\{|\}\}|\{\||\|\})", text):
        if piece in ("{{", "{|"):
            depth += 1
        elif piece in ("}}", "|}"):
            depth = max(depth - 1, 0)
        elif depth == 0:
            kept.append(piece)
    text = re.sub(r"<[^>]+>", "", "".join(kept))
    text = re.sub(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]", r"\1", text)
    text = re.sub(r"\[https?://\S+ ?([^\]]*)\]", r"\1", text)
    return re.sub(r"'{2,}", "", text)


@functools.lru_cache(maxsize=1)
def wikipedia_articles() -> tuple[tuple[str, str], ...]:
    """``(title, text)`` of the 106 English Wikipedia articles in gensim 4.4.0's test data, in file order.

    Main-namespace pages that are not redirects; HTML entities unescaped and markup stripped
    (:func:`_strip_wiki_markup`); lines kept as they are (see :func:`prose_lines`). Read without
    importing gensim and cached for the process (about 3 s).
    """
    import html
    import xml.etree.ElementTree as ET

    out: list[tuple[str, str]] = []
    with bz2.open(gensim_test_file(WIKIPEDIA_SAMPLE)) as f:
        for _, page in ET.iterparse(f):
            if not page.tag.endswith("}page"):
                continue
            text = page.findtext("{*}revision/{*}text") or ""
            if page.findtext("{*}ns") == "0" and not text[:9].lower().startswith("#redirect"):
                out.append((page.findtext("{*}title") or "", _strip_wiki_markup(html.unescape(text))))
            page.clear()
    return tuple(out)


def prose_lines(text: str) -> list[str]:
    """The prose lines of a stripped article, whitespace collapsed: no list, heading, table or indented
    line, and no markup left over. In wikitext each such line is one paragraph."""
    out = []
    for line in text.split("\n"):
        line = " ".join(line.split())
        if line and line[0] not in "*#:;|!={[" and not re.search(r"\[\[|\]\]|\{\{|\}\}|\|", line):
            out.append(line)
    return out


@functools.lru_cache(maxsize=1)
def _wikipedia_sentences() -> tuple[str, ...]:
    return tuple(s for _, text in wikipedia_articles() for line in prose_lines(text)
                 for s in _SENTENCE_END.split(line) if s[:1].isupper())


def wikipedia_sentences(n: int | None = None, min_chars: int = 8, max_chars: int = 200) -> list[list[int]]:
    """Sentences of the 106 English Wikipedia articles shipped in gensim 4.4.0's test data, as UTF-8 bytes.

    The articles (text CC BY-SA 3.0, Wikipedia contributors; the gensim package is LGPL-2.1) are read
    from the installed wheel without importing gensim. Markup is stripped (:func:`_strip_wiki_markup`),
    only prose lines are kept, and each line is split after ``.``, ``!`` or ``?``; a sentence is kept if
    it starts with a capital letter and has ``min_chars`` to ``max_chars`` characters. The first ``n``
    (all if None) are returned, in article order. The parsed text is cached for the process (about
    3 s to read). The corpus depends on the gensim version only, not on the Python version.
    """
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = [list(s.encode("utf-8")) for s in _wikipedia_sentences() if min_chars <= len(s) <= max_chars]
    if n is not None and len(out) < n:
        raise ValueError(f"the Wikipedia sample holds only {len(out)} sentences of {min_chars}-{max_chars} characters; ask for fewer")
    return out if n is None else out[:n]


def wikipedia_prefix_tree(depth: int = 3) -> TokenTree:
    """The token tree of all :func:`wikipedia_sentences` (bytes) pruned to ``depth``: its leaves are the
    sentences' first ``depth`` bytes, with counts. Built from the truncated sentences (the same tree as
    building from whole sentences and pruning, tested, and several times faster)."""
    sentences = wikipedia_sentences()
    if depth < 1 or depth > min(map(len, sentences)):
        raise ValueError(f"depth must be between 1 and the shortest sentence's {min(map(len, sentences))} bytes, got {depth}")
    return TokenTree.from_sequences([s[:depth] for s in sentences], BYTE_VOCAB_SIZE, ends=[False] * len(sentences))
