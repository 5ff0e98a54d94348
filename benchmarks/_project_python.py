"""Imported first by every benchmark script: under an interpreter without the project (the system
``python``), exit with one line saying which interpreter to use, instead of an import traceback."""

from __future__ import annotations

import importlib.util
import sys

missing = [name for name in ("numpy", "elastic_theory") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(
        f"{sys.argv[0]}: this Python ({sys.executable}) lacks {', '.join(missing)}. Run the benchmarks with the "
        f"project's environment: .venv/bin/python {sys.argv[0]} (or `source .venv/bin/activate` first; "
        "bash scripts/bootstrap.sh test creates .venv)"
    )
