"""Reading text datasets: JSONL with a text field, plain text files, folders of files, saved ``datasets``.

Documents are raw text. No chat template is applied and no special token is added: what is
scored is exactly the text read here, and its UTF-8 bytes are the bytes counted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..io import decode_utf8, iter_jsonl

__all__ = ["Document", "check_documents", "read_documents"]

_JSON_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class Document:
    """One document: ``name`` says where it came from (``file:line``, a file, or ``dataset[row]``)."""

    name: str
    text: str


def check_documents(documents: Sequence[Document | str], source: str = "dataset") -> list[Document]:
    """Return the documents as :class:`Document` (plain strings get names ``source[i]``).

    Raises ``ValueError`` for an empty collection, a non-string text, or an empty document.
    """
    out = [d if isinstance(d, Document) else Document(f"{source}[{i}]", d) for i, d in enumerate(documents)]
    if not out:
        raise ValueError(f"{source}: no documents; a rate needs at least one non-empty document")
    for d in out:
        if not isinstance(d.text, str):
            raise ValueError(f"{d.name}: the text must be a string, got {type(d.text).__name__}")
        if not d.text:
            raise ValueError(f"{d.name}: empty document; remove it (an empty text has no rate)")
    return out


def _read_lines(path: Path) -> list[Document]:
    """One document per non-blank line; the newline (and a CR before it) is not part of the document."""
    docs = []
    for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if raw.strip():
            docs.append(Document(f"{path}:{lineno}", decode_utf8(raw, f"{path}:{lineno}")))
    return docs


def _read_jsonl(path: Path, text_field: str) -> list[Document]:
    docs = []
    for where, record in iter_jsonl(path):
        if not isinstance(record, dict) or text_field not in record:
            raise ValueError(f"{where}: expected a JSON object with a {text_field!r} field (choose the field with --text-field)")
        docs.append(Document(where, record[text_field]))
    return docs


def _read_saved_dataset(path: Path, text_field: str) -> list[Document]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{path}: a dataset saved with save_to_disk needs the optional package datasets") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(f"{path}: holds several splits ({', '.join(ds)}); pass the folder of one split")
    if text_field not in ds.column_names:
        raise ValueError(f"{path}: no column {text_field!r} (columns: {', '.join(ds.column_names)}); use --text-field")
    return [Document(f"{path}[{i}]", t) for i, t in enumerate(ds[text_field])]


def read_documents(path: str | os.PathLike, text_field: str = "text") -> list[Document]:
    """Read the documents of one dataset.

    * a ``.jsonl``/``.ndjson`` file: one JSON object per line, the text in ``text_field``
      (blank lines are skipped);
    * any other file: plain text, one document per non-blank line (without its line ending);
    * a folder written by ``datasets.Dataset.save_to_disk`` (has ``state.json``): the
      ``text_field`` column (needs the optional ``datasets`` package);
    * any other folder: one document per regular file (whole file, names sorted, hidden files skipped).

    Raises ``ValueError`` naming the file and line (or row) for text that is not valid UTF-8, a
    bad JSON line, an empty document, or a dataset with no documents.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
            docs = _read_saved_dataset(path, text_field)
        else:
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            docs = [Document(str(p), decode_utf8(p.read_bytes(), str(p))) for p in files]
    elif path.is_file():
        docs = _read_jsonl(path, text_field) if path.suffix in _JSON_SUFFIXES else _read_lines(path)
    else:
        raise ValueError(f"{path}: no such file or folder")
    return check_documents(docs, source=str(path))
