"""Configs as frozen (nested) dataclasses: to JSON and back, ``--set KEY=VALUE`` overrides, and config files.

:func:`config_to_dict` and :func:`config_from_dict` turn a config into a JSON-able dict and back (tuples from
lists, ints kept exact, unknown keys refused); :func:`apply_overrides` applies ``--set key.sub=value`` with
one-line errors; :func:`read_config_file` reads a file written like ``experiments/NAME.json``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["apply_overrides", "config_from_dict", "config_to_dict", "read_config_file"]


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


def read_config_file(path: str | Path, name: str, config_class: type):
    """The config in a file written like ``experiments/NAME.json`` (``{"experiment": name, "config": {...}}``), as
    ``config_class``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {path}: not valid JSON ({exc.msg})") from None
    if not isinstance(saved, dict) or saved.get("experiment") != name or not isinstance(saved.get("config"), dict):
        raise ValueError(f"--config {path}: expected {{\"experiment\": \"{name}\", \"config\": {{...}}}}")
    return config_from_dict(config_class, saved["config"])
