r"""Named experiments, on small transformers trained on the synthetic world or on a pretrained LM, found by name.

:data:`EXPERIMENTS` is the registry (a :class:`~elastic_theory.registry.Registry`). An experiment is registered by
a module of ``synthetic/`` or ``lm/`` listed in :data:`MODULES`, which calls :func:`register` with an
:class:`Experiment`: a name, the question and the THEORY section of its prediction, a frozen config dataclass
whose defaults are the **full** configuration (the one ``experiments/NAME.json`` at the top of the repository
holds and the documented results come from), a ``quick`` config (at most 3 CPU minutes), and three functions:

* ``run(config, run, ctx) -> results``: trains and measures, caching every unit of work in the
  :class:`~elastic_theory.infra.rundir.RunDir` ``run`` (so an interrupted run resumes), returns a JSON-able dict
  (None when ``ctx.shard`` made it compute only its share of the units: :meth:`Context.owned`);
* ``plot(results, folder) -> [paths]``: PNGs drawn only from saved results;
* ``summarize(results) -> str``: a markdown table of the answer;

and optionally ``defaults()`` (the full config when it is not the class's defaults),
``check(config)`` (input checks that read data, run by the command line before anything loads) and
``variant_of``: for a real-model experiment, the protocol it runs on a pretrained LM (``rebound``,
``data-to-revert``, ``resistance``, ``ratio``), an alias of its name in the registry; ``shardable`` when ``run``
splits its independent cells between processes by :meth:`Context.owned` (``experiment NAME --shard I/N``). ``experiment rebound
--model M`` runs the experiment whose ``variant_of`` is ``rebound``; so does ``experiment ratio``, since no
synthetic experiment is called ``ratio`` (:meth:`~elastic_theory.registry.Registry.resolve`).

Adding an experiment = adding its module to :data:`MODULES` (the first lookup imports them) and its full
config under ``experiments/``. Configs go to JSON and back, and take ``--set key.sub=value``, with
:mod:`elastic_theory.infra.config`. No torch at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import Registry

__all__ = ["EXPERIMENTS", "MODULES", "Context", "Experiment", "get", "names", "register"]


@dataclass(frozen=True)
class Context:
    """What a run gets besides its config: the device, a progress-bar factory ``progress(total, desc)`` and the
    shard ``(I, N)`` of its units this process computes (``(0, 1)``: all of them).

    The factory returns an object with ``update(n=1)`` and ``close()`` (a tqdm bar, or a no-op).
    """

    device: str = "cpu"
    progress: Callable[[int, str], Any] | None = None
    shard: tuple[int, int] = (0, 1)

    def owned(self, cells: Sequence[Hashable], costs: Sequence[float]) -> set:
        """The cells (independent groups of units, e.g. a base model and its continuations) this process computes:
        every cell in one process; under ``shard = (I, N)`` shard I of the plan that balances ``costs`` (longest
        first, :func:`~elastic_theory.infra.shards.balanced_shards`), the same plan in every process, so the N
        shards together cover every cell once."""
        from ..infra.shards import balanced_shards

        if len(cells) != len(costs):
            raise ValueError(f"{len(cells)} cells but {len(costs)} costs")
        i, n = self.shard
        return {cells[j] for j in balanced_shards(list(costs), n)[i]}

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
    run: Callable[..., dict | None]
    plot: Callable[[dict, Path], list[Path]]
    summarize: Callable[[dict], str]
    defaults: Callable[[], Any] | None = None
    check: Callable[[Any], None] | None = None
    variant_of: str | None = None
    shardable: bool = False

    def full(self):
        """The full configuration: ``defaults()`` when given (two experiments sharing a config class), else the class's defaults."""
        return self.config_class() if self.defaults is None else self.defaults()

    def validate(self, config) -> None:
        """Checks that need more than the config (data present and large enough), run before any model loads."""
        if self.check is not None:
            self.check(config)


MODULES = tuple(f"{__name__}.{module}" for module in (
    "synthetic.joint_ratio", "synthetic.sequential_ratio", "synthetic.resistance", "synthetic.rebound",
    "synthetic.scaling", "synthetic.capacity", "lm.rebound", "lm.resistance", "lm.ratio",
))
"""The modules that register experiments, in the registry's order (the order of experiments/README.md's table)."""

EXPERIMENTS: Registry[Experiment] = Registry("experiment", MODULES)
"""Every experiment by name; each real-model experiment's ``variant_of`` is an alias of its name."""


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to :data:`EXPERIMENTS` (a module-level call in its module); names are unique."""
    return EXPERIMENTS.add(experiment.name, experiment, [experiment.variant_of] if experiment.variant_of else [])


def names() -> list[str]:
    """Names of all registered experiments, sorted."""
    return sorted(EXPERIMENTS)


def get(name: str) -> Experiment:
    """The experiment called ``name`` (or whose ``variant_of`` it is, when none is called so); ``ValueError`` listing
    the known names otherwise."""
    return EXPERIMENTS.get(name)
