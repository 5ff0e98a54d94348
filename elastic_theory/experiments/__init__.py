r"""Named experiments on small transformers trained on the synthetic world, found by a registry.

An experiment is one module in this package that calls :func:`register` with an
:class:`Experiment`: a name, the question and the THEORY section of its prediction, a frozen
config dataclass whose defaults are the **full** configuration (the one ``experiments/NAME.json``
at the top of the repository holds and the documented results come from), a ``quick`` config
(at most 3 CPU minutes), and three functions:

* ``run(config, run, ctx) -> results``: trains and measures, caching every unit of work in the
  :class:`~elastic_theory.infra.rundir.RunDir` ``run`` (so an interrupted run resumes), returns a JSON-able dict;
* ``plot(results, folder) -> [paths]``: PNGs drawn only from saved results;
* ``summarize(results) -> str``: a markdown table of the answer;

and optionally ``defaults()`` (the full config when it is not the class's defaults) and
``check(config)`` (input checks that read data, run by the command line before anything loads).

Adding an experiment = adding a module here (it is imported by :func:`load_all`) and its full
config under ``experiments/``. Configs go to JSON and back, and take ``--set key.sub=value``, with
:mod:`elastic_theory.infra.config`. No torch at import time.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Context",
    "Experiment",
    "get",
    "load_all",
    "names",
    "register",
]

_REGISTRY: dict[str, Experiment] = {}


@dataclass(frozen=True)
class Context:
    """What a run gets besides its config: the device and a progress-bar factory ``progress(total, desc)``.

    The factory returns an object with ``update(n=1)`` and ``close()`` (a tqdm bar, or a no-op).
    """

    device: str = "cpu"
    progress: Callable[[int, str], Any] | None = None

    def bar(self, total: int, desc: str):
        """A progress bar (no-op without a factory)."""
        if self.progress is None:
            return _NoBar()
        return self.progress(total, desc)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (see the module docstring)."""

    name: str
    question: str
    prediction: str
    config_class: type
    quick: Callable[[], Any]
    run: Callable[..., dict]
    plot: Callable[[dict, Path], list[Path]]
    summarize: Callable[[dict], str]
    defaults: Callable[[], Any] | None = None
    check: Callable[[Any], None] | None = None

    def full(self):
        """The full configuration: ``defaults()`` when given (two experiments sharing a config class), else the class's defaults."""
        return self.config_class() if self.defaults is None else self.defaults()

    def validate(self, config) -> None:
        """Checks that need more than the config (data present and large enough), run before any model loads."""
        if self.check is not None:
            self.check(config)


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (a module-level call in its module); names are unique."""
    if experiment.name in _REGISTRY and _REGISTRY[experiment.name] is not experiment:
        raise ValueError(f"two experiments are named {experiment.name!r}")
    _REGISTRY[experiment.name] = experiment
    return experiment


def load_all() -> dict[str, Experiment]:
    """Import every module of this package (each registers its experiment) and return the registry."""
    for half in ("synthetic", "lm"):
        package = importlib.import_module(f"{__name__}.{half}")
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{info.name}")
    return dict(_REGISTRY)


def names() -> list[str]:
    """Names of all registered experiments, sorted."""
    return sorted(load_all())


def get(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` listing the known names otherwise."""
    registry = load_all()
    if name not in registry:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]
