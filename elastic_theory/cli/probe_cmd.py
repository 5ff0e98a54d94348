"""``elastic-theory probe``: predict each dataset's rate change under one optimizer step, and check it against the step."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from .app import (
    app, apply_threads, bad_input_exits_2, console, escape, json_option, library_progress, parse_data_options,
    require_extra, threads_option, write_result,
)
from .inputs import check_document_counts, check_scoring_options, read_datasets

ROLES = ("align", "pretrain", "perturb")


def parse_roles(align: str, pretrain: str, perturb: str, datasets: list[str]) -> dict[str, str]:
    """``--align``/``--pretrain``/``--perturb`` as role -> dataset name; ``ValueError`` for a name that is not a
    ``--data`` dataset or one dataset in two roles."""
    roles = {"align": align, "pretrain": pretrain, "perturb": perturb}
    for role, name in roles.items():
        if name not in datasets:
            raise ValueError(f"--{role} {name!r}: no --data dataset of that name (datasets: {', '.join(datasets)})")
    for i, role in enumerate(ROLES):
        for other in ROLES[i + 1:]:
            if roles[role] == roles[other]:
                raise ValueError(f"--{role} and --{other} both name {roles[role]!r}; give each role its own dataset")
    return roles


def parse_lrs(text: str) -> tuple[float, ...]:
    """``--lr A,B,...``: distinct finite learning rates > 0, in the order given."""
    out = []
    for part in text.split(","):
        try:
            lr = float(part)
        except ValueError:
            raise ValueError(f"--lr {text!r}: {part.strip()!r} is not a number; give learning rates such as 1e-4,1e-3") from None
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"--lr {text!r}: every learning rate must be finite and > 0, got {part.strip()}")
        if lr in out:
            raise ValueError(f"--lr {text!r}: {part.strip()} is given twice")
        out.append(lr)
    return tuple(out)


def check_probe_options(optimizer: str, weight_decay: float, lora_r: int, lora_targets: str, documents: dict) -> None:
    """The probe's own options, and documents enough for the measured changes' intervals, checked before any model
    loads."""
    from ..empirical.probe import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"--optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"--weight-decay must be finite and >= 0, got {weight_decay}")
    if lora_r < 1:
        raise ValueError(f"--lora-r must be an integer >= 1, got {lora_r}")
    if not [t for t in lora_targets.split(",") if t.strip()]:
        raise ValueError("--lora-targets names no module; give e.g. q_proj,v_proj")
    check_document_counts({name: len(docs) for name, docs in documents.items()}, 2, "--data",
                          "the paired leave-one-out interval")


@app.command("probe")
@bad_input_exits_2
def probe_command(
    model: str = typer.Option(..., "--model", metavar="MODEL", help="What measure loads: a model folder, LoRA adapter folder, .gguf file, cached hub name, or a built-in model (smollm2-135m, gemma3-270m)."),
    data: list[str] = typer.Option(..., "--data", metavar="NAME=PATH", help="A dataset (as measure reads it). Repeatable; every one is predicted and measured."),
    align: str = typer.Option(..., "--align", metavar="NAME", help="The alignment dataset (the numerator of R)."),
    pretrain: str = typer.Option(..., "--pretrain", metavar="NAME", help="The pre-training dataset (the denominator of R)."),
    perturb: str = typer.Option(..., "--perturb", metavar="NAME", help="The perturbation dataset the step is taken on."),
    optimizer: str = typer.Option("sgd", "--optimizer", metavar="NAME", help="sgd, adam or adamw: one step of torch's optimizer from a fresh state."),
    lr: str = typer.Option("1e-3", "--lr", metavar="A,B,...", help="Learning rates, one step each."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", metavar="W", help="The optimizer's weight decay (fine-tuning's default 0)."),
    lora: bool = typer.Option(False, "--lora", help="Step a fresh LoRA adapter (peft) instead of every weight."),
    lora_r: int = typer.Option(8, "--lora-r", metavar="R", help="The adapter's rank (with --lora)."),
    lora_targets: str = typer.Option("q_proj,v_proj", "--lora-targets", metavar="A,B", help="Modules the adapter wraps (with --lora)."),
    second_order: bool = typer.Option(False, "--second-order", help="Curvatures u^T H u by Hessian-vector products: second-order predictions and the elastic limit."),
    controls: bool = typer.Option(False, "--controls", help="Also step along the alignment data, the pre-training data and a random direction, each of the perturbation step's norm."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", metavar="PATH", help="Tokenizer folder for a model saved without one."),
    context: int | None = typer.Option(None, "--context", metavar="N", help="Input positions per window (>= 2); default: the model's maximum length."),
    stride: int | None = typer.Option(None, "--stride", metavar="N", help="New tokens scored per window after the first; default: context."),
    batch_size: int | None = typer.Option(None, "--batch-size", metavar="N", help="Windows per forward pass; gradients are accumulated over the passes (the same sum). Default: 1 on the CPU, 32 on CUDA."),
    device: str | None = typer.Option(None, "--device", metavar="DEVICE", help="cpu, cuda or cuda:N; default: CUDA when available."),
    dtype: str = typer.Option("float32", "--dtype", metavar="DTYPE", help="float64, float32, bfloat16 or float16 (default float32: gradients and small steps need it)."),
    text_field: str = typer.Option("text", "--text-field", metavar="FIELD", help="JSON field / dataset column holding the text."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the fresh adapter's initialization (--lora) and of the random direction (--controls); the intervals involve no randomness."),
    threads: int = threads_option(),
    json_out: Path | None = json_option("Also write the report (and the settings and versions) as JSON to this file."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (on stderr)."),
) -> None:
    """Predict how one optimizer step on --perturb changes every dataset's rate, and check it against the step.

    Per dataset: its rate and its gradient. Per learning rate: the step u of the optimizer on the
    mean per-token cross-entropy (nats) of the perturbation documents; the first-order change
    g.u (bits per token and per byte), R1 = (g_a.u)/(-g_p.u), with --second-order the curvature
    and the elastic limit; the measured change with the paired 95% interval compare reports
    (leave-one-out standard error, Student's t) and whether each prediction lies inside it.
    See docs/probe.md.

    Example:

    \b
      elastic-theory probe --model smollm2-135m --data wiki=w.jsonl --data refuse=r.jsonl --data comply=c.jsonl \\
          --align refuse --pretrain wiki --perturb comply --lr 1e-4,1e-3 --second-order --json probe.json
    """
    for module in ("torch", "transformers"):
        require_extra(module, "empirical", "probe")
    if lora:
        require_extra("peft", "empirical", "probe --lora")
    from ..empirical.distributed import is_main_process, launched_group, process_device, rank, world_size
    from ..empirical.loading import parse_dtype, resolve_device
    from ..empirical.probe import ProbeSettings, run_probe
    from ..empirical.scoring import default_batch_size

    check_scoring_options(context, stride, batch_size, seed)
    paths = parse_data_options(data)
    roles = parse_roles(align, pretrain, perturb, list(paths))
    lrs = parse_lrs(lr)
    dev = resolve_device(device)
    parse_dtype(dtype, dev)
    documents = read_datasets(paths, text_field)
    check_probe_options(optimizer, weight_decay, lora_r, lora_targets, documents)
    n_threads = apply_threads(threads)
    dev = type(dev)(process_device(str(dev)))  # under torchrun: this rank's device (CUDA: its LOCAL_RANK's GPU)
    with launched_group(str(dev)):  # under torchrun: the group the shards are added over, ended after the probe
        progress = progress and is_main_process()
        lm, tok, source = _load(model, tokenizer, dev, dtype, seed, progress, lora, lora_r, lora_targets)
        datasets, context = _encode(lm, tok, documents, context, stride)
        bs = batch_size if batch_size is not None else default_batch_size(dev)
        settings = ProbeSettings(optimizer=optimizer, lrs=lrs, weight_decay=weight_decay, second_order=second_order,
                                 controls=controls, batch_size=bs, seed=seed)
        shard = (rank(), world_size())
        report = {"model": model, **run_probe(lm, datasets, roles, settings, progress=progress, shard=shard), "config": {
            "model": source.describe(), "model_class": type(lm).__name__, "optimizer": optimizer, "lrs": list(lrs),
            "weight_decay": weight_decay, "lora": {"r": lora_r, "targets": lora_targets.split(",")} if lora else None,
            "second_order": second_order, "controls": controls, "context": context, "stride": stride, "batch_size": bs,
            "device": str(dev), "dtype": dtype, "text_field": text_field, "seed": seed,
            "threads": n_threads, "processes": shard[1], "data": {name: str(path) for name, path in paths.items()},
        }}
    if is_main_process():
        print_report(report, json_out)
        if json_out is not None:
            write_result(json_out, report)


def _load(model: str, tokenizer: str | None, dev, dtype: str, seed: int, progress: bool, lora: bool, lora_r: int,
          lora_targets: str):
    """``(model, tokenizer, source)``: ``--model`` loaded as ``measure`` loads it (its bars hidden unless
    ``progress``), with a fresh LoRA adapter under ``--lora`` (then only the adapter is trained; ``seed`` seeds its
    initialization), every weight trainable otherwise."""
    import torch

    from ..empirical import load_model_and_tokenizer, locate_model

    torch.manual_seed(seed)  # the fresh adapter's initialization; the random direction has its own generator
    source = locate_model(model, tokenizer)
    with library_progress(progress):
        lm, tok = load_model_and_tokenizer(model, device=dev, dtype=dtype, source=source)
    if not lora:
        return lm.requires_grad_(True), tok, source
    from peft import get_peft_model

    from ..empirical.finetune import lora_config
    from ..empirical.loading import quiet_peft_deprecations
    from ..infra.trainconfig import FinetuneConfig

    config = FinetuneConfig(lora=True, lora_r=lora_r, lora_alpha=2 * lora_r,
                            lora_targets=tuple(t.strip() for t in lora_targets.split(",") if t.strip()))
    with quiet_peft_deprecations():
        return get_peft_model(lm, lora_config(lm, config)), tok, source


def _encode(lm, tok, documents: dict, context: int | None, stride: int | None):
    """Every dataset tokenized with its windows; ``--context`` defaults to, and may not exceed, the model's length."""
    from ..empirical.probe_text import encode_dataset
    from ..empirical.scoring import max_context

    limit = max_context(lm)
    if context is not None and context > limit:
        raise ValueError(f"--context {context} exceeds the model's maximum length {limit}")
    context = limit if context is None else context
    if stride is not None and stride > context:
        raise ValueError(f"--stride {stride} exceeds the context {context}")
    return {name: encode_dataset(tok, docs, name, context=context, stride=stride) for name, docs in documents.items()}, context


def _num(x) -> str:
    return "none" if x is None else f"{x:+.4g}"


def print_report(report: dict, json_out=None) -> None:
    """The probe's tables: datasets, gradient cosines, predicted against measured per step, ratios; the elastic limit."""
    from rich.table import Table

    out = console(json_out)
    names = list(report["datasets"])
    t = Table(title=f"{escape(report['model'])}: rates and gradients ({report['n_trained_parameters']} trained parameters)")
    for col in ("dataset", "role", "bits/token", "bits/byte", "|grad| bits/token", "tokens", "documents"):
        t.add_column(col, justify="left" if col in ("dataset", "role") else "right")
    for name, d in report["datasets"].items():
        t.add_row(escape(name), d["role"] or "", f"{d['bits_per_token']:.4f}", f"{d['bits_per_byte']:.4f}",
                  f"{d['grad_norm']:.4g}", str(d["n_tokens"]), str(d["n_documents"]))
    out.print(t)
    c = Table(title="Cosines between the datasets' gradients")
    c.add_column("")
    for name in names:
        c.add_column(escape(name), justify="right")
    for a in names:
        c.add_row(escape(a), *(f"{report['cosines'][a][b]:+.3f}" for b in names))
    out.print(c)
    s = Table(title="Change of bits per token: predicted against measured (paired 95% leave-one-out t interval)")
    for col in ("step", "dataset", "1st order", "2nd order", "measured", "95% CI", "1st inside"):
        s.add_column(col, justify="left" if col in ("step", "dataset") else "right")
    for e in report["steps"]:
        for name in names:
            m = e["measured"][name]
            s.add_row(f"{e['direction']} lr={e['lr']:g}", escape(name), _num(e["predicted_first_order"][name]),
                      _num(None if e["predicted_second_order"] is None else e["predicted_second_order"][name]),
                      _num(m["value"]), f"[{m['ci95'][0]:+.3g}, {m['ci95'][1]:+.3g}]",
                      "yes" if e["prediction_inside_ci"][name] else "NO")
    out.print(s)
    r = Table(title="R = change of align / -change of pretrain (bits per token)")
    for col in ("step", "|u|", "R1", "R2", "R measured", "95% CI (Fieller)", "signs hold"):
        r.add_column(col, justify="left" if col == "step" else "right")
    for e in report["steps"]:
        ci = e["R_measured"]["ci95"]
        r.add_row(f"{e['direction']} lr={e['lr']:g}", f"{e['step_norm']:.3g}", _num(e["R_first_order"]),
                  _num(e["R_second_order"]), _num(e["R_measured"]["value"]),
                  "unbounded" if ci is None else f"[{ci[0]:+.3g}, {ci[1]:+.3g}]", "yes" if e["signs_hold"] else "no")
    out.print(r)
    lim = report["elastic_limit"]
    if lim["step_scale"] is None:
        out.print(f"elastic limit: none ({escape(lim['reason'])})")
    else:
        as_what = f"one step at lr {lim['lr']:.4g}" if lim["lr"] is not None else f"{lim['steps']:.4g} steps at lr {lim['at_lr']:g}"
        out.print(f"elastic limit: step scale s* = {lim['step_scale']:.4g} x the step at lr {lim['at_lr']:g} ({as_what})")
