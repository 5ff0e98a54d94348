"""``elastic-theory finetune``: SFT or DPO on preference pairs, SFT on plain texts or chat conversations, full or
LoRA; the training entry point users launch.

The same command runs in one process and, unchanged, under ``torchrun --nproc-per-node N -m
elastic_theory finetune ...`` or ``accelerate launch --num_processes N -m elastic_theory finetune
...`` (DDP; FSDP with ``--set fsdp=true`` on GPUs): the trainer reads the launcher's environment.
Every process checks the options (all fail alike, before any model loads) and trains; only rank 0
writes files. See docs/distributed.md.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import typer

from .app import (
    app, apply_set_options, apply_threads, bad_input_exits_2, folder_option, interrupted, parse_named_options, require_extra,
    threads_option, write_result,
)
from .inputs import refuse_shared_documents

BUILTIN_DATA = "jailbreakbench"
FINAL, RESULT, TRACK = "final", "result.json", "track.jsonl"
_LEFTOVERS = (FINAL, TRACK)
"""What an interrupted run leaves in its folder (a run that finished also has result.json)."""


def finetune_config(algorithm: str, lora: bool, overrides: list[str]):
    """The :class:`~elastic_theory.infra.trainconfig.FinetuneConfig` of the command line: ``--algorithm``, ``--lora``,
    then ``--set KEY=VALUE`` (JSON values) for any of its fields."""
    from ..infra.trainconfig import ALGORITHMS, FinetuneConfig

    if algorithm not in ALGORITHMS:
        raise ValueError(f"--algorithm {algorithm!r}: unknown; use one of {', '.join(ALGORITHMS)}")
    return apply_set_options(FinetuneConfig(algorithm=algorithm, lora=lora), overrides)


def check_out_folder(out: Path) -> None:
    """Refuse an output folder that holds a finished run or anything this command does not write."""
    if not out.is_dir():
        return
    if (out / RESULT).exists():
        raise ValueError(f"--out {out} holds a finished run ({RESULT}); give another --out folder")
    other = sorted(p.name for p in out.iterdir() if p.name not in _LEFTOVERS and not p.name.startswith(f".{FINAL}."))
    if other:
        raise ValueError(f"--out {out} holds other files ({', '.join(other[:3])}); give a new or empty folder")


def check_whole_steps(n_examples: int, batch_size: int) -> None:
    """Under several processes, refuse a last step with fewer than ``batch_size`` examples: accelerate would
    fill it with examples from the start (``even_batches``), so the run would differ from one process's."""
    from ..empirical.distributed import world_size

    if world_size() > 1 and n_examples % batch_size:
        raise ValueError(f"{n_examples} training examples do not fill whole steps of batch_size {batch_size}: with "
                         f"{world_size()} processes the last step would repeat examples from the start; give --n-train "
                         f"a multiple of {batch_size}")


def read_training_data(data: str):
    """``jailbreakbench`` (the built-in pairs) or a JSONL file of pairs, texts or conversations
    (:func:`~elastic_theory.data.training_data.read_training_jsonl`)."""
    from ..data import corpora
    from ..data.training_data import read_training_jsonl

    return corpora.jailbreakbench_pairs() if data == BUILTIN_DATA else read_training_jsonl(data)


def training_split(data: str, *, n_measure: int, n_train: int | None, seed: int):
    """The split ``finetune`` trains on: :func:`~elastic_theory.data.corpora.split_train_measure` of ``--data``, whose
    sides depend only on each example's identity and ``--seed`` (``corpus --split`` draws the same sides)."""
    from ..data import corpora

    return corpora.split_train_measure(read_training_data(data), n_measure=n_measure, n_train=n_train, seed=seed)


def check_counts_and_target(target: str | None, every: int) -> None:
    """``--target`` (a side, when given) and ``--every`` (>= 1)."""
    from ..empirical.finetune import SIDES

    if target is not None and target not in SIDES:
        raise ValueError(f"--target {target!r}: use aligned or unaligned")
    if every < 1:
        raise ValueError(f"--every must be an integer >= 1 (optimizer steps between measurements), got {every}")


def check_data_shape(shape: str, data: str, target: str | None, algorithm: str) -> str:
    """The ``--target`` to train towards (default ``aligned``); ``--target`` and DPO are refused for text and chat data."""
    if shape != "pairs":
        if target is not None:
            raise ValueError(f"--target applies to preference pairs; --data {data} holds {shape} records")
        if algorithm != "sft":
            raise ValueError(f"--algorithm {algorithm} needs preference pairs (prompt, aligned, unaligned); --data {data} "
                             f"holds {shape} records, which train with --algorithm sft")
    return target or "aligned"


def resolve_training_device(device: str | None) -> str:
    """``--device``: the GPU of this process's ``LOCAL_RANK`` when CUDA is there (or asked for), else the CPU."""
    import torch

    from ..empirical.distributed import local_rank
    from ..empirical.loading import resolve_device

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank()}"
    return str(resolve_device(device))


# One idea, one command: its options (each a line), its docstring (the help and its example), then the run.
@app.command("finetune")
@bad_input_exits_2
def finetune_command(
    model: str = typer.Option(..., "--model", metavar="MODEL", help="The model to fine-tune: anything --model of `measure` accepts."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", metavar="PATH", help="Tokenizer folder for a model saved without one (it is saved with the fine-tuned model)."),
    data: str = typer.Option(..., "--data", metavar="DATA", help=f"A JSONL file of {{prompt, aligned, unaligned}} pairs, {{text}} objects (loss on every token) or {{messages: [{{role, content}}, ...]}} conversations (chat template, loss on the assistant turns), or {BUILTIN_DATA} (built-in pairs)."),
    algorithm: str = typer.Option(..., "--algorithm", metavar="ALGORITHM", help="sft or dpo."),
    target: str | None = typer.Option(None, "--target", metavar="SIDE", help="Pairs: the side the model is pushed towards, aligned (default) or unaligned."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter (peft) instead of every weight."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="A FinetuneConfig field (lr, batch_size, epochs, max_length, beta, lora_r, lora_targets, fsdp, ...); JSON values; repeatable."),
    n_train: int | None = typer.Option(None, "--n-train", metavar="N", help="Training examples, from the training side of the split (default: all of it, half the distinct prompts)."),
    n_measure: int = typer.Option(10, "--n-measure", metavar="N", help="Examples held out for measurement, from the measurement side (never trained on for any sizes; their names go into result.json)."),
    seed: int = typer.Option(0, "--seed", metavar="SEED", help="Seed of the split and of the training."),
    track: list[str] = typer.Option([], "--track", metavar="NAME=PATH", help="A dataset (as `measure` reads it) whose rates are written to OUT/track.jsonl during training. Repeatable."),
    every: int = typer.Option(10, "--every", metavar="N", help="Optimizer steps between tracked measurements (and one before the first step)."),
    out: Path = folder_option("Folder for final/ (the model or adapter), result.json and track.jsonl.", "--out"),
    device: str | None = typer.Option(None, "--device", metavar="DEVICE", help="cpu or cuda; default: CUDA when available (each process its LOCAL_RANK's GPU)."),
    dtype: str = typer.Option("float32", "--dtype", metavar="DTYPE", help="The weights' dtype during training: float32, float64 or bfloat16."),
    threads: int = threads_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (rank 0, on stderr)."),
) -> None:
    """Fine-tune MODEL on the training part of a seeded split of the data (SFT or DPO on pairs, SFT on texts or
    conversations; full or LoRA).

    Writes OUT/final (a save_pretrained folder with the tokenizer, or the LoRA adapter: both are
    models that measure and compare accept), OUT/result.json (config, split, per-step losses, input tokens trained on,
    provenance) and, with --track, OUT/track.jsonl. Launch it under torchrun or accelerate launch
    for several processes; docs/distributed.md gives the commands.

    Examples:

    \b
      elastic-theory finetune --model smollm2-135m --data jailbreakbench --algorithm sft --lora --n-train 16 --out runs/ft
    """
    if out is None:
        raise ValueError("give --out DIR, the folder for the fine-tuned model and result.json")
    for module in ("torch", "transformers", "trl", "peft"):
        require_extra(module, "empirical", "finetune")
    from ..data import corpora
    from ..data.overlap import training_text
    from ..data.training_data import data_format

    config = finetune_config(algorithm, lora, overrides)
    check_counts_and_target(target, every)
    check_out_folder(out)
    split = training_split(data, n_measure=n_measure, n_train=n_train, seed=seed)
    target = check_data_shape(data_format(split.train), data, target, algorithm)
    check_whole_steps(len(split.train), config.batch_size)
    tracked = {}
    if track:
        from ..empirical import read_documents

        tracked = {name: read_documents(path) for name, path in parse_named_options(track, "--track", "PATH", "wiki=wiki.jsonl").items()}
        refuse_shared_documents([training_text(x) for x in split.train], tracked, "--track", "the training examples")
    from ..empirical.distributed import check_fsdp_device, world_size
    from ..empirical.finetune import check_batch_size
    from ..empirical.loading import locate_model, parse_dtype, resolve_device

    check_batch_size(len(split.train), config.batch_size, world_size())
    dev = resolve_training_device(device)
    check_fsdp_device(config.fsdp, dev.split(":")[0])
    parse_dtype(dtype, resolve_device(dev))
    threads = apply_threads(threads)  # before any torch work: locate_model may convert smollm2-135m
    source = locate_model(model, tokenizer)
    from ..empirical.distributed import is_main_process

    if is_main_process():  # the folder exists and is writable before the model loads, not after training
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--out {out}: cannot create the folder ({exc.strerror}); give a writable --out") from None
    progress = progress and is_main_process()  # one bar, not one per process
    if not progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
    try:
        report = _train(source, split, config, target=target, tracked=tracked, every=every, out=out, device=dev,
                        dtype=dtype, seed=seed, progress=progress, data=data, threads=threads)
    except KeyboardInterrupt:
        kept = f"{out / TRACK} keeps the rates measured so far; " if tracked else ""
        raise interrupted(f"interrupted: {kept}no model and no {RESULT} were written") from None
    if report is not None:
        write_result(out / RESULT, report)


def _train(source, split, config, *, target, tracked, every, out, device, dtype, seed, progress, data, threads) -> dict | None:
    """Load, train, save ``final/`` and return the report (rank 0; ``None`` on the other ranks)."""
    from ..empirical import RateTracker, load_model_and_tokenizer
    from ..empirical.distributed import full_state_dict, is_main_process, is_sharded, world_size
    from ..data.overlap import training_text
    from ..data.training_data import data_format
    from ..empirical.finetune import run_finetune, save_checkpoint

    main = is_main_process()
    model, tokenizer = load_model_and_tokenizer(source.name, device=device, dtype=dtype, source=source)
    tracker = None
    if tracked:
        tracker = RateTracker(tracked, tokenizer, out / TRACK, every=every)
        if main:
            (out / TRACK).write_text("", encoding="utf-8")  # an interrupted run's lines are not this run's
    t0 = time.perf_counter()
    result = run_finetune(model, tokenizer, split.train, config, target=target, seed=seed, progress=progress,
                          tracker=tracker)
    seconds = time.perf_counter() - t0
    state = full_state_dict(result.model) if is_sharded(result.model) else None  # a collective: every rank
    if not main:
        return None
    save_checkpoint(result.model, tokenizer, out / FINAL, overwrite=True, **({} if state is None else {"state_dict": state}))
    losses = list(result.losses)
    typer.echo(f"trained {len(losses)} steps on {len(split.train)} examples in {world_size()} process(es), "
               f"{seconds:.1f} s; loss {losses[0]:.4g} -> {losses[-1]:.4g}" if losses else "trained 0 steps", err=True)
    return {
        "model": source.describe(),
        "data": {"source": data, "format": data_format(split.train), "seed": split.seed, "n_train": len(split.train), "n_measure": len(split.measure),
                 "train": [p.name for p in split.train], "measure": [p.name for p in split.measure],
                 "train_texts": [training_text(p).to_dict() for p in split.train]},
        "target": target if data_format(split.train) == "pairs" else None,
        "config": dataclasses.asdict(config),
        "seed": seed,
        "losses": losses,
        "tokens_seen": result.tokens_seen,
        "world_size": world_size(),
        "device": device,
        "dtype": dtype,
        "threads": threads,
        "train_seconds": seconds,
        "final": FINAL,
        "track": TRACK if tracked else None,
    }
