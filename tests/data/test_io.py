"""Reading token JSONL files and writing JSON results (elastic_theory.data.io)."""

import json
import math
import os
import stat

import numpy as np
import pytest

from elastic_theory.data.io import (
    atomic_file, check_output_path, infer_vocab_size, read_token_jsonl, to_jsonable, write_json_atomic,
)


def test_read_round_trip_skips_blank_lines(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("[0, 1]\n\n[]\n[5]\n", encoding="utf-8")
    assert read_token_jsonl(f) == [[0, 1], [], [5]]
    assert read_token_jsonl(f, vocab_size=6) == [[0, 1], [], [5]]


@pytest.mark.parametrize(
    ("text", "vocab_size", "message"),
    [
        ("[0]\n[1]\n[1, 2\n", None, r"d.jsonl:3: not valid JSON"),  # line 3 is cut short
        ("[0]\n{\"a\": 1}\n", None, r"d.jsonl:2: expected a JSON list"),
        ("[0, true]\n", None, r"d.jsonl:1: expected a JSON list of integer"),
        ("[0, 1.5]\n", None, r"d.jsonl:1: expected a JSON list of integer"),
        ("[0]\n\n[-1]\n", None, r"d.jsonl:3: token -1 is outside"),
        ("[0, 4]\n", 4, r"d.jsonl:1: token 4 is outside the alphabet \(0..3\)"),
        ("[0]\n[9223372036854775808]\n", None, r"d.jsonl:2: token ids must be below 2\^63"),  # 2^63: no int64
        ("\n\n", None, "holds no sequences"),
        ("", None, "holds no sequences"),
    ],
)
def test_read_bad_files_name_the_line(tmp_path, text, vocab_size, message):
    f = tmp_path / "d.jsonl"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_token_jsonl(f, vocab_size)


def test_bytes_that_are_not_utf8_name_the_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(b"[0]\n[1, \xff]\n")  # 0xff never starts a UTF-8 sequence
    with pytest.raises(ValueError, match=r"d.jsonl:2: not valid UTF-8 \(byte 4: invalid start byte\)"):
        read_token_jsonl(f)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_token_jsonl(tmp_path / "absent.jsonl")


def test_infer_vocab_size():
    assert infer_vocab_size([[0]]) == 2  # at least binary
    assert infer_vocab_size([[5, 2], []], [[7]]) == 8  # max token + 1 over every dataset
    assert infer_vocab_size([[]]) == 2


def test_to_jsonable_plain_values():
    obj = {"a": np.int64(3), "b": np.float32(0.5), "c": np.arange(2), "d": (math.inf, -math.inf, math.nan), 1: np.bool_(True)}
    assert to_jsonable(obj) == {"a": 3, "b": 0.5, "c": [0, 1], "d": [None, None, None], "1": True,
                                "non_finite": {"/d/0": "inf", "/d/1": "-inf", "/d/2": "nan"}}
    json.dumps(to_jsonable(obj), allow_nan=False)  # strict JSON


def test_non_finite_numbers_are_null_with_a_reason_at_their_json_pointer():
    """One encoding everywhere: a number field holds a number or null (never the string "inf"), and the reason
    sits in the top-level "non_finite" map under the field's JSON Pointer (RFC 6901: "/" in a key is "~1")."""
    obj = {"R": math.inf, "nested": {"a/b": [1.0, -math.inf]}, "ok": 2.0}
    out = to_jsonable(obj)
    assert out["R"] is None and out["nested"]["a/b"] == [1.0, None] and out["ok"] == 2.0
    assert out["non_finite"] == {"/R": "inf", "/nested/a~1b/1": "-inf"}
    assert all(not isinstance(v, str) for v in (out["R"], *out["nested"]["a/b"]))
    assert "non_finite" not in to_jsonable({"x": 1.0})  # only present when needed
    with pytest.raises(ValueError, match="top-level JSON object"):
        to_jsonable([math.nan])
    with pytest.raises(ValueError, match="may not use the key"):
        to_jsonable({"non_finite": 1, "x": math.nan})


def test_output_to_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json_atomic(link, {"x": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_output_to_a_fifo_is_refused_and_left_alone(tmp_path):
    """A FIFO (like a device node) is not a regular file: the atomic rename would replace it, so it is refused."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path / "link"):
        if path.name == "link":
            path.symlink_to(fifo)
        with pytest.raises(ValueError, match="is not a regular file.*use '-' for standard output"):
            write_json_atomic(path, {"x": 1})
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "pipe"]  # no temporary file either


def test_dash_means_standard_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_json_atomic("-", {"x": math.nan})
    assert json.loads(capsys.readouterr().out) == {"x": None, "non_finite": {"/x": "nan"}}
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_output_path_messages_name_the_option_and_the_culprit(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match=r"^--json .*afile/x.json: .*afile is a file, not a folder"):
        check_output_path(tmp_path / "afile" / "x.json", "--json")
    with pytest.raises(ValueError, match=r"^--out .*: is a folder"):
        check_output_path(tmp_path, "--out")
    assert check_output_path(tmp_path / "new" / "deeper" / "x.json") == tmp_path / "new" / "deeper" / "x.json"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_write_json_atomic(tmp_path):
    out = tmp_path / "sub" / "r.json"
    write_json_atomic(out, {"x": np.float64(1.5)})
    assert json.loads(out.read_text()) == {"x": 1.5}
    with pytest.raises(TypeError):
        write_json_atomic(out, {"x": object()})  # not serializable: the old file must survive intact
    assert json.loads(out.read_text()) == {"x": 1.5}
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_atomic_file_replaces_only_a_finished_write(tmp_path):
    """An interrupted block (Ctrl-C) leaves the old file whole and no temporary file; a finished one replaces it.
    Writing straight to the target would leave the half-written bytes."""
    target = tmp_path / "sub" / "scores.npz"
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["scores.npz"]
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and tmp != target  # same folder: the rename cannot cross file systems
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == ["scores.npz"]


def test_folders_are_rejected_with_a_message(tmp_path):
    """A folder given as the JSONL input or the JSON output: ValueError naming it (not 'no such file', not an
    IsADirectoryError naming the temporary file)."""
    with pytest.raises(ValueError, match="is a folder; give the JSONL file itself"):
        read_token_jsonl(tmp_path)
    with pytest.raises(ValueError, match="is a folder; give a file path for the output"):
        write_json_atomic(tmp_path, {"x": 1})
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_write_json_atomic_file_mode_follows_the_umask(tmp_path):
    """The JSON file gets the mode open(path, 'w') would give (0666 minus the umask), not mkstemp's private 0600."""
    umask = os.umask(0o022)  # a fixed umask for the test, restored below
    try:
        out = tmp_path / "r.json"
        write_json_atomic(out, {"x": 1})
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
    finally:
        os.umask(umask)
