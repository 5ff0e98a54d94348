"""The typer application that every ``elastic-theory`` subcommand registers on, and the machinery they share.

A new command should use these helpers, so that every command behaves alike:

* :func:`bad_input_exits_2` around the command: bad input (``ValueError``, an ``OSError`` on a
  user's path, a number too large for float64) is one ``error: ...`` line and exit code 2 (a run directory
  that is refused is worded by :func:`bad_input_message`, naming ``--out``); Ctrl-C is
  one ``interrupted`` line and exit code 130 (:func:`interrupted` for a command that keeps partial
  results first);
* :func:`json_option` / :func:`folder_option` for output paths: checked when the command line is
  parsed, before any expensive work (:func:`elastic_theory.data.io.check_output_path`); ``-`` is stdout;
* :func:`write_result` to write a result file: atomic, non-finite numbers encoded as documented in
  :func:`elastic_theory.data.io.to_jsonable`, the versions and command line recorded under ``provenance``
  (:func:`elastic_theory.infra.provenance.provenance`);
* :func:`parse_data_options` for the ``--data NAME=PATH`` datasets of the commands that score text with a model
  (``measure``, ``compare``, ``probe``; their checks and reading are in :mod:`~elastic_theory.cli.inputs`), and
  :func:`library_progress` around loading a model, so that ``--no-progress`` hides transformers' bars too;
* :func:`parse_real` for a number option that takes exact fractions (``--k 4/5``);
* :func:`escape` for every user-supplied string (a file name, a dataset name, a model path) that
  goes into rich output, where ``[...]`` would otherwise be read as markup;
* :func:`threads_option` / :func:`apply_threads` wherever torch runs (:data:`DEFAULT_THREADS` unless the user
  says otherwise), and :func:`reproducible_torch` around an experiment's training;
* :func:`hypothesis_outside_cwd` around code that runs Hypothesis searches;
* :func:`console` for tables (fits the terminal's width).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer

from .plain_help import PlainHelpCommand

app = typer.Typer(
    name="elastic-theory",
    help="Check, measure and rerun the elasticity result of 'Language Models Resist Alignment' (Ji et al., ACL 2025).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: readable metavars (FILE, NAME=PATH, not <path>, <list[str]>) and example blocks kept as written.
    rich_markup_mode=None,
)

app.command = functools.partial(app.command, cls=PlainHelpCommand)  # every command's help without <type> placeholders
F = TypeVar("F", bound=Callable)

BAD_INPUT_EXIT_CODE = 2
MISMATCH_EXIT_CODE = 1
"""Exit code of ``verify`` and ``demo`` when a claim's verdict differs from the expected one (bad input is 2)."""
PIPE_COLUMNS = 120
"""Table width when output goes to a file or pipe and ``COLUMNS`` is not set."""
INTERRUPTED_EXIT_CODE = 130
"""Exit code after Ctrl-C: 128 + SIGINT, what shells report for a process ended by Ctrl-C."""


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` to stderr and return the exit (code 2, as for bad command-line input) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(BAD_INPUT_EXIT_CODE)


def interrupted(message: str = "interrupted") -> typer.Exit:
    """Print ``message`` (one line, starting on a fresh line after a progress bar) to stderr and return the
    exit (code 130) to raise. Commands that keep partial results write them first and say where."""
    typer.echo(f"\n{message}", err=True)
    return typer.Exit(INTERRUPTED_EXIT_CODE)


def bad_input_exits_2(fn: F) -> F:
    """Decorator for commands: one line and an exit code instead of a traceback.

    * ``ValueError`` from the library, or an ``OSError`` on a path the user gave: ``error: ...``, exit 2;
    * ``OverflowError``/``FloatingPointError``: an option's value is too large for the arithmetic, exit 2;
    * ``KeyboardInterrupt`` (Ctrl-C): ``interrupted``, exit 130.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise fail(bad_input_message(exc)) from None
        except OSError as exc:
            raise fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)) from None
        except (OverflowError, FloatingPointError) as exc:
            raise fail(f"a value is too large for the arithmetic ({exc}); give smaller option values") from None
        except KeyboardInterrupt:
            raise interrupted() from None

    return wrapper


RUN_DIR_MESSAGES = {
    "file": "{option} {path} is a file; give a folder for the run",
    "not_a_run": "{option} {path} is a non-empty folder without a run's config.json; give a new or empty folder",
    "bad_config": "{config_file} is not a run's config.json; give another {option} folder",
    "other_experiment": "{option} {path} holds a run of experiment {saved_experiment!r}, not {experiment!r}; "
                        "give another {option} folder",
    "other_config": "{option} {path} holds a {experiment} run with a different configuration (differs in: {changed}); "
                    "give another {option} folder to run this one",
    "other_threads": "{option} {path} was run with --threads {saved_threads}; rerun with --threads {saved_threads} to "
                     "resume it, or give another {option}",
}
"""The command line's wording of each :class:`~elastic_theory.infra.rundir.RunDirRefused` reason (its ``reason``)."""


def bad_input_message(exc: ValueError) -> str:
    """The ``error:`` line of a ``ValueError``: its message or, for a refused run directory, the facts it carries
    worded with the command line's options (:data:`RUN_DIR_MESSAGES`; ``--out`` names the run directory)."""
    from ..infra.rundir import RunDirRefused

    if not isinstance(exc, RunDirRefused):
        return str(exc)
    return RUN_DIR_MESSAGES[exc.reason].format(
        option="--out", path=exc.path, config_file=exc.path / "config.json", experiment=exc.experiment,
        saved_experiment=exc.saved_experiment, changed=", ".join(exc.changed), saved_threads=exc.saved_threads)


def require_extra(module: str, extra: str, what: str) -> None:
    """Raise a ``ValueError`` (one line, exit 2) naming the extra to install when ``module`` cannot be imported.

    The core installs without torch, transformers and matplotlib; ``pip install 'elastic-theory[empirical]'``
    (``[plots]``) adds them. Called before any expensive work, so nothing computed is lost.
    """
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{what} needs {module}, which is not installed: pip install 'elastic-theory[{extra}]'") from None


def parse_named_options(items: list[str], option: str, value: str, example: str, reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """Repeated ``NAME=VALUE`` options (``--data NAME=PATH``, ``--checkpoint NAME=MODEL``) as an ordered dict.

    ``ValueError`` for none given, a malformed item, a name used twice or one in ``reserved``.
    """
    if not items:
        raise ValueError(f"give at least one with {option} NAME={value}")
    out: dict[str, str] = {}
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{option} {item!r}: expected NAME={value}, e.g. {option} {example}")
        if name in reserved:
            raise ValueError(f"{option} {item!r}: the name {name!r} is reserved; choose another name")
        if name in out:
            raise ValueError(f"{option}: the name {name!r} is used twice; give each its own name")
        out[name] = rest
    return out


def parse_data_options(items: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` options as an ordered name -> path dict; ``ValueError`` for a malformed or repeated name, or a name
    holding ``/`` (``compare --ratio NUM/DEN`` could not name it)."""
    named = parse_named_options(items, "--data", "PATH", "wiki=wiki.jsonl")
    for name in named:
        if "/" in name:
            raise ValueError(f"--data {name}={named[name]}: a dataset name cannot hold '/' (compare --ratio NUM/DEN "
                             "splits on it); choose another name")
    return {name: Path(path) for name, path in named.items()}


def apply_set_options(config, items: list[str]):
    """``config`` with the ``--set KEY=VALUE`` items applied (:func:`~elastic_theory.infra.config.apply_overrides`),
    a refused item named with the option."""
    from ..infra.config import OverrideRefused, apply_overrides

    try:
        return apply_overrides(config, items)
    except OverrideRefused as exc:
        raise ValueError(f"--set {exc}" + (", e.g. --set model.n_embd=32" if exc.malformed else "")) from None


def parse_real(text: str, option: str):
    """A number option's value (``ratio``'s numbers, ``compare``'s ``--k``): ``"4/5"`` as an exact ``Fraction`` when
    it has a slash, else a float; ``ValueError`` naming ``option`` for anything else.

    Exact fractions let l* = w3/(1 - w3) be hit exactly (``--w3 4/5 --l 4``); a decimal such as 0.8 is the
    nearest float, whose l* differs from 4 in the 16th digit.
    """
    from fractions import Fraction

    try:
        return Fraction(text.strip()) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{option} must be a number or an exact fraction such as 4/5, got {text!r}") from None


def escape(text: Any) -> str:
    """``str(text)`` safe for rich markup: ``wiki[en]`` or ``runs/ft[step=500]`` print as written."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def _checked_at_parse_time(check: Callable[[Path], None]) -> Callable[[Any], Any]:
    """A typer callback running ``check`` on the option's path (when given); a ``ValueError`` is one line, exit 2."""
    def callback(value):
        if value is not None:
            try:
                check(Path(value))
            except ValueError as exc:
                raise fail(str(exc)) from None
        return value

    return callback


def json_option(help: str, option: str = "--json") -> Any:
    """A ``--json FILE`` option whose path is checked at parse time (before any work; ``-`` is stdout)."""
    def check(path: Path) -> None:
        from ..data.io import check_output_path

        check_output_path(path, option)

    return typer.Option(None, option, metavar="FILE", help=f"{help} Use - for standard output.",
                        callback=_checked_at_parse_time(check))


def folder_option(help: str, option: str) -> Any:
    """An output-folder option checked at parse time: an existing file, or a parent that is a file, is refused."""
    def check(path: Path) -> None:
        from ..data.io import check_output_path

        if path.exists() and not path.is_dir():
            raise ValueError(f"{option} {path}: is a file; give a folder (it is created if missing)")
        if not path.exists():
            check_output_path(path, option)

    return typer.Option(None, option, metavar="DIR", help=help, callback=_checked_at_parse_time(check))


def write_result(path: str | Path, result: dict) -> None:
    """Write a command's result file: ``result`` plus ``"provenance"`` (versions, command line, time).

    ``-`` writes the JSON to stdout; any other path is written atomically and ``wrote PATH`` goes to
    stderr (so that stdout stays the command's table or JSON). Non-finite numbers are encoded as
    documented in :func:`elastic_theory.data.io.to_jsonable`.
    """
    from ..data.io import STDOUT, write_json_atomic
    from ..infra.provenance import provenance

    write_json_atomic(path, {**result, "provenance": provenance()})
    if str(path) != STDOUT:
        typer.echo(f"wrote {path}", err=True)


DEFAULT_THREADS = 1
"""torch's CPU threads when ``--threads`` is not given. One number on every machine, not torch's choice (all
cores), because the count changes the order of floating-point sums and so a result's last digits, which an
experiment's training amplifies (docs/experiments.md, "Reruns give the same numbers"). 1 is the fastest count
measured on a loaded 2-core machine: torch's 2-thread kernels on small matrices slowed a quick experiment
7x when other jobs held the cores."""


def threads_option() -> Any:
    """A ``--threads N`` option (default :data:`DEFAULT_THREADS`) for commands that run torch; apply it with
    :func:`apply_threads` before any torch work. An N below 1 is refused when the command line is parsed."""
    def check(value: int) -> int:
        if value < 1:
            raise fail(f"--threads must be an integer >= 1, got {value}")
        return value

    return typer.Option(
        DEFAULT_THREADS, "--threads", metavar="N", show_default=False, callback=check,
        help=f"CPU threads for torch (default {DEFAULT_THREADS}: the fastest on a loaded 2-core machine, and the same "
             "everywhere). The count can change the last digits of a result, so results record it.",
    )


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads to ``threads``; returns the number in use (recorded in the command's result)."""
    import torch

    torch.set_num_threads(threads)
    return torch.get_num_threads()


CUBLAS_WORKSPACE = ":4096:8"
"""The cuBLAS workspace setting under which CUDA matrix products are deterministic (set before CUDA initializes)."""


@contextlib.contextmanager
def reproducible_torch(threads: int) -> Iterator[int]:
    """torch set up so that rerunning a command computes the same numbers; yields the thread count in use.

    ``threads`` CPU threads (:func:`apply_threads`) and ``torch.use_deterministic_algorithms(True)``: an
    operation without a deterministic implementation raises instead of varying between runs. On CUDA that
    needs ``CUBLAS_WORKSPACE_CONFIG`` (:data:`CUBLAS_WORKSPACE`) before CUDA initializes; it is set here when
    unset. The previous thread count and determinism setting are restored on exit (it matters when the CLI
    runs inside a test session).
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield apply_threads(threads)
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


_PLAIN_TQDM_MODULES = ("transformers.modeling_gguf_pytorch_utils",)
"""Library modules that draw a plain ``tqdm`` bar outside their library's progress switch (GGUF conversion)."""


@contextlib.contextmanager
def library_progress(enabled: bool) -> Iterator[None]:
    """With ``enabled`` False (``--no-progress``), silence the progress bars of transformers and huggingface_hub
    (weight loading, GGUF conversion) inside the block; their previous state is restored afterwards."""
    if enabled:
        yield
        return
    import importlib

    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    hub_was_off, hf_was_on = hub_utils.are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()
    hub_utils.disable_progress_bars()
    hf_logging.disable_progress_bar()
    patched = []
    for name in _PLAIN_TQDM_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # gguf support not installed: no such bar either
            continue
        patched.append((module, module.tqdm))
        module.tqdm = functools.partial(module.tqdm, disable=True)
    try:
        yield
    finally:
        for module, original in patched:
            module.tqdm = original
        if not hub_was_off:
            hub_utils.enable_progress_bars()
        if hf_was_on:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def hypothesis_outside_cwd() -> Iterator[None]:
    """Run Hypothesis with its storage (example database, constants cache) in a temporary folder that is
    removed afterwards, so a command never leaves ``.hypothesis/`` in the user's working directory.
    The previous storage folder is restored on exit (it matters when the CLI runs inside a test session)."""
    from hypothesis import configuration

    previous = getattr(configuration, "__hypothesis_home_directory", None)
    with tempfile.TemporaryDirectory(prefix="elastic-theory-hypothesis-") as home:
        configuration.set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            configuration.set_hypothesis_home_dir(previous)


def console(json_out: Any = None):
    """A rich console on stdout, or on stderr when ``json_out`` is ``-`` (the JSON then has stdout to itself).

    Width: the terminal's, or ``COLUMNS`` when set; output to a file or pipe without ``COLUMNS`` is
    laid out for :data:`PIPE_COLUMNS` columns (rich's own default there would be 80).
    """
    from rich.console import Console

    from ..data.io import STDOUT

    file = sys.stderr if json_out is not None and str(json_out) == STDOUT else sys.stdout
    fixed = not (os.environ.get("COLUMNS") or (hasattr(file, "isatty") and file.isatty()))
    return Console(file=file, width=PIPE_COLUMNS if fixed else None)


def version_callback(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"elastic-theory {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Check, measure and rerun the elasticity result of 'Language Models Resist Alignment' (Ji et al., ACL 2025).

    Start with 'elastic-theory demo', then 'elastic-theory COMMAND --help'. Docs: docs/ in the source tree.
    """
