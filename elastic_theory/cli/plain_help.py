"""Help text without typer's type placeholders (``<str>``, ``<list[str]>``, ``NAME <path>``).

typer prints an option without a ``metavar`` as ``--data <list[str]>`` and every argument as ``NAME <str>``. Every
command is built with :class:`PlainHelpCommand` (``app.py`` makes it the default), which gives each option without
one a metavar from its type (``N`` for integers, ``NUMBER`` for floats, ``PATH`` for paths, else the option's name in
capitals: ``--ratio RATIO``) and shows an argument by its metavar alone. ``tests/cli/test_app.py`` checks every
command's ``--help`` for placeholders and for an example.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperOption

__all__ = ["PlainHelpCommand", "plain_metavar"]


def plain_metavar(param: Any) -> str:
    """The metavar an option without one gets: from its type (typer's ``type_descriptor``; the element type of a
    list), else its longest name in capitals."""
    from typing import get_args

    desc = param.type_descriptor
    kind = desc.annotation
    if desc.is_list and get_args(kind):
        kind = get_args(kind)[0]
    if kind is int:
        return "N"
    if kind is float:
        return "NUMBER"
    if desc.is_path:
        return "PATH"
    name = max(getattr(param, "opts", None) or [param.name or "value"], key=len)
    return name.lstrip("-").replace("-", "_").upper()


class PlainHelpCommand(TyperCommand):
    """A typer command whose help shows metavars, never typer's ``<type>`` placeholders."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.metavar = param.metavar or (param.name or "value").upper()
                param.display_type_rich = lambda ctx: None  # the metavar says it; typer would add "<str>"
            elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
                param.metavar = plain_metavar(param)
