"""Command line: ``elastic-theory SUBCOMMAND``. Each subcommand lives in its own module here."""

from __future__ import annotations

from .app import app
from . import compare_cmd, corpus_cmd, demo_cmd, experiment_cmd, finetune_cmd, measure_cmd, ratio_cmd, tree_cmd, verify_cmd  # noqa: F401  (registration by import)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``elastic-theory`` script (and of ``python -m elastic_theory``, named the same in help)."""
    app(prog_name="elastic-theory")
