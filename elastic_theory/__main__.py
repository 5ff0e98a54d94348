"""``python -m elastic_theory`` is the ``elastic-theory`` command."""

from .cli import main

if __name__ == "__main__":
    main()
