"""The typer application that every ``elastic-theory`` subcommand registers on."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

app = typer.Typer(
    name="elastic-theory",
    help="Check, measure and rerun the elasticity result of 'Language Models Resist Alignment' (Ji et al., ACL 2025).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable)

BAD_INPUT_EXIT_CODE = 2


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr and return the exit (code 2, as for bad command-line input) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(BAD_INPUT_EXIT_CODE)


def bad_input_exits_2(fn: F) -> F:
    """Decorator for commands: a ``ValueError`` from the library, or an ``OSError`` on a path the user
    gave (an output folder that is a file, a directory given as the JSON output, no permission),
    becomes a one-line error and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)) from None

    return wrapper


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


def console():
    """A rich console on stdout (imported lazily: commands that print JSON only never pay for it)."""
    from rich.console import Console

    return Console(file=sys.stdout, width=120)
