"""Real text that works offline: the paper's three settings from data that ships inside packages, and users' JSONL.

* **Safety** (the paper's alignment setting): JailbreakBench 0.1.0's 100 harmful goals
  (``jailbreakbench/data/behaviors.csv``, MIT) as prompts, its "Sure, here is ..." targets as the
  *unaligned* responses, and refusals written for this package (:data:`REFUSALS`) as the
  *aligned* ones: :func:`jailbreakbench_pairs`.
* **Sentiment** (the paper's IMDb-style setting): the 200 Pang-Lee movie-review sentences, 100
  positive and 100 negative (gensim's test data, ``pang_lee_polarity.cor``):
  :func:`polarity_sentences`, judged offline by VADER (:func:`vader_compound`, lexicon bundled
  with ``vadersentiment``).
  :func:`polarity_pairs` makes them preference pairs (a positive vs a negative sentence).
* **Pre-training proxy** for gamma_p: gensim's sample of 106 English Wikipedia articles
  (CC BY-SA), as prose without markup: :func:`wikipedia_sample`.
* **Users' data**: :func:`read_pairs_jsonl` and :func:`read_texts_jsonl` read the same shapes
  from JSONL files.

:func:`split_train_measure` makes seeded, disjoint training and measurement sets whose sides depend on
each item's identity only (no requested size moves an item across). Packages are
located with :func:`importlib.util.find_spec` and their data files read directly (importing
``jailbreakbench`` would pull in its many dependencies); nothing is downloaded. No torch here.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from .io import iter_jsonl

__all__ = [
    "REFUSALS",
    "LabelledText",
    "MEASURE_FRACTION",
    "PreferencePair",
    "Split",
    "jailbreakbench_pairs",
    "package_data_file",
    "pair_texts",
    "POLARITY_PROMPT",
    "polarity_pairs",
    "polarity_sentences",
    "read_pairs_jsonl",
    "read_texts_jsonl",
    "split_train_measure",
    "vader_compound",
    "item_hash",
    "wikipedia_sample",
]

T = TypeVar("T")

REFUSALS = (
    "I'm sorry, but I can't help with that. It could cause real harm to people, and I won't assist with it.",
    "I can't help with this request. If you have a different question, I'm happy to help with that instead.",
    "No, I won't do that. This request asks for something harmful, and providing it would be wrong.",
    "I'm not able to help with that. Please consider a safer goal; I can help with legitimate questions on the topic.",
    "Sorry, I can't assist with this. It would put others at risk, so I have to decline.",
)
"""Aligned responses for the safety setting, written for this package (the benchmark ships none).

Prompt i gets ``REFUSALS[i % 5]``: five phrasings, so that a model aligned on them learns to
refuse rather than to repeat one fixed string."""


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with an aligned and an unaligned response; ``name`` says where it came from (``file:line``)."""

    name: str
    prompt: str
    aligned: str
    unaligned: str
    category: str = ""


@dataclass(frozen=True)
class LabelledText:
    """A text with a label (``"positive"``/``"negative"``, an article title, or a user's label)."""

    name: str
    text: str
    label: str = ""


def package_data_file(package: str, relative: str, install: str) -> Path:
    """The file ``relative`` inside an installed package, found without importing the package.

    ``ValueError`` naming ``install`` (the command that provides it) when the package or file is absent.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"needs the optional package {package}: {install}")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise ValueError(f"{path}: not found in the installed {package}; this data ships with {install}")
    return path


def jailbreakbench_pairs() -> list[PreferencePair]:
    """The 100 JailbreakBench 0.1.0 behaviours as preference pairs (aligned: a refusal from :data:`REFUSALS`;
    unaligned: the benchmark's "Sure, here is ..." target), in the file's order."""
    path = package_data_file("jailbreakbench", "data/behaviors.csv", "pip install --no-deps jailbreakbench==0.1.0")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    return [
        PreferencePair(f"{path.name}:{i + 2}", row["Goal"], REFUSALS[i % len(REFUSALS)], row["Target"], row["Category"])
        for i, row in enumerate(rows)
    ]


def polarity_sentences() -> list[LabelledText]:
    """The 200 Pang-Lee movie-review sentences with labels ``"positive"``/``"negative"`` (100 each).

    The file is Windows-1252 (em dashes, accented names), decoded as such; the ``__label__``
    prefix is dropped and whitespace at the ends stripped.
    """
    from .builtin_text import gensim_test_file

    path = gensim_test_file("pang_lee_polarity.cor")
    labels = {"__label__pos": "positive", "__label__neg": "negative"}
    out = []
    for lineno, line in enumerate(path.read_bytes().decode("cp1252").splitlines(), start=1):
        tag, _, text = line.partition(" ")
        if tag in labels and text.strip():
            out.append(LabelledText(f"{path.name}:{lineno}", text.strip(), labels[tag]))
    return out


POLARITY_PROMPT = "Write one sentence of a movie review."
"""The instruction every polarity pair shares (the paper's IMDb setting asks for a positive review)."""


def polarity_pairs(*, seed: int, prompt: str = POLARITY_PROMPT) -> list[PreferencePair]:
    """The Pang-Lee sentences as 100 preference pairs: ``prompt`` (the same for all), aligned = a positive
    sentence, unaligned = a negative one.

    Positive sentence i (file order) is paired with negative sentence ``perm[i]``,
    ``perm = np.random.default_rng(seed).permutation(100)``, so each sentence is in exactly one pair.
    A pair's ``name`` is ``"<positive file:line>|<negative file:line>"`` and its category
    ``"polarity"``. Since the prompt repeats, split with the name as the key,
    ``split_train_measure(pairs, ..., key=lambda p: p.name)``: distinct pairs hold distinct
    sentences, so no sentence is on both sides. The shared prompt suits log-probability margins;
    a greedy generation score needs distinct prompts (one prompt gives one greedy generation).
    """
    sentences = polarity_sentences()
    positive = [s for s in sentences if s.label == "positive"]
    negative = [s for s in sentences if s.label == "negative"]
    if len(positive) != len(negative):
        raise ValueError(f"expected as many positive as negative sentences, got {len(positive)} and {len(negative)}")
    perm = np.random.default_rng(seed).permutation(len(negative))
    return [PreferencePair(f"{pos.name}|{negative[j].name}", prompt, pos.text, negative[j].text, "polarity")
            for pos, j in zip(positive, perm)]


def wikipedia_sample(unit: str = "article", min_chars: int = 200) -> list[LabelledText]:
    """gensim's English Wikipedia sample as plain prose (label: the article's title).

    ``unit="article"``: one text per article (106), its prose paragraphs joined by newlines;
    ``"paragraph"``: one text per prose paragraph. Texts shorter than ``min_chars`` characters are
    dropped. Markup, lists, headings and tables are removed as for the theory checks' sentences
    (:func:`elastic_theory.data.builtin_text.wikipedia_articles`, :func:`~elastic_theory.data.builtin_text.prose_lines`).
    """
    from .builtin_text import prose_lines, wikipedia_articles

    if unit not in ("article", "paragraph"):
        raise ValueError(f"unit must be 'article' or 'paragraph', got {unit!r}")
    out = []
    for title, text in wikipedia_articles():
        paragraphs = prose_lines(text)
        if unit == "article":
            out.append(LabelledText(title, "\n".join(paragraphs), title))
        else:
            out.extend(LabelledText(f"{title}[{i}]", p, title) for i, p in enumerate(paragraphs))
    return [x for x in out if len(x.text) >= min_chars]


def vader_compound(texts: Sequence[str]) -> np.ndarray:
    """VADER's compound sentiment of each text, in [-1, 1] (> 0 positive); the lexicon ships with ``vadersentiment``.

    VADER's own convention: compound >= 0.05 positive, <= -0.05 negative, else neutral.
    """
    if importlib.util.find_spec("vaderSentiment") is None:
        raise ValueError("the sentiment judge needs the optional package vadersentiment: pip install vadersentiment==3.3.2")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)


def _field(record: dict, field: str, where: str) -> str:
    value = record.get(field) if isinstance(record, dict) else None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a JSON object with a non-empty string field {field!r}")
    return value


def read_pairs_jsonl(path: str | os.PathLike, prompt: str = "prompt", aligned: str = "aligned",
                     unaligned: str = "unaligned") -> list[PreferencePair]:
    """Preference pairs from a JSONL file, one object per line with the three named string fields."""
    out = [PreferencePair(where, _field(r, prompt, where), _field(r, aligned, where), _field(r, unaligned, where))
           for where, r in iter_jsonl(_existing(path))]
    return _nonempty(out, path)


def read_texts_jsonl(path: str | os.PathLike, text: str = "text", label: str | None = None) -> list[LabelledText]:
    """Texts (and, if ``label`` names a field, their labels) from a JSONL file, one object per line."""
    out = [LabelledText(where, _field(r, text, where), _field(r, label, where) if label else "")
           for where, r in iter_jsonl(_existing(path))]
    return _nonempty(out, path)


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path


def _nonempty(items: list[T], path) -> list[T]:
    if not items:
        raise ValueError(f"{path}: the file holds no records")
    return items


def pair_texts(pairs: Sequence[PreferencePair], side: str, template: str = "{prompt}\n{response}") -> list[str]:
    """The documents of one side (``"aligned"``/``"unaligned"``) of the pairs: ``template`` filled with
    the prompt and that side's response (the same text a model is trained on and measured on)."""
    if side not in ("aligned", "unaligned"):
        raise ValueError(f"side must be 'aligned' or 'unaligned', got {side!r}")
    return [template.format(prompt=p.prompt, response=getattr(p, side)) for p in pairs]


MEASURE_FRACTION = 0.5
"""The share of a collection's distinct items that :func:`split_train_measure` puts on the measurement side
(by a seeded hash of each item, so that every command with the same seed draws the same two sides)."""


@dataclass(frozen=True)
class Split:
    """Disjoint training and measurement subsets of one collection (``seed`` says how they were drawn)."""

    train: list
    measure: list
    seed: int


def item_hash(key: str, seed: int) -> int:
    """A seeded 64-bit hash of an item's identity: the first 8 bytes of SHA-256 of ``"{seed}\\0{key}"``."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:8], "big")


def split_train_measure(items: Sequence[T], *, n_measure: int, n_train: int | None = None, seed: int,
                        key: Callable[[T], str] | None = None,
                        measure_fraction: float | None = MEASURE_FRACTION) -> Split:
    """Draw ``n_measure`` items for measurement and ``n_train`` (default: all of its side) for training.

    Items with the same ``key`` (default: the text, or for pairs the prompt) count once, the first
    kept. The distinct items are ordered by :func:`item_hash` of their key, so an item's place is a
    function of its identity and the seed, not of its position in the file. The first
    ``round(measure_fraction * n)`` of that order (at least one, and one short of all) are the
    *measurement side*, the rest the *training side*; ``n_measure`` is taken from the start of the
    measurement side and ``n_train`` from the start of the training side. No request size moves an
    item across, so ``corpus --split measure --n-measure 20`` and ``finetune --n-train 8 --n-measure 10``
    (any sizes, the same seed) never share an item. ``measure_fraction=None`` makes the measurement side
    exactly ``n_measure`` items, for a caller that takes both parts from this one call (the protocols).
    Raises ``ValueError`` when a side is too small for its request.
    """
    key = key or _default_key
    first: dict[str, T] = {}
    for x in items:
        first.setdefault(key(x), x)
    order = sorted(first, key=lambda k: item_hash(k, seed))
    n = len(order)
    if measure_fraction is None:
        n_side = n_measure
    elif not 0 < measure_fraction < 1:
        raise ValueError(f"measure_fraction must be in (0, 1), got {measure_fraction!r}")
    else:
        n_side = min(max(round(measure_fraction * n), 1), n - 1)
    side_train = n - n_side
    n_train = side_train if n_train is None else n_train
    if n_measure < 1 or n_train < 1 or n_side < n_measure or side_train < n_train:
        share = "" if measure_fraction is None else f" (a fixed {measure_fraction:g} of them are for measurement)"
        raise ValueError(f"the dataset has {n} distinct items{share}, too few (or a size < 1) for {n_measure} to "
                         f"measure + {n_train} to train: its sides hold {max(n_side, 0)} to measure and "
                         f"{max(side_train, 0)} to train; ask for fewer")
    return Split(train=[first[k] for k in order[n_side : n_side + n_train]],
                 measure=[first[k] for k in order[:n_measure]], seed=seed)


def _default_key(item) -> str:
    if isinstance(item, PreferencePair):
        return item.prompt
    text = getattr(item, "text", None)  # a LabelledText, or a chat example (its contents joined)
    return text if isinstance(text, str) else str(item)
