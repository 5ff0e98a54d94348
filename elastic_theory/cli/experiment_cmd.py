"""``elastic-theory experiment NAME`` runs a registered experiment; ``elastic-theory plot PATH`` redraws from saved results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from .app import (
    BAD_INPUT_EXIT_CODE, app, apply_set_options, bad_input_exits_2, console, reproducible_torch, require_extra, threads_option,
)


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected integers separated by commas, e.g. --seeds 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r}: give distinct non-negative integers, e.g. --seeds 0,1,2")
    return seeds


def experiment_name(name: str, model: str | None, algorithm: str | None, lora: bool) -> str:
    """The registered experiment that ``experiment NAME`` with these real-model options runs.

    ``--model``, ``--algorithm`` or ``--lora`` turn a protocol (``rebound``, ``data-to-revert``, ``resistance``,
    ``ratio``: the aliases of the experiment registry, each real-model experiment's ``variant_of``) into its
    real-model experiment (``data-to-revert`` and ``ratio`` have no synthetic one, so they always do); other
    experiments run on the synthetic world and refuse them.
    """
    from ..experiments import EXPERIMENTS

    real = model is not None or algorithm is not None or lora
    variants = EXPERIMENTS.aliases
    if real and name not in variants and name not in variants.values():
        raise ValueError(f"--model, --algorithm and --lora apply to {', '.join(variants)} (a pretrained LM); "
                         f"{name!r} runs on the synthetic world: drop them")
    return EXPERIMENTS.resolve(name, prefer_alias=real)


def resolve_config(name: str, quick: bool, config_file: Path | None, seeds: str | None, overrides: list[str],
                   model: str | None = None, algorithm: str | None = None, lora: bool = False):
    """The experiment and its config: full (or ``--quick``, or ``--config FILE``), then ``--model``,
    ``--algorithm``, ``--lora`` and ``--seeds``, then ``--set``."""
    from ..experiments import get
    from ..infra.trainconfig import ALGORITHMS

    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ValueError(f"--algorithm {algorithm!r}: unknown alignment algorithm; known: {', '.join(ALGORITHMS)}")
    exp = get(experiment_name(name, model, algorithm, lora))
    if quick and config_file is not None:
        raise ValueError("give --quick or --config, not both")
    config = exp.quick() if quick else exp.full() if config_file is None else _read_config(config_file, exp)
    items = []
    if model is not None:
        items.append("model=" + json.dumps(model))
    if algorithm is not None:
        items.append("finetune.algorithm=" + json.dumps(algorithm))
    if lora:
        items.append("finetune.lora=true")
    if seeds is not None:
        items.append("seeds=" + str(list(_parse_seeds(seeds))))
    return exp, apply_set_options(config, [*items, *overrides])


def _read_config(path: Path, exp):
    """The config of ``--config FILE`` for ``exp``: the file refused with the option's name, its values checked."""
    from ..infra.config import config_from_dict, read_config_file

    try:
        data = read_config_file(path, exp.name)
    except ValueError as exc:
        raise ValueError(f"--config {exc}") from None
    return config_from_dict(exp.config_class, data)


@app.command("experiment")
@bad_input_exits_2
def experiment_command(
    name: str = typer.Argument(..., help="Experiment name (joint-ratio, sequential-ratio, ...; see experiments/README.md)."),
    model: str | None = typer.Option(None, "--model", help="Run rebound / data-to-revert / resistance / ratio on this pretrained LM (a name or path "
                                     "that measure accepts, e.g. smollm2-135m or gemma3-270m) instead of the synthetic world."),
    algorithm: str | None = typer.Option(None, "--algorithm", help="Alignment algorithm of a real-model run: sft or dpo."),
    lora: bool = typer.Option(False, "--lora", help="Real-model run: train LoRA adapters instead of every weight."),
    quick: bool = typer.Option(False, "--quick", help="The quick configuration (at most 3 CPU minutes)."),
    config_file: Path | None = typer.Option(None, "--config", help="A config file like experiments/NAME.json (default: the full config)."),
    seeds: str | None = typer.Option(None, "--seeds", help="Seeds, comma-separated (replaces the config's), e.g. 0,1,2."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/NAME or runs/NAME-quick); rerun to resume."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE config override (dotted keys, JSON values); repeatable."),
    threads: int = threads_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars (on stderr)."),
    shard: str | None = typer.Option(None, "--shard", metavar="I/N", help="Compute only shard I of N of the run's "
                                     "units (capacity): start N processes on one run directory, then the same command "
                                     "without --shard writes the results."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Make every check a run makes before its first unit of work "
                                 "(options, config, data, run directory, device), say what would run, and stop: "
                                 "nothing is trained or written."),
) -> None:
    """Train, measure, save results.json and plots in the run directory, and print the answer.

    Every unit of work (one trained model) is saved when it finishes: an interrupted run, started
    again with the same command, resumes without recomputing them. The same command gives the same
    numbers on every rerun: torch runs deterministic algorithms on --threads threads, and the thread
    count is part of the run's identity (a run is resumed only with the count it was started with).

    Examples:

    \b
      elastic-theory experiment joint-ratio --quick
      elastic-theory experiment rebound --model smollm2-135m --quick --seeds 0
      elastic-theory experiment sequential-ratio --set seeds=[0] --out runs/seq-one-seed --dry-run
    """
    from ..infra.rundir import RunDir

    exp, config = resolve_config(name, quick, config_file, seeds, overrides, model, algorithm, lora)
    shard_of = _shard(shard, exp)
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    from ..infra.config import config_to_dict

    out = out if out is not None else Path("runs") / (exp.name + ("-quick" if quick else ""))
    cfg = config_to_dict(config)
    RunDir.check(out, exp.name, cfg, threads)
    for module, extra in (("torch", "empirical"), ("transformers", "empirical"), ("matplotlib", "plots")):
        require_extra(module, extra, "experiment")
    _check_device(device)
    exp.validate(config)
    if dry_run:
        cached = len(list((out / "units").glob("*.json"))) if (out / "units").is_dir() else 0
        typer.echo(f"dry run: {exp.name} ({'quick' if quick else 'config'}), {threads} thread(s), device {device}"
                   f"{'' if shard is None else ', shard ' + shard}; "
                   f"run directory {out} ({'resumes with ' + str(cached) + ' finished units' if cached else 'new'}); "
                   "every check passed, nothing was run")
        return
    with reproducible_torch(threads):
        _run(exp, config, cfg, out, device, threads, progress, shard_of)


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device is available here; use --device cpu")


def _shard(text: str | None, exp) -> tuple[int, int]:
    """``--shard I/N`` as ``(I, N)`` (``(0, 1)`` without it); refused for an experiment that does not split, and the
    command refused under a launcher (``WORLD_SIZE`` > 1)."""
    from ..experiments import get, names
    from ..infra.shards import parse_shard

    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("experiment runs in one process: under torchrun or accelerate launch every process would run "
                         "the whole experiment into the same run directory; split a capacity run with --shard I/N "
                         "(one process per shard), and fine-tune on several processes with finetune")
    if text is None:
        return 0, 1
    shard = parse_shard(text)
    if shard[1] > 1 and not exp.shardable:
        splits = [n for n in names() if get(n).shardable]
        raise ValueError(f"--shard: {exp.name} computes its units in one process (experiments that split into "
                         f"shards: {', '.join(splits)})")
    return shard


def _run(exp, config, cfg: dict, out: Path, device: str, threads: int, progress: bool,
         shard: tuple[int, int] = (0, 1)) -> None:
    """The experiment command after its checks, under :func:`~elastic_theory.cli.app.reproducible_torch`."""
    from ..experiments import Context
    from ..infra.rundir import RunDir

    run = RunDir.open(out, exp.name, cfg, device=device, threads=threads)

    def bar(total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, disable=not progress, file=sys.stderr, leave=False)

    try:
        results = exp.run(config, run, Context(device=device, progress=bar, shard=shard))
    except KeyboardInterrupt:
        typer.echo(f"interrupted: finished units are saved in {out}/units; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    if results is None:  # a shard's units only
        typer.echo(f"shard {shard[0]}/{shard[1]}: its units are saved in {out}/units; once every shard has finished, "
                   f"the same command without --shard writes results.json and the plots (computing any unit still "
                   f"missing)")
        return
    run.write_results(results)
    plots = exp.plot(results, out)
    console().print(exp.summarize(results))
    typer.echo(f"results: {out / 'results.json'}; plots: {', '.join(str(p) for p in plots) or 'none'}")


def _refuse_one_json_document(path: Path) -> None:
    """A file that is one JSON object (a result, not a JSONL track): ``ValueError`` saying what ``plot`` reads and,
    for a ``compare`` result, how its plots are drawn."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return  # JSONL (or not JSON at all): the track reader words its own errors
    compare_result = isinstance(document, dict) and "checkpoints" in document and "base" in document
    if not compare_result and len(text.strip().splitlines()) == 1:
        return  # a track of one line is one JSON document too
    if compare_result:
        raise ValueError(f"{path} is a compare result, not a rate track; its plots are drawn by compare --plots DIR "
                         "(rerun the same compare command with it: its scores come from the cache)")
    raise ValueError(f"{path} is one JSON document, not a rate track (JSONL: one object per line, as finetune --track "
                     "writes) nor a run directory")


@app.command("plot")
@bad_input_exits_2
def plot_command(
    path: Path = typer.Argument(..., help="A run directory (redraws its plots from results.json) or a rate-tracker JSONL file."),
) -> None:
    """Redraw the plots of a run directory from its saved results, or draw rate-against-step curves of a JSONL track.

    Examples:

    \b
      elastic-theory plot runs/joint-ratio-quick
      elastic-theory plot runs/sft/track.jsonl
    """
    from ..experiments import get
    from ..experiments._plotting import plot_track
    from ..infra.rundir import read_run

    require_extra("matplotlib", "plots", "plot")
    if path.is_file():
        _refuse_one_json_document(path)
        typer.echo(f"plot: {plot_track(path)}")
        return
    if not path.is_dir():
        raise ValueError(f"{path}: no such file or folder")
    name, _, results = read_run(path)
    if results is None:
        raise ValueError(f"{path} has no results.json yet (the run did not finish): rerun the experiment to resume it")
    plots = get(name).plot(results, path)
    typer.echo("plots: " + (", ".join(str(p) for p in plots) or "none"))


__all__ = ["BAD_INPUT_EXIT_CODE", "experiment_command", "experiment_name", "plot_command", "resolve_config"]
