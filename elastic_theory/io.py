"""Reading datasets and writing results: the only module of the core that touches files."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["decode_utf8", "iter_jsonl", "read_token_jsonl", "to_jsonable", "write_json_atomic", "write_text_atomic"]

_TOKEN_ID_LIMIT = 2**63  # token trees store ids as int64


def read_token_jsonl(path: str | os.PathLike, vocab_size: int | None = None) -> list[list[int]]:
    """Read a file with one JSON list of token ids per line (blank lines are skipped).

    Raises ``ValueError`` naming the file and line number for a line that is not a JSON list of
    non-negative integers below 2^63, a token >= ``vocab_size``, or a file with no sequences.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the JSONL file itself")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    out: list[list[int]] = []
    for where, seq in iter_jsonl(path, hint="each line must be a list of token ids"):
        if not isinstance(seq, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seq):
            raise ValueError(f"{where}: expected a JSON list of integer token ids, got {json.dumps(seq)[:60]!r}")
        if any(t >= _TOKEN_ID_LIMIT for t in seq):
            raise ValueError(f"{where}: token ids must be below 2^63 (int64), got {max(seq)}")
        bad = [t for t in seq if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            limit = f"0..{vocab_size - 1}" if vocab_size is not None else ">= 0"
            raise ValueError(f"{where}: token {bad[0]} is outside the alphabet ({limit})")
        out.append(seq)
    if not out:
        raise ValueError(f"{path}: the file holds no sequences")
    return out


def decode_utf8(raw: bytes, where: str) -> str:
    """``raw`` decoded as UTF-8, or a ``ValueError`` that names ``where`` (e.g. ``file:line``) and the bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not valid UTF-8 (byte {exc.start}: {exc.reason}); re-encode the file as UTF-8") from None


def iter_jsonl(path: str | os.PathLike, hint: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(where, record)`` for each non-blank line of a JSONL file, ``where`` being ``"path:line"``.

    Raises ``ValueError`` naming the line for bytes that are not UTF-8 or a line that is not JSON
    (``hint``, if given, is appended to that message to say what a line should hold).
    """
    for lineno, raw in enumerate(Path(path).read_bytes().split(b"\n"), start=1):
        where = f"{path}:{lineno}"
        line = decode_utf8(raw, where)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})" + (f"; {hint}" if hint else "")) from None
        yield where, record


def infer_vocab_size(*datasets: list[list[int]]) -> int:
    """The smallest alphabet that holds every token of the datasets (at least 2)."""
    top = max((max(s) for d in datasets for s in d if s), default=0)
    return max(2, top + 1)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats into plain JSON values.

    Infinite and NaN floats become the strings ``"inf"``, ``"-inf"`` and ``"nan"`` so the output
    is strict JSON that every parser reads.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`write_text_atomic`).

    Raises ``ValueError`` when ``path`` is an existing folder.
    """
    write_text_atomic(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n", what="the JSON output")


def write_text_atomic(path: str | os.PathLike, text: str, what: str = "the output") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file in the same folder, then a rename,
    so that ``path`` holds either its old content or all of ``text``, never a part.

    Raises ``ValueError`` when ``path`` is an existing folder (the rename would fail with an error
    that names the temporary file instead).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file path for {what}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are mode 0600, and the rename would keep that. Created like open(path, "w"),
    # so the umask decides; the process id keeps concurrent writers of the same path apart.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
