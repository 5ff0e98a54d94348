"""``elastic-theory measure``: bits per token and per byte of a causal LM on text datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, bad_input_exits_2, console, parse_named_options, require_extra


def parse_data_options(items: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` options as an ordered name -> path dict; ``ValueError`` for a malformed or repeated name."""
    return {name: Path(path) for name, path in parse_named_options(items, "--data", "PATH", "wiki=wiki.jsonl").items()}


@app.command("measure")
@bad_input_exits_2
def measure_command(
    models: list[str] = typer.Option(..., "--model", help="Model directory (save_pretrained), .gguf file, cached hub name, or smollm2-135m."),
    data: list[str] = typer.Option(..., "--data", help="NAME=PATH: JSONL (text field), text file (a document per line), folder, or saved datasets dataset. Repeatable."),
    context: int | None = typer.Option(None, "--context", help="Input positions per window (>= 2); default: the model's maximum length."),
    stride: int | None = typer.Option(None, "--stride", help="New tokens scored per window after the first (1..context); default: context."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Windows per forward pass; default: 1 on the CPU (measured fastest), 32 on CUDA."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N; default: CUDA when available."),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, bfloat16 or float16; default: bfloat16 on CUDA, float32 on the CPU."),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field / dataset column holding the text."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap over documents (95% intervals)."),
    n_resamples: int = typer.Option(2000, "--n-resamples", help="Bootstrap resamples for the 95% intervals."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON to this file."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (on stderr)."),
) -> None:
    """Score every token of every document and report bits per token, bits per byte and 95% intervals.

    Documents are raw text: no chat template, no special tokens counted; the first token of each
    document is conditioned on BOS (EOS without BOS). Bits per byte divide by the UTF-8 bytes of
    the text, so models with different tokenizers are comparable. See docs/measurement.md.
    """
    import numpy as np

    for module in ("torch", "transformers"):
        require_extra(module, "empirical", "measure")
    from ..empirical import load_model_and_tokenizer, measure_rates, read_documents
    from ..io import write_json_atomic

    if len(models) > 1:
        raise ValueError(f"--model is given {len(models)} times, and measure scores one model; to compare models, "
                         "use: elastic-theory compare --base MODEL --checkpoint NAME=MODEL ...")
    model = models[0]
    if n_resamples < 1:
        raise ValueError(f"--n-resamples must be >= 1, got {n_resamples}")
    paths = parse_data_options(data)
    documents = {name: read_documents(path, text_field) for name, path in paths.items()}
    lm, tokenizer = load_model_and_tokenizer(model, device=device, dtype=dtype)
    rng = np.random.default_rng(seed)
    results = {
        name: measure_rates(
            lm, tokenizer, docs, rng=rng, context=context, stride=stride, batch_size=batch_size,
            n_resamples=n_resamples, progress=progress,
        )
        for name, docs in documents.items()
    }
    param = next(lm.parameters())
    report = {
        "model": model,
        "datasets": {name: est.to_dict() for name, est in results.items()},
        "config": {
            "context": context, "stride": stride, "batch_size": batch_size, "device": str(param.device),
            "dtype": str(param.dtype).removeprefix("torch."), "text_field": text_field, "seed": seed,
            "n_resamples": n_resamples, "data": {name: str(path) for name, path in paths.items()},
        },
    }
    _print_table(report)
    if json_out is not None:
        write_json_atomic(json_out, report)


def _print_table(report: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{report['model']}: compression rates (95% bootstrap intervals over documents)")
    for col in ("dataset", "bits/token", "bits/byte", "95% CI bits/byte", "tokens", "bytes", "documents"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, r in report["datasets"].items():
        ci = "n/a (1 document)" if r["ci95"] is None else f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]"
        table.add_row(name, f"{r['bits_per_token']:.4f}", f"{r['bits_per_byte']:.4f}", ci, str(r["n_tokens"]),
                      str(r["n_bytes"]), str(r["n_documents"]))
    console().print(table)
