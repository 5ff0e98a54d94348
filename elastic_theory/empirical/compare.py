"""Scoring several models on the same datasets, once each, with a cache of per-document scores.

A score is reused when the same model files were scored on the same texts with the same
settings: the cache key is a SHA-256 over the model's files (weights, config and tokenizer: a
retrained checkpoint saved to the same folder gets a new key), the documents' texts, the
scoring settings, on the CPU the number of torch threads (it changes the order of floating-point
sums, so the last bits of a score) and the torch and transformers versions. Entries are small ``.npz`` files (per
document: bits, tokens, bytes) written atomically, so an interrupted run keeps every dataset it
finished and the next run continues from there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..stats.comparison import DatasetScores
from ..data.io import atomic_file
from .data import Document
from .loading import BUILTIN_MODELS, base_of_adapter, default_cache_dir, resolve_device
from .scoring import tokenization_digest
from .sharding import broadcast_from_main, score_dataset_sharded

__all__ = [
    "SCORES_FORMAT",
    "ScoreCache",
    "ScoringSettings",
    "documents_digest",
    "model_fingerprint",
    "score_dataset",
    "tokenization_digest",
]

SCORES_FORMAT = 1
"""Version of the scoring conventions and of the cache entries; raising it invalidates old entries."""


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _model_files(name_or_path: str) -> list[Path]:
    """The files a load of ``name_or_path`` reads: a .gguf file, or the regular files at a model folder's top level
    (for a PEFT adapter folder, also those of the base model it names)."""
    if name_or_path in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[name_or_path]
        gguf = builtin.source()
        if gguf is None:
            raise ValueError(f"{name_or_path!r} needs the optional package {builtin.package} ({builtin.install})")
        return [gguf]
    path = Path(name_or_path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(name_or_path, "config.json")
        except ValueError:
            cached = None
        if not isinstance(cached, str):
            raise ValueError(f"model {name_or_path!r}: no such file or folder, and not in the local Hugging Face cache")
        path = Path(cached).parent
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():  # a PEFT adapter: its base model's files count too
        base = base_of_adapter(path)
        files += _model_files(str(base))
    return files


def model_fingerprint(name_or_path: str | os.PathLike, digests: dict[Path, str] | None = None) -> str:
    """SHA-256 over the names and contents of the files a model loads from (weights, config, tokenizer).

    Reads every byte (about 1 s per 500 MB); raises ``ValueError`` for a model that is not there.
    ``digests`` (resolved file path -> SHA-256), shared by the calls of one comparison, reads each file
    once: a base model under several adapters, or one model named twice, is hashed once.
    """
    digests = {} if digests is None else digests
    h = hashlib.sha256()
    for f in _model_files(str(name_or_path)):
        key = f.resolve()
        if key not in digests:
            digests[key] = _file_sha256(f)
        h.update(f"{f.name}\0{digests[key]}\0".encode())
    return h.hexdigest()


def documents_digest(documents: Sequence[Document]) -> str:
    """SHA-256 of the documents' texts, in order (names do not count: a moved file keeps its scores)."""
    h = hashlib.sha256()
    for d in documents:
        raw = d.text.encode("utf-8")
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return h.hexdigest()


@dataclass(frozen=True)
class ScoringSettings:
    """What a score depends on besides the model and the texts (None: the library's default)."""

    context: int | None = None
    stride: int | None = None
    batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None

    def key(self) -> dict:
        """The settings as they enter the cache key (the device by type; a default batch by its value).

        On the CPU the key also holds torch's thread count at the time of the call
        (``torch.get_num_threads()``, the count the scoring that follows runs with): scores made with
        another count can differ in their last bits, so they are not reused for this one.
        """
        import torch
        import transformers

        from .scoring import default_batch_size

        dev = resolve_device(self.device)
        return {
            "context": self.context, "stride": self.stride, "device": dev.type, "dtype": self.dtype,
            "batch_size": self.batch_size or default_batch_size(dev),
            "threads": torch.get_num_threads() if dev.type == "cpu" else None,
            "torch": torch.__version__, "transformers": transformers.__version__, "format": SCORES_FORMAT,
        }


def score_dataset(model, tokenizer, documents: Sequence[Document], settings: ScoringSettings,
                  progress: bool = False) -> DatasetScores | None:
    """Score every document (:func:`~elastic_theory.empirical.score_documents`) into :class:`DatasetScores`.

    Under several processes each rank scores its shard and rank 0 gets the whole dataset's scores, the other ranks
    ``None`` (:func:`~elastic_theory.empirical.sharding.score_dataset_sharded`); one process scores everything.
    """
    return score_dataset_sharded(model, tokenizer, documents, context=settings.context, stride=settings.stride,
                                 batch_size=settings.batch_size, progress=progress)


class ScoreCache:
    """Per-document scores on disk, one ``.npz`` file per (model files, texts, settings) key.

    ``root=None`` disables the cache (every lookup misses, nothing is written).
    """

    def __init__(self, root: str | os.PathLike | None):
        self.root = None if root is None else Path(root) / "scores"

    @staticmethod
    def key(model_hash: str, data_hash: str, settings: ScoringSettings) -> str:
        blob = json.dumps({"model": model_hash, "data": data_hash, "settings": settings.key()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / f"{key}.npz"

    def get(self, key: str) -> DatasetScores | None:
        if self.root is None or not self._path(key).is_file():
            return None
        try:
            with np.load(self._path(key), allow_pickle=False) as z:
                return DatasetScores(z["bits"], z["n_tokens"], z["n_bytes"], str(z["tokenization"]))
        except (OSError, ValueError, KeyError):  # a damaged entry is scored again and overwritten
            return None

    def put(self, key: str, scores: DatasetScores) -> None:
        if self.root is None:
            return
        with atomic_file(self._path(key)) as tmp, tmp.open("wb") as fh:  # a file object: savez adds no ".npz"
            np.savez(fh, bits=scores.bits, n_tokens=scores.n_tokens, n_bytes=scores.n_bytes,
                     tokenization=np.array(scores.tokenization))


def score_models(
    models: Mapping[str, str],
    datasets: Mapping[str, Sequence[Document]],
    settings: ScoringSettings,
    cache: ScoreCache,
    *,
    load: Callable,
    progress: bool = False,
    on_scored: Callable[[str, str, bool], None] | None = None,
    tokenizers: Mapping[str, str | None] | None = None,
) -> dict[str, dict[str, DatasetScores]]:
    """Scores of every model (label -> name or path) on every dataset, each scored at most once.

    Models whose every dataset is in ``cache`` are not loaded at all; the others are loaded with
    ``load(name_or_path)`` -> ``(model, tokenizer)`` (``load(name_or_path, tokenizer)`` for a label that
    ``tokenizers`` gives a tokenizer folder), one at a time, and released before the next.
    Each new score is stored at once. ``on_scored(label, dataset, from_cache)`` is called after each.
    Models with the same files (a label given twice) are loaded and scored once; a given tokenizer's
    files count in the fingerprint, so another tokenizer is another score. Under several processes every rank
    calls it: rank 0's cache decides what is scored, the ranks score each dataset together (each its shard) and
    rank 0 alone caches and returns the scores (the other ranks' values are None).
    """
    data_hashes = {d: documents_digest(docs) for d, docs in datasets.items()}
    digests: dict[Path, str] = {}
    tokenizers = dict(tokenizers or {})
    fingerprints = {}
    for label, path in models.items():
        fingerprints[label] = model_fingerprint(path, digests)
        if tokenizers.get(label) is not None:
            tok = model_fingerprint(tokenizers[label], digests)
            fingerprints[label] = hashlib.sha256(f"{fingerprints[label]}\0tokenizer\0{tok}".encode()).hexdigest()
    out: dict[str, dict[str, DatasetScores]] = {}
    for label, path in models.items():
        keys = {d: cache.key(fingerprints[label], data_hashes[d], settings) for d in datasets}
        same = next((other for other in out if fingerprints[other] == fingerprints[label]), None)
        found = dict(out[same]) if same is not None else {}
        found.update({d: hit for d, k in keys.items() if d not in found and (hit := cache.get(k)) is not None})
        found = {d: found.get(d) for d in broadcast_from_main(list(found))}  # rank 0's cache decides for every rank
        for d in found:
            if on_scored:
                on_scored(label, d, True)
        todo = [d for d in datasets if d not in found]
        if todo:
            model, tokenizer = load(path) if tokenizers.get(label) is None else load(path, tokenizers[label])
            for d in todo:
                found[d] = score_dataset(model, tokenizer, datasets[d], settings, progress=progress)
                if found[d] is not None:  # rank 0 (or the one process) holds the dataset's scores and caches them
                    cache.put(keys[d], found[d])
                if on_scored:
                    on_scored(label, d, False)
            del model, tokenizer
        out[label] = {d: found[d] for d in datasets}
    return out
