"""Command line: ``elastic-theory SUBCOMMAND``. Each subcommand lives in its own module here."""

from __future__ import annotations

from .app import app
# Registration by import, in the order that `elastic-theory --help` lists the commands.
from . import measure_cmd, compare_cmd, probe_cmd, corpus_cmd, ratio_cmd, verify_cmd, demo_cmd, experiment_cmd, report_cmd, finetune_cmd, tree_cmd, models_cmd  # noqa: F401, I001

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``elastic-theory`` script (and of ``python -m elastic_theory``, named the same in help)."""
    app(prog_name="elastic-theory")
