"""Reading datasets and writing results: the only module of the core that touches files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_token_jsonl", "to_jsonable", "write_json_atomic"]

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
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                seq = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be a list of token ids") from None
            if not isinstance(seq, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in seq):
                raise ValueError(f"{path}:{lineno}: expected a JSON list of integer token ids, got {line.strip()[:60]!r}")
            if any(t >= _TOKEN_ID_LIMIT for t in seq):
                raise ValueError(f"{path}:{lineno}: token ids must be below 2^63 (int64), got {max(seq)}")
            bad = [t for t in seq if t < 0 or (vocab_size is not None and t >= vocab_size)]
            if bad:
                limit = f"0..{vocab_size - 1}" if vocab_size is not None else ">= 0"
                raise ValueError(f"{path}:{lineno}: token {bad[0]} is outside the alphabet ({limit})")
            out.append(seq)
    if not out:
        raise ValueError(f"{path}: the file holds no sequences")
    return out


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
    """Write ``obj`` as indented JSON to ``path`` atomically (temp file in the same folder, then rename).

    Raises ``ValueError`` when ``path`` is an existing folder (the rename would fail with an error
    that names the temporary file instead).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file path for the JSON output")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are mode 0600, and the rename would keep that. Created like open(path, "w"),
    # so the umask decides; the process id keeps concurrent writers of the same path apart.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(to_jsonable(obj), fh, indent=2, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
