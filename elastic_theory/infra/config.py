"""Configs as frozen (nested) dataclasses: to JSON and back, ``KEY=VALUE`` overrides, and config files.

:func:`config_to_dict` and :func:`config_from_dict` turn a config into a JSON-able dict and back (tuples from
lists, ints kept exact, unknown keys refused); :func:`apply_overrides` applies ``key.sub=value`` overrides with
one-line errors; :func:`read_config_file` reads the config of a file written like ``experiments/NAME.json``. The
errors state the facts (the override or the file, and what is wrong); a command line adds its options' names.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["OverrideRefused", "apply_overrides", "config_from_dict", "config_to_dict", "read_config_file"]


class OverrideRefused(ValueError):
    """A ``KEY=VALUE`` override that cannot apply: ``item`` as given; ``malformed`` when it is no ``KEY=VALUE`` at
    all, else its key names no field of the config. The message states the facts; a command line adds its option."""

    def __init__(self, item: str, fact: str, malformed: bool = False):
        self.item, self.malformed = item, malformed
        super().__init__(f"{item!r}: {fact}")


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

    An override that is no ``KEY=VALUE`` or whose key names no field raises :class:`OverrideRefused` (in the order
    given); a value of the wrong type raises the ``ValueError`` of :func:`config_from_dict`.

    >>> from elastic_theory.infra.trainconfig import StageConfig
    >>> apply_overrides(StageConfig(), ["lr=0.1", "optimizer=sgd"]).lr
    0.1
    """
    data = config_to_dict(config)
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise OverrideRefused(item, "expected KEY=VALUE", malformed=True)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node, parts = data, key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise OverrideRefused(item, f"unknown config key {'.'.join(parts[: i + 1])!r}")
            node = node[part]
        if parts[-1] not in node:
            raise OverrideRefused(item, f"unknown config key {key!r}; known: {', '.join(sorted(node))}")
        node[parts[-1]] = value
    return config_from_dict(type(config), data)


def read_config_file(path: str | Path, name: str) -> dict:
    """The ``"config"`` object of a file written like ``experiments/NAME.json`` (``{"experiment": name, "config":
    {...}}``), for :func:`config_from_dict`; a ``ValueError`` that starts with the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(saved, dict) or saved.get("experiment") != name or not isinstance(saved.get("config"), dict):
        raise ValueError(f"{path}: expected {{\"experiment\": \"{name}\", \"config\": {{...}}}}")
    return saved["config"]
