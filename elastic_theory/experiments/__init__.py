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
config under ``experiments/``. Config helpers (:func:`config_to_dict`, :func:`config_from_dict`,
:func:`apply_overrides`) turn nested dataclasses into JSON and back and apply
``--set key.sub=value`` with one-line errors. No torch at import time.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Context",
    "Experiment",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
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


# ---------------------------------------------------------------------- configs
def config_to_dict(config) -> dict:
    """A (nested) config dataclass as a JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` (from JSON) as type ``tp``: dataclasses recursively, tuples from lists, ints kept exact."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object with the fields of {tp.__name__}, got {value!r}")
        return config_from_dict(tp, value, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    return value


def config_from_dict(cls, data: dict, prefix: str = ""):
    """Build config class ``cls`` from a dict (missing keys keep their defaults); unknown keys are errors."""
    hints = _field_types(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ValueError(f"unknown config key {prefix}{unknown[0]!r}; known keys: {', '.join(prefix + k for k in hints)}")
    return cls(**{k: _convert(v, hints[k], prefix + k) for k, v in data.items()})


def apply_overrides(config, items: Sequence[str]):
    """``config`` with ``KEY=VALUE`` overrides applied (``KEY`` dotted into nested configs, ``VALUE`` JSON or a bare string).

    >>> from elastic_theory.infra.trainconfig import StageConfig
    >>> apply_overrides(StageConfig(), ["lr=0.1", "optimizer=sgd"]).lr
    0.1
    """
    data = config_to_dict(config)
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.n_embd=32")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node, parts = data, key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ValueError(f"--set {item!r}: unknown config key {'.'.join(parts[: i + 1])!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"--set {item!r}: unknown config key {key!r}; known: {', '.join(sorted(node))}")
        node[parts[-1]] = value
    return config_from_dict(type(config), data)


def read_config_file(path: str | Path, experiment: Experiment):
    """The config in a file written like ``experiments/NAME.json`` (``{"experiment": NAME, "config": {...}}``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {path}: not valid JSON ({exc.msg})") from None
    if not isinstance(saved, dict) or saved.get("experiment") != experiment.name or not isinstance(saved.get("config"), dict):
        raise ValueError(f"--config {path}: expected {{\"experiment\": \"{experiment.name}\", \"config\": {{...}}}}")
    return config_from_dict(experiment.config_class, saved["config"])
