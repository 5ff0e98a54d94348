"""Self-contained HTML pages of saved runs: ``elastic-theory report`` and the demo's ``report.html``.

A page is built from what a run directory holds (:mod:`elastic_theory.infra.rundir`): config.json, provenance.json,
results.json and the PNGs the experiment drew; nothing is recomputed or redrawn. Per run it shows the experiment's
question and prediction (with its formula), the tables of ``summarize(results)`` (markdown converted by
markdown-it-py, CommonMark with GitHub's tables, raw HTML off), every plot, every verdict results.json records,
the configuration and the provenance. Several runs sit side by side, one column each.

Self-contained: every image is a ``data:image/png;base64,...`` URI, the style sheet is inline, and the page names
no other file or address, so it opens offline and can be sent alone. Every text taken from a run (a dataset or model
name, a command line, a table cell) is escaped: ``<script>`` in a name prints as written and adds no element.
No torch import.
"""

from __future__ import annotations

import base64
import html
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first eight bytes of every PNG file (the PNG specification, section 5.2)."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; line-height: 1.4; }
.runs { display: grid; gap: 2em; }
.run { min-width: 0; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
.scroll { overflow-x: auto; }
img { max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
.prediction { font-family: ui-monospace, monospace; background: #f6f6f6; padding: 0.4em; }
"""


@dataclass(frozen=True)
class SavedRun:
    """What a report shows of one run directory, read from its files (:func:`load_run`)."""

    path: Path
    experiment: str
    config: dict
    results: dict
    provenance: dict | None
    plots: tuple[Path, ...]


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path} is not valid JSON: {what} cannot be read") from None


def load_run(path: str | Path) -> SavedRun:
    """The saved run in ``path``; ``ValueError`` saying what is missing when it is not a finished run directory.

    Reads only: config.json (``{"experiment": NAME, "config": {...}}``, required), results.json (required: a run
    that did not finish has nothing to report), provenance.json (optional) and the PNGs at the top of the folder.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: {'is a file, not' if path.exists() else 'no such'} run directory")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} holds no config.json: not a run directory")
    saved = _read_json(path / "config.json", "the run's identity")
    if not (isinstance(saved, dict) and isinstance(saved.get("experiment"), str) and isinstance(saved.get("config"), dict)):
        raise ValueError(f"{path / 'config.json'} is not a run's config.json (no experiment name and config)")
    if not (path / "results.json").is_file():
        raise ValueError(f"{path} has no results.json (the run did not finish): rerun its experiment to resume it")
    results = _read_json(path / "results.json", "the run's results")
    if not isinstance(results, dict):
        raise ValueError(f"{path / 'results.json'} is not a run's results (a JSON object)")
    prov_file = path / "provenance.json"
    prov = _read_json(prov_file, "the run's provenance") if prov_file.is_file() else None
    plots = tuple(sorted(p for p in path.glob("*.png") if p.is_file()))
    return SavedRun(path, saved["experiment"], saved["config"], results, prov if isinstance(prov, dict) else None, plots)


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of the PNG file ``path``; ``ValueError`` if it is not a PNG."""
    raw = Path(path).read_bytes()
    if not raw.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file: a report embeds PNG plots only")
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def markdown_to_html(text: str, images_from: Path | None = None) -> str:
    """HTML of markdown ``text``: CommonMark with GitHub's tables (markdown-it-py's ``js-default`` preset).

    Raw HTML in the text is escaped, not passed through, and links to ``javascript:`` and the like are not made
    (markdown-it's own link check). An image ``![alt](rel/path.png)`` is embedded as a data URI of the PNG at that
    path below ``images_from``; an image elsewhere (another folder, an address), or any image without
    ``images_from``, raises ``ValueError``: the page would not be self-contained.
    """
    from markdown_it import MarkdownIt

    md = MarkdownIt("js-default")
    default_image = md.renderer.rules["image"]

    def embedded_image(self, tokens, idx, options, env) -> str:
        token = tokens[idx]
        src = unquote(str(token.attrGet("src") or ""))
        if images_from is None:
            raise ValueError(f"the image {src!r} cannot be embedded: no folder to read it from")
        base = Path(images_from).resolve()
        file = (base / src).resolve()
        if "://" in src or not file.is_relative_to(base) or not file.is_file():
            raise ValueError(f"the image {src!r} is not a file below {images_from}: it cannot be embedded")
        token.attrSet("src", png_data_uri(file))
        return default_image(tokens, idx, options, env)

    md.add_render_rule("image", embedded_image)
    return md.render(text)


def recorded_verdicts(results: Any, where: str = "") -> list[tuple[str, str]]:
    """Every verdict results.json records: ``(where, verdict)`` for each text value below a key whose name holds
    ``verdict`` (``summary/0/verdict``, ``verdicts/train_loss_mean/raw/0``), in the file's order."""
    found: list[tuple[str, str]] = []
    items = results.items() if isinstance(results, dict) else enumerate(results) if isinstance(results, list) else ()
    for key, value in items:
        at = f"{where}/{key}" if where else str(key)
        if "verdict" in str(key).lower():
            found += [(at + sub, text) for sub, text in _texts(value)]
        else:
            found += recorded_verdicts(value, at)
    return found


def _texts(value: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [found for key, sub in items for found in _texts(sub, f"{where}/{key}")]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    cells = "".join(f"<tr><td>{_e(a)}</td><td>{_e(b)}</td></tr>" for a, b in rows)
    return f'<div class="scroll"><table><thead><tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr></thead>' \
           f"<tbody>{cells}</tbody></table></div>"


_PROVENANCE_KEYS = ("git_commit", "started", "command", "device", "gpu", "threads", "torch_threads", "python",
                    "platform", "cpu_count", "deterministic_algorithms")


def _provenance_html(prov: dict | None, results: dict) -> str:
    """The run's provenance.json as a table (the command line shell-quoted), its versions and resumptions below."""
    if prov is None:
        return "<p>provenance.json is missing: where these results came from is not recorded.</p>"
    rows = []
    for key in _PROVENANCE_KEYS:
        if key in prov:
            value = prov[key]
            rows.append((key, shlex.join(map(str, value)) if key == "command" and isinstance(value, list) else value))
    if "threads" in results and "threads" not in prov:
        rows.append(("threads (results.json)", results["threads"]))
    out = _table(rows, ("provenance", "value"))
    versions = prov.get("versions")
    if isinstance(versions, dict):
        out += "<details><summary>versions</summary>" + _table(sorted(versions.items()), ("package", "version")) + "</details>"
    for i, again in enumerate(prov.get("resumed") or [], start=1):
        out += f"<p>resumed ({i}): {_e(json.dumps(again, sort_keys=True))}</p>"
    return out


def run_section(run: SavedRun, experiment) -> str:
    """One run's part of the page (``experiment``: its registry entry, with question, prediction and summarize)."""
    try:
        summary = experiment.summarize(run.results)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{run.path / 'results.json'} does not hold a {run.experiment} result this version can "
                         f"summarize ({type(exc).__name__}: {exc}); rerun the experiment") from None
    verdicts = recorded_verdicts(run.results)
    plots = "".join(f'<figure><img src="{png_data_uri(p)}" alt="{_e(p.name)}"><figcaption>{_e(p.name)}</figcaption>'
                    "</figure>" for p in run.plots) or "<p>The run directory holds no plots (PNG files).</p>"
    parts = [
        f"<h2>{_e(run.experiment)}</h2>", f"<p>Run directory: <code>{_e(run.path)}</code></p>",
        "<h3>Question</h3>", f"<p>{_e(experiment.question)}</p>",
        "<h3>Prediction</h3>", f'<p class="prediction">{_e(experiment.prediction)}</p>',
        "<h3>Results</h3>", f'<div class="scroll">{markdown_to_html(summary)}</div>',
        "<h3>Plots</h3>", plots,
        "<h3>Verdicts</h3>",
        _table(verdicts, ("where in results.json", "verdict")) if verdicts else
        "<p>results.json records no verdict field; the answer is in the tables above.</p>",
        "<h3>Configuration</h3>", f"<pre>{_e(json.dumps(run.config, indent=2))}</pre>",
        "<h3>Provenance</h3>", _provenance_html(run.provenance, run.results),
    ]
    return f'<section class="run">{"".join(parts)}</section>'


def html_page(title: str, body: str, columns: int = 1, heading: bool = True) -> str:
    """A whole HTML document: ``title`` (escaped; also the first heading unless ``heading`` is false, for a body that
    has its own), the inline style sheet and ``body`` (HTML, in ``columns`` columns)."""
    h1 = f"<h1>{_e(title)}</h1>" if heading else ""
    grid = f'<div class="runs" style="grid-template-columns: repeat({int(columns)}, minmax(0, 1fr))">{body}</div>'
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
            f"<style>{_STYLE}</style>\n</head>\n<body>\n{h1}\n{grid}\n</body>\n</html>\n")


def render_report(runs: list[SavedRun], lookup: Callable[[str], Any] | None = None) -> str:
    """The page of ``runs`` side by side (:func:`load_run` each first); ``lookup(name)`` gives an experiment's registry
    entry (default :func:`elastic_theory.experiments.get`, whose ``ValueError`` lists the known names)."""
    if lookup is None:
        from . import get as lookup
    experiments = [lookup(run.experiment) for run in runs]
    body = "".join(run_section(run, exp) for run, exp in zip(runs, experiments))
    title = "elastic-theory report: " + ", ".join(f"{run.experiment} ({run.path})" for run in runs)
    return html_page(title, body, columns=len(runs))


__all__ = ["PNG_SIGNATURE", "SavedRun", "html_page", "load_run", "markdown_to_html", "png_data_uri",
           "recorded_verdicts", "render_report", "run_section"]
