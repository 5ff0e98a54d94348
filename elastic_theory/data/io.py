"""Reading datasets and writing results: the only module of the core that touches files."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "NON_FINITE_KEY",
    "STDOUT",
    "atomic_file",
    "check_output_path",
    "decode_utf8",
    "file_lines",
    "iter_jsonl",
    "read_token_jsonl",
    "to_jsonable",
    "write_json_atomic",
    "write_text_atomic",
]

UTF8_BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte-order mark: dropped at the start of a file (it marks the encoding; it is not text)."""

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


def file_lines(path: str | os.PathLike) -> Iterator[tuple[str, bytes]]:
    """Yield ``("path:line", raw bytes)`` for every line of a file (split at ``\\n``, which is not included), a
    UTF-8 byte-order mark at the start of the file dropped: the one way the project reads a file line by line."""
    for lineno, raw in enumerate(Path(path).read_bytes().removeprefix(UTF8_BOM).split(b"\n"), start=1):
        yield f"{path}:{lineno}", raw


def iter_jsonl(path: str | os.PathLike, hint: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(where, record)`` for each non-blank line of a JSONL file, ``where`` being ``"path:line"``.

    Raises ``ValueError`` naming the line for bytes that are not UTF-8 or a line that is not JSON
    (``hint``, if given, is appended to that message to say what a line should hold). A UTF-8
    byte-order mark at the start of the file is dropped.
    """
    for where, raw in file_lines(path):
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


NON_FINITE_KEY = "non_finite"
"""Key of the map that :func:`to_jsonable` adds to a result holding infinite or NaN floats."""

STDOUT = "-"
"""The output path that means standard output (``--json -``)."""


def _json_pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _plain(obj: Any, pointer: str, non_finite: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v, f"{pointer}/{_json_pointer_token(str(k))}", non_finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{pointer}/{i}", non_finite) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist(), pointer, non_finite)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        non_finite[pointer] = "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        return None
    return obj


def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (numpy scalars and arrays, tuples converted), in the project's one
    encoding of non-finite numbers.

    **Non-finite numbers.** Strict JSON has no infinity or NaN. Every infinite or NaN float is written
    as ``null``, and the top-level object gains a ``"non_finite"`` map from the JSON Pointer
    (RFC 6901) of each such value to the reason: ``"inf"``, ``"-inf"`` or ``"nan"``. A field therefore
    always holds a number or ``null``; ``null`` with no ``non_finite`` entry means "not applicable"
    (for example no interval for one document). The map is present only when some value is
    non-finite. A non-finite value outside a top-level object is a ``ValueError`` (there is no
    place to say why it is missing).

    >>> to_jsonable({"R": float("inf"), "ci": [0.5, float("nan")], "n": np.int64(3)})
    {'R': None, 'ci': [0.5, None], 'n': 3, 'non_finite': {'/R': 'inf', '/ci/1': 'nan'}}
    """
    non_finite: dict[str, str] = {}
    out = _plain(obj, "", non_finite)
    if non_finite:
        if not isinstance(out, dict):
            raise ValueError(f"non-finite values at {sorted(non_finite)} need a top-level JSON object to be recorded")
        if NON_FINITE_KEY in out:
            raise ValueError(f"a result may not use the key {NON_FINITE_KEY!r}: it records non-finite values")
        out[NON_FINITE_KEY] = non_finite
    return out


def check_output_path(path: str | os.PathLike, option: str = "--json") -> Path:
    """The file that writing ``path`` will replace, checked before any expensive work; ``ValueError`` if unusable.

    Rules (the same for every output file of the project):

    * ``-`` means standard output and is returned as is;
    * a symbolic link is followed on purpose: the result replaces the file the link points to,
      and the link stays (the resolved path is returned);
    * an existing folder, or an existing file that is not a regular file (a device, a FIFO, a
      socket), is refused: results are written by atomic rename, which would replace it;
    * the nearest existing parent must be a folder we may write in (missing folders below it are
      created when writing).

    Messages name ``option`` and the path, and say what to change.
    """
    if str(path) == STDOUT:
        return Path(STDOUT)
    given = Path(path)
    target = given.resolve() if given.is_symlink() else given
    where = f"{option} {given}" + (f" (a link to {target})" if target != given else "")
    if target.is_dir():
        raise ValueError(f"{where}: is a folder; give a file path for the output")
    if target.exists() and not target.is_file():
        raise ValueError(
            f"{where}: is not a regular file (a device, FIFO or socket); results are written only to regular "
            f"files; use '{STDOUT}' for standard output"
        )
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link where a folder should be
            raise ValueError(f"{where}: {parent} is a broken link; give a folder that exists or can be created")
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{where}: {parent} is a file, not a folder; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{where}: no permission to write in the folder {parent}")
    return target


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` (through :func:`to_jsonable`) as indented JSON to ``path`` (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n", what="the JSON output")


def write_text_atomic(path: str | os.PathLike, text: str, what: str = "the output") -> None:
    """Write ``text`` (UTF-8) to ``path``.

    ``-`` writes to standard output. Any other path is checked by :func:`check_output_path`
    (``ValueError`` naming ``what`` for a folder, a special file, a parent that is a file) and written
    atomically: a temporary file in the same folder, then a rename over the target, so ``path`` holds
    either its old content or all of ``text``, never a part. A symbolic link keeps pointing to the new file.
    """
    target = check_output_path(path, option=what)
    if str(target) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_file(target) as tmp:
        # Not tempfile.mkstemp: its files are mode 0600, and the rename would keep that. Created like open(path, "w"),
        # so the umask decides.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "w", encoding="utf-8") as fh:
            fh.write(text)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` for the block to write; renamed over ``path`` when the block ends, removed
    if it raises (Ctrl-C included), so ``path`` holds its old content or the whole new file, never a part.

    The one mechanism behind every file the project writes atomically (result files, cached scores, model
    weights); missing parent folders are created. The process id in the name keeps concurrent writers apart.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
