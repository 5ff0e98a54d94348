"""HTML pages of saved runs (elastic_theory.experiments._report): markdown tables as HTML tables, every plot embedded
byte for byte, every text escaped, nothing that needs another file or the network."""

from __future__ import annotations

import base64
import json
import re
import shlex
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from elastic_theory.experiments._report import (
    PNG_SIGNATURE, load_run, markdown_to_html, recorded_verdicts, render_report,
)

INJECTION = "</td></tr></table><script>alert('x')</script><img src=http://evil.example/x.png>"


class Page(HTMLParser):
    """What a test reads from a page: tags, image sources, table rows (cell texts), all text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def images(self) -> list[dict]:
        return [attrs for tag, attrs in self.tags if tag == "img"]


def embedded_png(src: str) -> bytes:
    """The PNG bytes of a ``data:image/png;base64,`` source (fails on anything else: a path, an address)."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:80]
    raw = base64.b64decode(src[len(prefix):], validate=True)
    assert raw.startswith(PNG_SIGNATURE)
    return raw


def markdown_rows(markdown: str) -> list[list[str]]:
    """The rows of every pipe table in ``markdown`` (header rows included, separator rows not), cells stripped."""
    rows = []
    for line in markdown.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line):
            continue
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def assert_self_contained(page: Page) -> None:
    """No element that loads another file or address: no script, no external style sheet, no frame, and no
    attribute value that is an address (every image is a data URI)."""
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed"), (tag, attrs)
        for name, value in attrs.items():
            assert "://" not in (value or "") and not (value or "").startswith("//"), (tag, name, value)
            if name in ("src", "href"):
                assert tag == "img" and value.startswith("data:image/png;base64,"), (tag, name, value[:40])


def tiny_png(width: int, height: int, shade: int) -> bytes:
    """A valid greyscale PNG (signature, IHDR, one IDAT, IEND with their CRCs), ``shade`` in every pixel."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


SUMMARY = f"""stand-in: dataset {INJECTION}; *two* tables

| k | R measured | note |
|---|---|---|
| 4 | 7.16 | a \\| b |
| 16 | 27.4 | {INJECTION} |

second table

| pair | verdict |
|---|---|
| 1-2 | inverse lower |
"""


def stand_in(summary: str = SUMMARY):
    """A registry entry with a fixed question, prediction and summary (the page is tested apart from any experiment)."""
    return SimpleNamespace(question=f"Does it rebound? {INJECTION}", prediction="THEORY §2.2: R = (w3 k + l)/(w3 - (1-w3) l) < k",
                           summarize=lambda results: summary)


def make_run(folder: Path, experiment: str = "stand-in", plots: int = 2, results: dict | None = None) -> Path:
    """A finished run directory written by hand: config.json, provenance.json, results.json and ``plots`` PNGs."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"experiment": experiment, "config": {"data": INJECTION, "seeds": [0, 1]}}))
    (folder / "provenance.json").write_text(json.dumps({
        "git_commit": "0123abc+dirty", "command": ["elastic-theory", "experiment", "x", "--set", f"name={INJECTION}"],
        "versions": {"numpy": "2.0"}, "resumed": [{"started": "later"}]}))
    (folder / "results.json").write_text(json.dumps(results or {
        "summary": [{"k": 4, "verdict": "agrees"}, {"k": 16, "verdict": f"disagrees {INJECTION}"}], "threads": 1}))
    for i in range(plots):
        (folder / f"plot{i}.png").write_bytes(tiny_png(2 + i, 3, 40 * i))
    return folder


def test_markdown_tables_become_html_tables_row_by_row():
    """Both tables, every row with its cells (an escaped pipe stays one cell); the separator row is no row.
    Kills: a converter that renders only the first table, keeps the '|---|' line as a row, or splits on '\\|'."""
    page = Page(markdown_to_html(SUMMARY))
    assert page.rows == markdown_rows(SUMMARY)
    assert ["4", "7.16", "a | b"] in page.rows and len(page.rows) == 5
    assert ("em", {}) in page.tags  # *two*: markdown's inline syntax is converted, not printed


def test_text_from_a_run_is_escaped_not_obeyed():
    """A table cell and a paragraph holding '</td>...<script>...<img src=http...>' print as written and add no element.
    Kills: passing raw HTML through (markdown-it's commonmark preset does), or building rows by string joins."""
    html = markdown_to_html(SUMMARY + "\n[click](javascript:alert(1))\n")
    page = Page(html)
    assert_self_contained(page)
    assert not [t for t, _ in page.tags if t in ("script", "img", "a")]
    assert page.all_text.count(INJECTION) == 2 and ["16", "27.4", INJECTION] in page.rows


def test_images_are_embedded_from_below_their_folder_only(tmp_path):
    (tmp_path / "sub").mkdir()
    png = tiny_png(3, 2, 7)
    (tmp_path / "sub" / "p 1.png").write_bytes(png)
    page = Page(markdown_to_html("![a plot](sub/p%201.png)", images_from=tmp_path))
    assert [embedded_png(img["src"]) for img in page.images()] == [png] and page.images()[0]["alt"] == "a plot"
    (tmp_path / "sub" / "fake.png").write_text("not a png")
    (tmp_path.parent / "outside.png").write_bytes(png)
    for markdown, message in (("![x](sub/p%201.png)", "no folder to read it from"),
                              ("![x](../outside.png)", "is not a file below"),
                              ("![x](http://example.org/x.png)", "is not a file below"),
                              ("![x](sub/missing.png)", "is not a file below"),
                              ("![x](sub/fake.png)", "is not a PNG file")):
        with pytest.raises(ValueError, match=message):
            markdown_to_html(markdown, images_from=None if "no folder" in message else tmp_path)


def test_recorded_verdicts_finds_each_one_where_it_is():
    results = {"rows": [{"losses": {"mean": {"verdict": "inconclusive", "controlled_verdict": "inverse lower"}}}],
               "verdicts": {"mean": {"raw": ["a", "b"]}}, "notes": "verdict of nothing", "n": 3}
    assert recorded_verdicts(results) == [
        ("rows/0/losses/mean/verdict", "inconclusive"), ("rows/0/losses/mean/controlled_verdict", "inverse lower"),
        ("verdicts/mean/raw/0", "a"), ("verdicts/mean/raw/1", "b")]
    assert recorded_verdicts({"summary": [{"k": 4}]}) == []


def test_a_run_page_shows_question_prediction_tables_plots_verdicts_and_provenance(tmp_path):
    """Every image is its run's PNG byte for byte (each under its own name), every summary row is a table row, the
    verdicts and the provenance are there, and nothing in the page loads anything else.
    Kills: linking the PNGs by path, embedding one plot twice, dropping a table, leaving the verdicts or the command
    line out, and unescaped run text (the config, provenance and results all hold INJECTION)."""
    run = make_run(tmp_path / "run")
    page = Page(render_report([load_run(run)], lookup=lambda name: stand_in()))
    assert_self_contained(page)
    assert {img["alt"]: embedded_png(img["src"]) for img in page.images()} == {
        p.name: p.read_bytes() for p in run.glob("*.png")} and len(page.images()) == 2
    for row in markdown_rows(SUMMARY):
        assert row in page.rows
    assert ["summary/0/verdict", "agrees"] in page.rows and ["summary/1/verdict", f"disagrees {INJECTION}"] in page.rows
    text = page.all_text
    assert stand_in().question in text and "R = (w3 k + l)/(w3 - (1-w3) l) < k" in text
    assert ["git_commit", "0123abc+dirty"] in page.rows
    command = json.loads((run / "provenance.json").read_text())["command"]
    assert ["command", shlex.join(command)] in page.rows and f"name={INJECTION}" in shlex.split(shlex.join(command))
    assert json.dumps(INJECTION) in text and '"started": "later"' in text  # the config, the resumption


def test_several_runs_sit_side_by_side_each_with_its_own_plots(tmp_path):
    one, two = make_run(tmp_path / "one", plots=1), make_run(tmp_path / "two", plots=2)
    (two / "plot0.png").write_bytes(tiny_png(9, 9, 200))  # same name as run one's plot, other content
    html = render_report([load_run(one), load_run(two)], lookup=lambda name: stand_in())
    page = Page(html)
    sections = [attrs for tag, attrs in page.tags if tag == "section"]
    assert len(sections) == 2 and "repeat(2, minmax(0, 1fr))" in html
    assert [embedded_png(img["src"]) for img in page.images()] == [
        (one / "plot0.png").read_bytes(), (two / "plot0.png").read_bytes(), (two / "plot1.png").read_bytes()]


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no such run directory"),
    (lambda d: d.write_text("x"), "is a file, not run directory"),
    (lambda d: d.mkdir(), "holds no config.json: not a run directory"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{")), "is not valid JSON"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"config": {}}')), "is not a run's config.json"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"experiment": "x", "config": {}}')), "has no results.json"),
])
def test_a_folder_that_is_not_a_finished_run_is_refused(tmp_path, setup, message):
    setup(tmp_path / "d")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_run(tmp_path / "d")


def test_results_the_summary_cannot_read_are_refused_with_the_file(tmp_path):
    run = make_run(tmp_path / "run")
    broken = SimpleNamespace(question="q", prediction="p", summarize=lambda results: results["rows"])
    with pytest.raises(ValueError, match=r"results.json does not hold a stand-in result .*KeyError"):
        render_report([load_run(run)], lookup=lambda name: broken)
