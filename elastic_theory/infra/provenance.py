"""What every result file records about how it was made: package versions, the command line, the time.

Imports nothing heavy: versions are read from the installed packages' metadata, so recording
torch's version does not import torch.
"""

from __future__ import annotations

import datetime
import platform
import sys
from importlib import metadata

from .. import __version__

__all__ = ["RECORDED_PACKAGES", "package_version", "package_versions", "provenance"]

RECORDED_PACKAGES = (
    "numpy", "scipy", "sympy", "mpmath", "hypothesis", "constriction",
    "torch", "transformers", "tokenizers", "safetensors", "peft", "accelerate", "gguf",
)
"""Packages whose versions go into every result file (None for a package that is not installed)."""


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed.

    ``elastic-theory`` is this source tree's own version (``elastic_theory.__version__``), which is
    the code that ran even when another copy is installed.
    """
    if name == "elastic-theory":
        return __version__
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """``{"elastic-theory": ..., "python": ..., <each of RECORDED_PACKAGES>: ...}``."""
    return {
        "elastic-theory": package_version("elastic-theory"),
        "python": platform.python_version(),
        **{name: package_version(name) for name in RECORDED_PACKAGES},
    }


def provenance() -> dict:
    """``{"versions", "argv", "platform", "created"}`` for a result file (``created``: UTC, ISO 8601).

    >>> sorted(provenance())
    ['argv', 'created', 'platform', 'versions']
    """
    return {
        "versions": package_versions(),
        "argv": list(sys.argv),
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
