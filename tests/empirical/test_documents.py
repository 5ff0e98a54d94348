"""Reading text datasets: formats, document names, UTF-8 and emptiness errors."""

from __future__ import annotations

import json
import os

import pytest

from elastic_theory.empirical import Document, check_documents, read_documents
from elastic_theory.empirical.data import DatasetWarning


def test_plain_text_is_one_document_per_non_blank_line(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes("first line\r\n\nsecond – with a dash\n".encode())
    assert read_documents(path) == [Document(f"{path}:1", "first line"), Document(f"{path}:3", "second – with a dash")]


def test_jsonl_reads_the_chosen_field(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(["a b", "c\nd"])) + "\n")
    assert [d.text for d in read_documents(path, text_field="body")] == ["a b", "c\nd"]
    with pytest.raises(ValueError, match=rf"{path}:1: expected a JSON object with a 'text' field"):
        read_documents(path)


def test_a_folder_is_one_document_per_file_and_says_what_it_skips(tmp_path):
    (tmp_path / "b.txt").write_text("bee\n")
    (tmp_path / "a.txt").write_text("ay")
    (tmp_path / ".hidden").write_text("skipped")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("not read")
    with pytest.warns(DatasetWarning, match=r"skipped 2 entries that are not documents \(\.hidden, sub/\)"):
        docs = read_documents(tmp_path)
    assert [(d.name.rsplit("/", 1)[-1], d.text) for d in docs] == [("a.txt", "ay"), ("b.txt", "bee\n")]


def test_a_json_file_is_parsed_as_an_array(tmp_path):
    """A .json array (of texts or of objects) is documents, never one plain-text document holding the JSON."""
    texts = tmp_path / "t.json"
    texts.write_text(json.dumps(["one", "two"]))
    assert [(d.name, d.text) for d in read_documents(texts)] == [(f"{texts}[0]", "one"), (f"{texts}[1]", "two")]
    objects = tmp_path / "o.json"
    objects.write_text(json.dumps([{"body": "x"}, {"body": "y"}]))
    assert [d.text for d in read_documents(objects, text_field="body")] == ["x", "y"]
    single = tmp_path / "s.json"
    single.write_text(json.dumps({"text": "one object"}))
    with pytest.raises(ValueError, match="holds a JSON dict; a .json dataset must be an array"):
        read_documents(single)
    with pytest.raises(ValueError, match=rf"{objects}\[0\]: expected a text or an object with a 'text' field"):
        read_documents(objects)
    lines = tmp_path / "l.json"
    lines.write_text('{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match="not valid JSON.*name the file .jsonl"):
        read_documents(lines)


def test_whitespace_only_documents_are_rejected(tmp_path):
    (tmp_path / "w.jsonl").write_text(json.dumps({"text": " \n\t"}) + "\n")
    with pytest.raises(ValueError, match=r"w.jsonl:1: the document is only whitespace"):
        read_documents(tmp_path / "w.jsonl")
    with pytest.raises(ValueError, match=r"only whitespace"):
        check_documents(["fine", "   "])


def test_a_byte_order_mark_is_not_text(tmp_path):
    """A UTF-8 BOM marks the encoding: it is dropped, so it neither enters the text nor the byte count."""
    for name, body in (("p.txt", "caf\u00e9\nb\n"), ("j.jsonl", json.dumps({"text": "caf\u00e9"}) + "\n"),
                       ("a.json", json.dumps(["caf\u00e9", {"text": "b"}]))):
        plain, marked = tmp_path / name, tmp_path / f"bom-{name}"
        plain.write_text(body, encoding="utf-8")
        marked.write_text(body, encoding="utf-8-sig")
        assert marked.read_bytes().startswith(b"\xef\xbb\xbf")
        assert [d.text for d in read_documents(marked)] == [d.text for d in read_documents(plain)]
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x.txt").write_text("abc", encoding="utf-8-sig")
    assert [d.text for d in read_documents(folder)] == ["abc"]


def test_a_special_file_is_not_a_missing_file(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="not a regular file or folder"):
        read_documents(tmp_path / "pipe")


def test_a_saved_datasets_dataset_reads_its_text_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["one", "two"], "label": [0, 1]}).save_to_disk(str(tmp_path / "ds"))
    docs = read_documents(tmp_path / "ds")
    assert [d.text for d in docs] == ["one", "two"] and docs[1].name.endswith("ds[1]")
    with pytest.raises(ValueError, match="no column 'body'"):
        read_documents(tmp_path / "ds", text_field="body")


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_invalid_utf8_names_the_file_and_line(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    good = json.dumps({"text": "ok"}).encode() if suffix == ".jsonl" else b"ok"
    path.write_bytes(good + b"\n" + b'{"text": "caf\xe9"}' + b"\n")  # 0xE9 alone: Latin-1, not UTF-8
    with pytest.raises(ValueError, match=rf"{path}:2: not valid UTF-8"):
        read_documents(path)


def test_invalid_utf8_in_a_folder_names_the_file(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match=r"x\.txt: not valid UTF-8"):
        read_documents(tmp_path)


def test_empty_datasets_and_documents_are_errors(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    with pytest.raises(ValueError, match="no documents"):
        read_documents(blank)
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text(json.dumps({"text": "x"}) + "\n" + json.dumps({"text": ""}) + "\n")
    with pytest.raises(ValueError, match=rf"{jsonl}:2: empty document"):
        read_documents(jsonl)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt: empty document"):
        read_documents(tmp_path / "dir")
    with pytest.raises(ValueError, match="no such file"):
        read_documents(tmp_path / "missing.txt")


def test_csv_reads_the_text_column_and_never_the_header(tmp_path):
    """A .csv was read as plain lines, its header scored as a document. Kills reading lines (3 documents, the first
    'text,label') and splitting on commas by hand (the quoted comma)."""
    from elastic_theory.empirical import read_documents

    path = tmp_path / "d.csv"
    path.write_text('text,label\n"one, with a comma",a\ntwo,b\n', encoding="utf-8")
    docs = read_documents(path)
    assert [d.text for d in docs] == ["one, with a comma", "two"] and docs[1].name == f"{path}:3"
    tsv = tmp_path / "d.tsv"
    tsv.write_text("body\tlabel\nthree\tc\n", encoding="utf-8")
    assert [d.text for d in read_documents(tsv, "body")] == ["three"]
    with pytest.raises(ValueError, match=r"d.csv: the header has no column 'body' \(columns: text, label\)"):
        read_documents(path, "body")
