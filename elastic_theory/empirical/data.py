"""Reading text datasets: JSONL with a text field, plain text files, folders of files, saved ``datasets``.

Documents are raw text. No chat template is applied and no special token is added: what is
scored is exactly the text read here, and its UTF-8 bytes are the bytes counted.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.io import UTF8_BOM, decode_utf8, file_lines, iter_jsonl

__all__ = ["DatasetWarning", "Document", "check_documents", "read_documents"]

_JSONL_SUFFIXES = (".jsonl", ".ndjson")


class DatasetWarning(UserWarning):
    """Something in a dataset folder was not read (a subfolder, a hidden file): the CLI prints it as a warning."""


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
        if not d.text.strip():
            raise ValueError(f"{d.name}: the document is only whitespace; remove it (it is not text to measure)")
    return out


def _text_of_file(path: Path) -> str:
    """A whole file as UTF-8 text; a leading byte-order mark is dropped (it marks the encoding, it is not text)."""
    return decode_utf8(path.read_bytes().removeprefix(UTF8_BOM), str(path))


def _read_lines(path: Path) -> list[Document]:
    """One document per non-blank line; the newline (and a CR before it) is not part of the document."""
    docs = []
    for where, raw in file_lines(path):
        raw = raw.removesuffix(b"\r")
        if raw.strip():
            docs.append(Document(where, decode_utf8(raw, where)))
    return docs


def _read_csv(path: Path, text_field: str) -> list[Document]:
    """One document per row of a ``.csv`` (``.tsv``: tab-separated) file with a header: the ``text_field`` column."""
    import csv
    import io

    rows = csv.DictReader(io.StringIO(_text_of_file(path), newline=""), delimiter="\t" if path.suffix == ".tsv" else ",")
    if rows.fieldnames is None or text_field not in rows.fieldnames:
        columns = ", ".join(rows.fieldnames or []) or "none"
        raise ValueError(f"{path}: the header has no column {text_field!r} (columns: {columns}); name the text column "
                         "with --text-field")
    return [Document(f"{path}:{rows.line_num}", row[text_field] or "") for row in rows]


def _read_jsonl(path: Path, text_field: str) -> list[Document]:
    docs = []
    for where, record in iter_jsonl(path):
        if not isinstance(record, dict) or text_field not in record:
            raise ValueError(f"{where}: expected a JSON object with a {text_field!r} field (choose the field with --text-field)")
        docs.append(Document(where, record[text_field]))
    return docs


def _read_json(path: Path, text_field: str) -> list[Document]:
    """A ``.json`` file holding one array: of texts, or of objects with ``text_field``."""
    try:
        data = json.loads(_text_of_file(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); a .json dataset is one array of texts "
                         "or of objects (for one object per line, name the file .jsonl)") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: holds a JSON {type(data).__name__}; a .json dataset must be an array of texts "
                         f"or of objects with a {text_field!r} field (one object per line: name the file .jsonl)")
    docs = []
    for i, item in enumerate(data):
        where = f"{path}[{i}]"
        if isinstance(item, str):
            docs.append(Document(where, item))
        elif isinstance(item, dict) and text_field in item:
            docs.append(Document(where, item[text_field]))
        else:
            raise ValueError(f"{where}: expected a text or an object with a {text_field!r} field "
                             "(choose the field with --text-field)")
    return docs


def _read_folder(path: Path) -> list[Document]:
    """One document per regular file of the folder (names sorted); a warning lists what is skipped."""
    entries = sorted(path.iterdir())
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")]
    skipped = [p.name + ("/" if p.is_dir() else "") for p in entries if p not in files]
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.warn(f"{path}: skipped {len(skipped)} entries that are not documents ({shown}); only the "
                      "folder's own visible regular files are read, not subfolders", DatasetWarning, stacklevel=3)
    return [Document(str(p), _text_of_file(p)) for p in files]


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
    * a ``.json`` file: one JSON array, of texts or of objects with ``text_field``;
    * a ``.csv`` (``.tsv``) file with a header row: one document per row, the ``text_field`` column (the
      header is never a document; a missing column is an error listing the columns);
    * any other file: plain text, one document per non-blank line (without its line ending);
    * a folder written by ``datasets.Dataset.save_to_disk`` (has ``state.json``): the
      ``text_field`` column (needs the optional ``datasets`` package);
    * any other folder: one document per regular file (whole file, names sorted); subfolders and
      hidden files are not read, and a :class:`DatasetWarning` lists them.

    A UTF-8 byte-order mark at the start of a file is dropped (it marks the encoding; it is not
    text and its 3 bytes are not counted). Raises ``ValueError`` naming the file and line (or row)
    for text that is not valid UTF-8, a bad JSON line, a ``.json`` file that is not an array, an
    empty or whitespace-only document, a path that is not a regular file or folder, or a dataset
    with no documents.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
            docs = _read_saved_dataset(path, text_field)
        else:
            docs = _read_folder(path)
    elif path.is_file():
        if path.suffix in _JSONL_SUFFIXES:
            docs = _read_jsonl(path, text_field)
        elif path.suffix == ".json":
            docs = _read_json(path, text_field)
        elif path.suffix in (".csv", ".tsv"):
            docs = _read_csv(path, text_field)
        else:
            docs = _read_lines(path)
    elif path.exists():
        raise ValueError(f"{path}: not a regular file or folder (a device, FIFO or socket); give a dataset file or folder")
    else:
        raise ValueError(f"{path}: no such file or folder")
    return check_documents(docs, source=str(path))
