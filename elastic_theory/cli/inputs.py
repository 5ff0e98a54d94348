"""Input checks that several commands share, run before any model loads: the scoring options and the ``--data``
datasets of the commands that score text (``measure``, ``compare``, ``probe``: :func:`check_scoring_options`,
:func:`read_datasets`), measurement documents that hold training examples (``finetune --track``, ``compare``),
datasets too small for the statistics asked for (``measure``, ``compare``, ``probe``), and per-model
``--tokenizer [NAME=]PATH`` options. Each raises a one-line ``ValueError`` naming the option."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import typer

TRAINING_RECORD = "result.json"
"""The file ``finetune`` writes next to its ``final/`` model; ``compare`` reads the training examples from it."""


def refuse_shared_documents(training: Sequence, datasets: dict[str, list], option: str, trained: str) -> None:
    """``ValueError`` when a measurement dataset holds a training example (:mod:`elastic_theory.data.overlap`).

    ``training``: :class:`~elastic_theory.data.overlap.TrainingText` records; ``datasets``: name -> documents
    (with ``.text``); ``option`` names the datasets' option (``--data``, ``--track``); ``trained`` says what
    was trained on them (``"the training examples"``, ``"checkpoint 'sft' (runs/ft/result.json)"``).
    """
    from ..data.overlap import documents_holding

    for name, docs in datasets.items():
        held = documents_holding(training, [d.text for d in docs])
        if held:
            raise ValueError(
                f"{option} {name}: {len(held)} of its {len(docs)} documents hold text of {trained} (the first: "
                f"{docs[held[0]].name}); measure on held-out documents, e.g. from corpus NAME --split measure with the "
                "training's seed")


def finetune_training_texts(checkpoint: str) -> tuple[Path, list] | None:
    """The training examples a ``finetune`` run recorded for the model folder ``checkpoint`` (its parent's
    ``result.json``), as ``(that file, TrainingText records)``; None when there is no such record."""
    from ..data.overlap import TrainingText

    record = Path(checkpoint).parent / TRAINING_RECORD
    if not Path(checkpoint).is_dir() or not record.is_file():
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8")).get("data", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    texts = data.get("train_texts") if isinstance(data, dict) else None
    if not isinstance(texts, list):
        return None
    return record, [TrainingText.from_dict(t) for t in texts]


def check_scoring_options(context, stride, batch_size, seed) -> None:
    """The numeric options of every command that scores text (``measure``, ``compare``, ``probe``), checked before
    any file is read (``ValueError`` naming the option)."""
    if context is not None and context < 2:
        raise ValueError(f"--context must be an integer >= 2 (the prefix token plus one token), got {context}")
    if stride is not None and (stride < 1 or (context is not None and stride > context)):
        raise ValueError(f"--stride must be an integer in 1..context ({context if context is not None else 'context'}), "
                         f"got {stride}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {batch_size}")
    if seed < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {seed}")


def check_measure_options(context, stride, batch_size, seed, n_resamples) -> None:
    """:func:`check_scoring_options` and the bootstrap's ``--n-resamples`` of ``measure`` and ``compare``."""
    check_scoring_options(context, stride, batch_size, seed)
    if n_resamples < 1:
        raise ValueError(f"--n-resamples must be >= 1, got {n_resamples}")


def read_datasets(paths: dict[str, Path], text_field: str) -> dict[str, list]:
    """Every dataset's documents; errors name the ``--data`` option, warnings (skipped files) go to stderr."""
    from ..empirical.data import DatasetWarning, read_documents

    out = {}
    for name, path in paths.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DatasetWarning)
            try:
                out[name] = read_documents(path, text_field)
            except ValueError as exc:
                raise ValueError(f"--data {name}={path}: {exc}") from None
        for w in caught:
            if issubclass(w.category, DatasetWarning):
                typer.echo(f"warning: --data {name}: {w.message}", err=True)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def check_document_counts(counts: dict[str, int], needed: int, option: str, why: str) -> None:
    """``ValueError`` naming the first dataset with fewer than ``needed`` documents; ``why`` says what needs them."""
    for name, n in counts.items():
        if n < needed:
            raise ValueError(f"{option} {name}: {n} document{'s' if n != 1 else ''}; {why} needs at least {needed}")


def refuse_trained_documents(checkpoints: dict[str, str], documents: dict) -> None:
    """Before any scoring: a checkpoint written by ``finetune`` records its training examples; a dataset that
    holds one of them measures training data, not held-out text."""
    for label, path in checkpoints.items():
        found = finetune_training_texts(path)
        if found is not None:
            record, training = found
            refuse_shared_documents(training, documents, "--data", f"checkpoint {label!r}'s training examples ({record})")


def parse_tokenizers(items: list[str], labels: list[str]) -> dict[str, str | None]:
    """``--tokenizer`` items: ``PATH`` (every model) or ``NAME=PATH`` (the model labelled NAME: ``base`` or a
    checkpoint's name, which wins over PATH); label -> tokenizer folder or None. An existing path is a PATH
    even when it holds ``=``."""
    every: str | None = None
    own: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if sep and name in labels and path and not Path(item).exists():
            if name in own:
                raise ValueError(f"--tokenizer: the model {name!r} is given two tokenizers; give one")
            own[name] = path
        elif sep and name and "/" not in name and not Path(item).exists():
            raise ValueError(f"--tokenizer {item!r}: no model named {name!r} (models: {', '.join(labels)}); "
                             "give NAME=PATH for one model or PATH for every model")
        elif every is not None:
            raise ValueError(f"--tokenizer: {every!r} and {item!r} both name a tokenizer for every model; give one, "
                             "or NAME=PATH for one model")
        else:
            every = item
    return {label: own.get(label, every) for label in labels}


BOOTSTRAP_MEMORY_LIMIT = 4 * 2**30
"""Bytes the bootstrap may allocate: scipy resamples all at once, about 24 bytes per resample per document
(two float64 resampled arrays and the int64 indices)."""
_BOOTSTRAP_BYTES_PER_CELL = 24


def check_bootstrap_memory(n_resamples: int, documents: dict[str, list]) -> None:
    """Refuse an ``--n-resamples`` whose bootstrap would not fit in :data:`BOOTSTRAP_MEMORY_LIMIT` (before scoring)."""
    name, docs = max(documents.items(), key=lambda item: len(item[1]))
    need = _BOOTSTRAP_BYTES_PER_CELL * n_resamples * len(docs)
    if need > BOOTSTRAP_MEMORY_LIMIT:
        most = BOOTSTRAP_MEMORY_LIMIT // (_BOOTSTRAP_BYTES_PER_CELL * len(docs))
        raise ValueError(f"--n-resamples {n_resamples}: the bootstrap over the {len(docs)} documents of {name!r} would "
                         f"need about {need / 2**30:.3g} GiB; use at most {most} (2000 gives intervals to about 1%)")


def check_datasets(documents: dict[str, list], n_resamples: int, why: str, trained: dict[str, str] | None = None) -> None:
    """The checks of ``--data`` datasets that need no model: at least 2 documents each (``why`` names the statistic
    that needs them), a bootstrap of ``n_resamples`` that fits in memory, and, with ``trained`` (checkpoint name ->
    path), no document holding a recorded ``finetune`` run's training examples."""
    check_document_counts({d: len(docs) for d, docs in documents.items()}, 2, "--data", why)
    check_bootstrap_memory(n_resamples, documents)
    if trained:
        refuse_trained_documents(trained, documents)


def locate_models(models: dict[str, str], tokenizers: dict[str, str | None], options: dict[str, str]) -> None:
    """Find every model (label -> name) before any scoring (the first use of smollm2-135m converts it here,
    docs/measurement.md); a model not found is an error naming its option (``options[label]``, default
    ``--checkpoint LABEL``)."""
    from ..empirical.loading import locate_model

    for label, name in models.items():
        try:
            locate_model(name, tokenizers.get(label))
        except ValueError as exc:
            raise ValueError(f"{options.get(label, f'--checkpoint {label}')}: {exc}") from None
