"""``elastic-theory compare``: checkpoints against their base on the same datasets, with paired intervals."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import typer

from .app import (
    app, apply_threads, bad_input_exits_2, console, folder_option, interrupted, json_option, library_progress,
    parse_data_options, parse_named_options, parse_real, require_extra, threads_option, write_result,
)
from .inputs import check_datasets, check_measure_options, locate_models, parse_tokenizers, read_datasets

BASE_LABEL = "base"


def parse_checkpoints(items: list[str]) -> dict[str, str]:
    """``NAME=MODEL`` options as an ordered dict; ``ValueError`` for a malformed, repeated or reserved name."""
    return parse_named_options(items, "--checkpoint", "MODEL", "sft=runs/sft/final", reserved=(BASE_LABEL,))


def _checkpoints_and_series(checkpoint: list[str], series: list[str], csv_out: Path | None
                            ) -> tuple[dict[str, str], dict[str, list[tuple[int, str]]]]:
    """``--checkpoint`` items and every checkpoint of each ``--series`` (labelled ``NAME@STEP``) as one ordered dict
    label -> model, and the series' ``(step, folder)`` lists; at least one checkpoint or series is needed."""
    if not checkpoint and not series:
        raise ValueError("give --checkpoint NAME=MODEL or --series NAME=DIR (a trainer's output folder): there is "
                         "nothing to compare with the base")
    if csv_out is not None and not series:
        raise ValueError("--csv writes the change against the step of a --series; give --series NAME=DIR")
    from ..empirical.compare_series import expand_series, series_label

    checkpoints = parse_checkpoints(checkpoint) if checkpoint else {}
    steps: dict[str, list[tuple[int, str]]] = {}
    named = parse_named_options(series, "--series", "DIR", "sft=runs/sft", reserved=(BASE_LABEL,)) if series else {}
    for name, spec in named.items():
        if name in checkpoints or "@" in name:
            raise ValueError(f"--series {name}={spec}: the name {name!r} is a --checkpoint's or holds '@'; give another")
        steps[name] = expand_series(name, spec)
        checkpoints |= {series_label(name, step): path for step, path in steps[name]}
    return checkpoints, steps


def parse_ratio(text: str | None, datasets: list[str]) -> tuple[str, str] | None:
    """``NUM/DEN`` naming two of the ``--data`` datasets, or None."""
    if text is None:
        return None
    num, sep, den = text.partition("/")
    if not sep or not num or not den:
        raise ValueError(f"--ratio {text!r}: expected NUM/DEN with two dataset names, e.g. --ratio align/pretrain")
    for d in (num, den):
        if d not in datasets:
            raise ValueError(f"--ratio {text!r}: no dataset named {d!r} (datasets: {', '.join(datasets)})")
    if num == den:
        raise ValueError(f"--ratio {text!r}: numerator and denominator are the same dataset")
    return num, den


def parse_k(text: str | None, ratio: tuple[str, str] | None) -> float | dict[str, float] | None:
    """``--k``: a number (k as stated), or the training-set sizes ``NUM=N,DEN=N`` in documents for the ratio's datasets.

    Numbers are read by :func:`~elastic_theory.cli.app.parse_real`, as ``ratio`` reads its ``--k`` (``4/5`` is 0.8).
    """
    if text is None:
        return None
    if ratio is None:
        raise ValueError("--k needs --ratio NUM/DEN: k is compared with the ratio of the two datasets' changes")
    if "=" not in text:
        k = _number_or_nan(text)
        if not (math.isfinite(k) and k > 0):
            raise ValueError(f"--k {text!r}: expected a number > 0, or sizes {ratio[0]}=N,{ratio[1]}=N")
        return k
    sizes: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        n = _number_or_nan(value)
        if name not in ratio or not (math.isfinite(n) and n > 0):
            raise ValueError(f"--k {text!r}: expected the training-set sizes {ratio[0]}=N,{ratio[1]}=N (documents, > 0)")
        sizes[name] = n
    if set(sizes) != set(ratio):
        raise ValueError(f"--k {text!r}: give the sizes of both {ratio[0]} and {ratio[1]}")
    return sizes


def _number_or_nan(text: str) -> float:
    """A number of ``--k`` as a float, NaN when it is none (the caller's message says what ``--k`` expects)."""
    try:
        return float(parse_real(text, "--k"))
    except (ValueError, OverflowError):
        return math.nan


def k_values(k: float | dict[str, float] | None, ratio: tuple[str, str] | None, base_tokens: dict[str, int],
             n_documents: dict[str, int]) -> dict | None:
    r"""k as stated, or from sizes: :math:`k = N_{den}/N_{num}` documents and, per token,
    :math:`k_{tok} = (N_{den} \bar t_{den}) / (N_{num} \bar t_{num})` with :math:`\bar t` the mean tokens
    per document of each measured dataset under the base's tokenizer."""
    if k is None or ratio is None:
        return None
    if not isinstance(k, dict):
        return {"k": k, "k_per_token": None, "sizes": None}
    num, den = ratio
    mean_tokens = {d: base_tokens[d] / n_documents[d] for d in ratio}
    return {"k": k[den] / k[num], "k_per_token": (k[den] * mean_tokens[den]) / (k[num] * mean_tokens[num]),
            "sizes": {d: k[d] for d in ratio}}


# One idea, one command: its options (each a line) and the checks, scoring and writing they drive, in order.
@app.command("compare")
@bad_input_exits_2
def compare_command(
    base: str = typer.Option(..., "--base", help="The base model: anything --model of `measure` accepts."),
    checkpoint: list[str] = typer.Option([], "--checkpoint", metavar="NAME=MODEL", help="A fine-tuned checkpoint to compare with the base. Repeatable."),
    series: list[str] = typer.Option([], "--series", metavar="NAME=DIR", help="A training run's checkpoints: DIR a trainer output folder (its checkpoint-<step> folders) or a glob; each compared like a --checkpoint NAME@STEP, and the changes and R reported against the step. Repeatable."),
    tokenizer: list[str] = typer.Option([], "--tokenizer", metavar="[NAME=]PATH", help="A tokenizer folder for models saved without one (trainer checkpoints): PATH for every model, NAME=PATH for the base (NAME base) or one checkpoint. Repeatable."),
    data: list[str] = typer.Option(..., "--data", help="NAME=PATH: a dataset as `measure` reads it. Repeatable."),
    ratio: str | None = typer.Option(None, "--ratio", help="NUM/DEN: also the measured R = ΔNUM / (−ΔDEN) of THEORY §2.2, NUM in the alignment role and DEN in the pre-training role (e.g. align/pretrain)."),
    k: str | None = typer.Option(None, "--k", help="k to set beside the ratio: a number, or training-set sizes NUM=N,DEN=N in documents (then also k per token)."),
    unit: str = typer.Option("byte", "--unit", help="Unit of the ratio's changes: byte (bits per byte, comparable across tokenizers) or token."),
    context: int | None = typer.Option(None, "--context", help="Input positions per window (>= 2); default: each model's maximum length."),
    stride: int | None = typer.Option(None, "--stride", help="New tokens scored per window after the first (1..context); default: context."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Windows per forward pass; default: 1 on the CPU, 32 on CUDA."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N; default: CUDA when available."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, bfloat16 or float16; default: bfloat16 on CUDA, float32 on the CPU."),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field / dataset column holding the text."),
    seed: int = typer.Option(0, "--seed", help="Seed of the paired bootstrap over documents."),
    n_resamples: int = typer.Option(2000, "--n-resamples", help="Resamples of the paired bootstrap shown beside the 95% intervals."),
    threads: int = threads_option(),
    json_out: Path | None = json_option("Write the results as JSON to this file."),
    plots: Path | None = folder_option("Draw the rate changes (and the ratio) into this folder.", "--plots"),
    csv_out: Path | None = json_option("With --series: write each step's change per dataset, its interval and R as CSV.", "--csv"),
    per_document: Path | None = json_option("Write every document's bits under every model to this JSONL file.",
                                            "--per-document"),
    cache_dir: Path | None = folder_option("Where scores are cached; default: $ELASTIC_THEORY_CACHE or ~/.cache/elastic-theory.",
                                           "--cache-dir"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse scores of the same model files on the same texts and settings."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars (on stderr)."),
) -> None:
    """Score every dataset once per model; report each checkpoint's rates and its change from the base.

    The change of bits per byte from the base carries a paired 95% interval (leave-one-out standard error,
    Student's t): documents are left out under all models together, so a small shift is resolved where the two
    models' own intervals overlap. --ratio NUM/DEN adds R = ΔNUM / (−ΔDEN), the theory's R with NUM in the
    alignment role and DEN in the pre-training role, with Fieller's 95% set. See docs/compare.md.

    Examples:

    \b
      elastic-theory compare --base examples/models/base --checkpoint tuned=examples/models/tuned --data align=examples/prose.jsonl --data pretrain=examples/prose.txt --ratio align/pretrain --k 1
      elastic-theory compare --base runs/base --series sft=runs/sft --data align=examples/prose.jsonl --data pretrain=examples/prose.txt --csv series.csv --plots plots/
    """
    for module in ("torch", "transformers"):
        require_extra(module, "empirical", "compare")
    if plots is not None:
        require_extra("matplotlib", "plots", "compare --plots")
    from ..stats.comparison import compare_rates
    from ..empirical.compare import ScoreCache, ScoringSettings
    from ..empirical.compare_series import series_label, series_summary
    from ..empirical.distributed import is_main_process, world_size
    from ..empirical.loading import default_cache_dir
    from ..empirical.distributed import launched_group, process_device

    check_measure_options(context, stride, batch_size, seed, n_resamples)
    if unit not in ("byte", "token"):
        raise ValueError(f"--unit {unit!r}: use byte or token")
    checkpoints, steps = _checkpoints_and_series(checkpoint, series, csv_out)
    paths = parse_data_options(data)
    ratio_names = parse_ratio(ratio, list(paths))
    if unit == "token" and ratio_names is None:
        raise ValueError("--unit token sets the unit of the ratio; give --ratio NUM/DEN with it")
    k_stated = parse_k(k, ratio_names)
    documents = read_datasets(paths, text_field)
    check_datasets(documents, n_resamples, "an interval over documents", trained=checkpoints)
    models = {BASE_LABEL: base, **checkpoints}
    tokenizers = parse_tokenizers(tokenizer, [BASE_LABEL, *(n for n in checkpoints if "@" not in n), *steps])
    tokenizers |= {series_label(n, step): tokenizers[n] for n, members in steps.items() for step, _ in members}
    threads = apply_threads(threads)  # before any torch work: locate_model may convert smollm2-135m
    locate_models(models, tokenizers, {BASE_LABEL: "--base"})
    settings = ScoringSettings(context=context, stride=stride, batch_size=batch_size, device=device, dtype=dtype)
    if unit == "token" and ratio_names is not None:
        _refuse_token_ratio_across_tokenizers(models, {d: documents[d] for d in ratio_names}, tokenizers)
    store = ScoreCache((cache_dir or default_cache_dir()) if cache else None)
    with launched_group(settings.device):  # under torchrun / accelerate launch: each rank scores its shard
        main = is_main_process()
        scores = _score_all(models, documents, dataclasses.replace(settings, device=process_device(settings.device)),
                            store, progress and main, tokenizers)
    if not main:  # rank 0 holds the scores and writes; the others print nothing but errors
        return
    comparison = compare_rates(scores[BASE_LABEL], {c: scores[c] for c in checkpoints}, np.random.default_rng(seed),
                               n_resamples=n_resamples, ratio=ratio_names, unit=unit)
    base_tokens = {d: int(np.sum(s.n_tokens)) for d, s in scores[BASE_LABEL].items()}
    report = build_report(models, paths, scores, comparison, k_values(k_stated, ratio_names, base_tokens,
                          {d: len(docs) for d, docs in documents.items()}), config={
        **dataclasses.asdict(settings),
        "text_field": text_field, "seed": seed, "n_resamples": n_resamples, "unit": unit, "threads": threads,
        "processes": world_size(),
        "cache": str(store.root) if store.root else None,
        "tokenizers": {label: t for label, t in tokenizers.items() if t is not None},
    })
    if steps:
        report["series"] = series_summary(report, steps)
    _show_and_write(report, documents, scores, json_out, per_document, plots, csv_out)


def _show_and_write(report: dict, documents: dict, scores: dict, json_out: Path | None, per_document: Path | None,
                    plots: Path | None, csv_out: Path | None) -> None:
    """The notes and tables of ``compare``, then the files asked for: per-document bits, plots, the JSON result."""
    from ..data.io import write_text_atomic
    from ..empirical.compare_series import plot_comparison, plot_series, series_csv, series_tables

    for note in report["notes"]:
        typer.echo(f"note: {note}", err=True)
    print_tables(report, json_out)
    if per_document is not None:
        write_per_document(per_document, documents, scores)
    for table in series_tables(report.get("series", {})):
        console(json_out).print(table)
    if csv_out is not None:
        write_text_atomic(csv_out, series_csv(report["series"]))
    if plots is not None:
        plot_comparison(report, plots)
        if "series" in report:
            plot_series(report["series"], plots)
    if json_out is not None:
        write_result(json_out, report)


def _refuse_token_ratio_across_tokenizers(models: dict[str, str], datasets: dict, tokenizers: dict[str, str | None]) -> None:
    """Before any scoring: a bits-per-token ratio needs every model to tokenize the ratio's datasets as the base does."""
    from ..empirical.compare import tokenization_digest
    from ..empirical.loading import load_tokenizer
    from ..empirical.scoring import encode_documents

    digests = {}
    for label, name in models.items():
        tok = load_tokenizer(name, tokenizers[label])
        digests[label] = [tokenization_digest(encode_documents(tok, docs)) for docs in datasets.values()]
        if digests[label] != digests[BASE_LABEL]:
            raise ValueError(
                f"--unit token: checkpoint {label!r} tokenizes the ratio's datasets differently from the base (another "
                "tokenizer), so bits-per-token changes are not comparable; bits per byte are: use --unit byte"
            )


def _score_all(models, documents, settings, store, progress, tokenizers):
    from tqdm.auto import tqdm

    from ..empirical import load_model_and_tokenizer
    from ..empirical.compare import score_models

    total = len(models) * len(documents)
    bar = tqdm(total=total, desc="models x datasets", unit="score", disable=not progress, file=sys.stderr)
    done = []

    def on_scored(label: str, dataset: str, cached: bool) -> None:
        done.append((label, dataset))
        bar.set_postfix_str(f"{label}/{dataset}{' (cached)' if cached else ''}")
        bar.update(1)

    try:
        with bar, library_progress(progress):  # --no-progress: transformers' weight-loading bars too
            return score_models(
                models, documents, settings, store,
                load=lambda name, tok=None: load_model_and_tokenizer(name, device=settings.device, dtype=settings.dtype,
                                                                     tokenizer=tok),
                progress=progress, on_scored=on_scored, tokenizers=tokenizers,
            )
    except KeyboardInterrupt:
        kept = f"they are cached in {store.root}; run the same command again to continue" if store.root else "nothing is kept (--no-cache)"
        raise interrupted(f"interrupted after {len(done)} of {total} scores; {kept}; no result file was written") from None


def build_report(models: dict[str, str], paths: dict[str, Path], scores, comparison, k: dict | None, config: dict) -> dict:
    """The JSON result: ``checkpoints.NAME.datasets.DATASET`` and ``checkpoints.NAME.ratio`` as documented."""
    from ..stats.comparison import MIN_DOCUMENTS

    base_scores = scores[BASE_LABEL]
    notes = [f"dataset {d!r} has {s.n_documents} documents: the intervals' coverage was checked by simulation from "
             f"{MIN_DOCUMENTS} documents on (docs/compare.md); with fewer it is not known"
             for d, s in base_scores.items() if s.n_documents < MIN_DOCUMENTS]
    for name, r in comparison.ratios.items():
        notes.extend(ratio_notes(name, r, comparison.changes[name]))
    for name, per_dataset in comparison.changes.items():
        other = [d for d, ch in per_dataset.items() if not ch.same_tokenization]
        if other:
            notes.append(
                f"checkpoint {name!r} tokenizes {', '.join(other)} differently from the base (another tokenizer): "
                "bits per byte are comparable across tokenizers and are compared; bits-per-token changes are left out"
            )
    checkpoints = {}
    for name, per_dataset in comparison.changes.items():
        entry = {"model": models[name], "datasets": {d: ch.to_dict() for d, ch in per_dataset.items()}}
        if name in comparison.ratios:
            entry["ratio"] = comparison.ratios[name].to_dict() | ({"k": k["k"], "k_per_token": k["k_per_token"]} if k else {})
        checkpoints[name] = entry
    return {
        "base": {
            "model": models[BASE_LABEL],
            "datasets": {
                d: {"bits_per_token": s.bits_per_token, "bits_per_byte": s.bits_per_byte,
                    "bits_per_byte_ci95": list(comparison.base_bits_per_byte_ci95[d]), "n_tokens": int(np.sum(s.n_tokens)),
                    "n_bytes": int(np.sum(s.n_bytes)), "n_documents": s.n_documents}
                for d, s in base_scores.items()
            },
        },
        "checkpoints": checkpoints,
        "k": k,
        "notes": notes,
        "config": config | {"data": {d: str(p) for d, p in paths.items()}},
    }


def print_tables(report: dict, json_out: Path | None = None) -> None:
    """The rate-change table and, with --ratio, the ratio table (on stderr when the JSON goes to stdout)."""
    from rich.markup import escape
    from rich.table import Table

    from ..empirical.compare_series import fieller_text

    table = Table(title="Rate changes from the base (paired 95% intervals over documents: leave-one-out t)")
    for col in ("model", "dataset", "bits/token", "bits/byte", "Δ bits/byte", "paired 95% CI", "Δ bits/token"):
        table.add_column(col, justify="left" if col in ("model", "dataset") else "right")
    for d, r in report["base"]["datasets"].items():
        table.add_row(BASE_LABEL, escape(d), f"{r['bits_per_token']:.4f}", f"{r['bits_per_byte']:.4f}", "", "", "")
    for name, entry in report["checkpoints"].items():
        for d, r in entry["datasets"].items():
            lo, hi = r["delta_bits_per_byte_ci95"]
            dbt = "n/a (tokenizer)" if r["delta_bits_per_token"] is None else f"{r['delta_bits_per_token']:+.4f}"
            table.add_row(escape(name), escape(d), f"{r['bits_per_token']:.4f}", f"{r['bits_per_byte']:.4f}",
                          f"{r['delta_bits_per_byte']:+.4f}", f"[{lo:+.4f}, {hi:+.4f}]", dbt)
    out = console(json_out)
    out.print(table)
    ratios = {n: e["ratio"] for n, e in report["checkpoints"].items() if "ratio" in e}
    if not ratios:
        return
    first = next(iter(ratios.values()))
    num, den = escape(first["numerator"]), escape(first["denominator"])
    rt = Table(title=f"R = Δ{num} / (−Δ{den}): {num} in the alignment role, {den} in the pre-training role "
                     f"(THEORY §2.2; bits per {first['unit']}; Fieller 95% set)")
    for col in ("model", "R", "95% set", "k", "k per token"):
        rt.add_column(col, justify="left" if col == "model" else "right")
    k = report["k"] or {}
    for name, r in ratios.items():
        rt.add_row(escape(name), f"{r['value']:.4g}", fieller_text(r), *("" if k.get(c) is None else f"{k[c]:.4g}" for c in ("k", "k_per_token")))
    out.print(rt)


def ratio_notes(name: str, r, changes: dict) -> list[str]:
    """Plain-language notes on one checkpoint's :class:`~elastic_theory.stats.comparison.RatioEstimate`: two rays, the
    whole line, or changes of the same sign (the theorem's R undefined)."""
    key = "delta_bits_per_byte" if r.unit == "byte" else "delta_bits_per_token"
    da, dp = (getattr(changes[d], key) for d in (r.numerator, r.denominator))
    out = []
    if r.rays is not None:
        out.append(f"checkpoint {name!r}: the change of {r.denominator} ({dp:+.4g}) is not resolved from 0, so R may be "
                   f"arbitrarily large of either sign; the data exclude only {r.rays[0]:.4g} < R < {r.rays[1]:.4g} "
                   f"(the 95% set is R <= {r.rays[0]:.4g} or R >= {r.rays[1]:.4g})")
    elif r.ci95 is None:
        out.append(f"checkpoint {name!r}: neither change is resolved enough to bound R: the 95% set is every R")
    if r.same_sign:
        out.append(f"checkpoint {name!r}: the changes of {r.numerator} ({da:+.4g}) and {r.denominator} ({dp:+.4g}) have the "
                   f"same sign, so the theorem's R (a rise of the alignment set's rate over a fall of the pre-training "
                   f"set's) is not defined; R = {r.value:.4g} is only the ratio, and k does not apply")
    return out


def write_per_document(path: Path, documents: dict, scores: dict) -> None:
    """One JSON line per document: ``dataset``, ``document``, ``n_bytes`` and, per model, ``bits`` and ``n_tokens``."""
    import json

    from ..data.io import to_jsonable, write_text_atomic

    lines = []
    for d, docs in documents.items():
        for i, doc in enumerate(docs):
            lines.append(json.dumps(to_jsonable({
                "dataset": d, "document": doc.name, "n_bytes": int(scores[BASE_LABEL][d].n_bytes[i]),
                "bits": {m: float(s[d].bits[i]) for m, s in scores.items()},
                "n_tokens": {m: int(s[d].n_tokens[i]) for m, s in scores.items()},
            }), allow_nan=False))
    write_text_atomic(path, "".join(line + "\n" for line in lines))
