"""``elastic-theory measure``: bits per token and per byte of a causal LM on text datasets."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import typer

from .app import (
    app, apply_threads, bad_input_exits_2, console, escape, interrupted, json_option, library_progress,
    parse_data_options, require_extra, threads_option, write_result,
)
from .inputs import check_bootstrap_memory, check_measure_options, read_datasets

@app.command("measure")
@bad_input_exits_2
def measure_command(
    models: list[str] = typer.Option(..., "--model", metavar="MODEL",
                              help="Model folder (save_pretrained or a Trainer checkpoint), LoRA/PEFT adapter folder, "
                                   ".gguf file, cached hub name, or a built-in model: smollm2-135m, "
                                   "gemma3-270m."),
    data: list[str] = typer.Option(..., "--data", metavar="NAME=PATH",
                                   help="A dataset: .jsonl (text field), .json (array), text file (a document per "
                                        "line), folder (a document per file) or saved datasets folder. Repeatable."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", metavar="PATH",
                                         help="Tokenizer folder for a model saved without one (e.g. a Trainer checkpoint)."),
    context: int | None = typer.Option(None, "--context", metavar="N", help="Input positions per window (>= 2); default: the model's maximum length."),
    stride: int | None = typer.Option(None, "--stride", metavar="N", help="New tokens scored per window after the first (1..context); default: context."),
    batch_size: int | None = typer.Option(None, "--batch-size", metavar="N", help="Windows per forward pass; default: 1 on the CPU (measured fastest), 32 on CUDA."),
    device: str | None = typer.Option(None, "--device", metavar="DEVICE", help="cpu, cuda or cuda:N; default: CUDA when available."),
    dtype: str | None = typer.Option(None, "--dtype", metavar="DTYPE", help="float32, bfloat16 or float16; default: bfloat16 on CUDA, float32 on the CPU."),
    text_field: str = typer.Option("text", "--text-field", metavar="FIELD", help="JSON field / dataset column holding the text."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the bootstrap over documents (95% intervals)."),
    n_resamples: int = typer.Option(2000, "--n-resamples", metavar="N", help="Bootstrap resamples for the 95% intervals."),
    threads: int = threads_option(),
    json_out: Path | None = json_option("Also write the results (and the resolved settings and versions) as JSON to this file."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per dataset (on stderr)."),
) -> None:
    """Score every token of every document and report bits per token, bits per byte and 95% intervals.

    Documents are raw text: no chat template, no special tokens counted; the first token of each
    document is conditioned on BOS (EOS without BOS). Bits per byte divide by the UTF-8 bytes of
    the text, so models with different tokenizers are comparable. Ctrl-C keeps the datasets
    already finished (in --json, marked "partial"). See docs/measurement.md.

    Examples:

    \b
      elastic-theory measure --model smollm2-135m --data prose=examples/prose.jsonl --threads 1
      elastic-theory measure --model runs/checkpoint-500 --tokenizer runs/base --data lines=examples/prose.txt --json rates.json
      elastic-theory measure --model runs/lora-adapter --data a=examples/prose.jsonl --data b=examples/prose.txt --no-progress
    """
    for module in ("torch", "transformers"):
        require_extra(module, "empirical", "measure")
    from ..empirical import resolve_device
    from ..empirical.compare import ScoringSettings
    from ..empirical.distributed import is_main_process, world_size
    from ..empirical.distributed import launched_group, process_device

    if len(models) > 1:
        raise ValueError(f"--model is given {len(models)} times, and measure scores one model; to compare models, "
                         "use: elastic-theory compare --base MODEL --checkpoint NAME=MODEL ...")
    check_measure_options(context, stride, batch_size, seed, n_resamples)
    paths = parse_data_options(data)
    settings = ScoringSettings(context=context, stride=stride, batch_size=batch_size, device=device, dtype=dtype)
    resolve_device(settings.device)
    documents = read_datasets(paths, text_field)
    check_bootstrap_memory(n_resamples, documents)
    n_threads = apply_threads(threads)  # before any torch work: locate_model may convert smollm2-135m
    main = is_main_process()
    progress = progress and main  # under several processes: rank 0's bars, the others print only errors
    with launched_group(settings.device):
        settings = dataclasses.replace(settings, device=process_device(settings.device))
        lm, tok, source = _load_model(models[0], tokenizer, settings, progress)
        config = {
            **_resolved_settings(lm, source, settings, n_threads),
            "text_field": text_field, "seed": seed, "n_resamples": n_resamples,
            "data": {name: str(path) for name, path in paths.items()}, "processes": world_size(),
        }
        results = {}
        try:
            for name, rates in _rates(lm, tok, documents, settings, seed, n_resamples, progress):
                results[name] = rates
        except KeyboardInterrupt:
            if not main:
                raise typer.Exit(130) from None
            raise _keep_finished(models[0], results, documents, config, json_out) from None
    if not main:
        return
    report = _report(models[0], results, config, partial=[])
    _print_table(report, json_out)
    if json_out is not None:
        write_result(json_out, report)


def _load_model(model: str, tokenizer: str | None, settings, progress: bool):
    """``(model, tokenizer, source)`` of ``--model`` on the device and dtype of ``settings`` (a ``ScoringSettings``)."""
    from ..empirical import load_model_and_tokenizer, locate_model

    source = locate_model(model, tokenizer)
    with library_progress(progress):
        lm, tok = load_model_and_tokenizer(model, device=settings.device, dtype=settings.dtype, source=source)
    return lm, tok, source


def _resolved_settings(lm, source, settings, threads: int) -> dict:
    """What ``measure`` records of the model and of its scoring ``settings`` (a ``ScoringSettings``) with every default
    resolved: the model's maximum context, a stride of the whole context, the device's batch size, the dtype loaded."""
    from ..empirical.scoring import default_batch_size, max_context

    param = next(lm.parameters())
    context = settings.context if settings.context is not None else max_context(lm)
    return {
        "model": source.describe(),
        "model_class": type(lm).__name__, "n_parameters": int(sum(p.numel() for p in lm.parameters())),
        "context": context, "stride": settings.stride if settings.stride is not None else context,
        "batch_size": settings.batch_size if settings.batch_size is not None else default_batch_size(param.device),
        "device": str(param.device), "dtype": str(param.dtype).removeprefix("torch."), "threads": threads,
    }


def _rates(lm, tok, documents: dict[str, list], settings, seed: int, n_resamples: int, progress: bool) -> Iterator[tuple]:
    """``(dataset, rates)`` for each dataset in turn; one bootstrap generator, seeded by ``seed``, for all of them.

    Under several processes each rank scores its shard of each dataset and rank 0 pools the gathered per-document
    sums (the other ranks yield ``None``): rank 0's generator draws what one process's would, in the same order.
    """
    import numpy as np

    from ..empirical import rate_estimate
    from ..empirical.sharding import score_dataset_sharded

    rng = np.random.default_rng(seed)
    for name, docs in documents.items():
        scores = score_dataset_sharded(lm, tok, docs, context=settings.context, stride=settings.stride,
                                       batch_size=settings.batch_size, progress=name if progress else False)
        yield name, None if scores is None else rate_estimate(scores, rng, n_resamples)


def _keep_finished(model: str, results: dict, documents: dict, config: dict, json_out) -> typer.Exit:
    """After Ctrl-C: show the datasets finished, write them (marked partial) to ``json_out`` if given, and return the
    exit to raise, whose line names the dataset interrupted and where the finished ones are."""
    unfinished = [name for name in documents if name not in results]
    report = _report(model, results, config, partial=unfinished)
    if results:
        _print_table(report, json_out)
    kept = ""
    if json_out is not None and results:
        write_result(json_out, report)
        kept = f"; kept {len(results)} finished dataset(s) in {json_out} (marked partial)"
    elif results:
        kept = f"; {len(results)} finished dataset(s) shown above"
    return interrupted(f"interrupted during dataset {unfinished[0]!r}{kept}")


def _report(model: str, results: dict, config: dict, partial: list[str]) -> dict:
    """The JSON of ``measure``; ``partial`` lists the datasets not measured (Ctrl-C), and ``"partial"`` says if any."""
    return {
        "model": model,
        "partial": bool(partial),
        "not_measured": partial,
        "datasets": {name: est.to_dict() for name, est in results.items()},
        "config": config,
    }


def _print_table(report: dict, json_out) -> None:
    from rich.table import Table

    partial = " (PARTIAL: interrupted)" if report["partial"] else ""
    table = Table(title=f"{escape(report['model'])}: compression rates (95% bootstrap intervals over documents){partial}")
    for col in ("dataset", "bits/token", "bits/byte", "95% CI bits/byte", "tokens", "bytes", "documents"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, r in report["datasets"].items():
        ci = "n/a (1 document)" if r["ci95"] is None else f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]"
        table.add_row(escape(name), f"{r['bits_per_token']:.4f}", f"{r['bits_per_byte']:.4f}", ci, str(r["n_tokens"]),
                      str(r["n_bytes"]), str(r["n_documents"]))
    console(json_out).print(table)
