"""``python -m elastic_theory`` is the ``elastic-theory`` command."""

from .cli import main

main()
