"""Run directories: an experiment's config, provenance, cached units of work and results, written atomically.

Layout of a run directory::

    config.json        {"experiment": NAME, "config": {...}, "threads": N}   the run's identity (written first)
    provenance.json    git commit, package/library versions, device, threads, command line, start time
    units/KEY.json     one finished unit of work (e.g. one trained model's measurements)
    results.json       the experiment's results, assembled from the units
    data/, tracks/ ... whatever the experiment writes through :meth:`RunDir.path`

A unit is computed once: :meth:`RunDir.unit` returns the cached result when ``units/KEY.json``
exists, so an interrupted run started again with the same configuration resumes where it
stopped and recomputes nothing that finished. A directory holding another experiment's run, or
the same experiment with a different configuration or another torch thread count, is refused
(:class:`RunDirRefused`, a ``ValueError``) before any work: the thread count changes the order of
floating-point sums, so units computed with two counts would be mixed silently in one result.
Core module: no torch import.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.io import to_jsonable, write_json_atomic
from .provenance import package_versions

__all__ = ["RunDir", "RunDirRefused", "provenance", "read_run", "unit_key"]

_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.=+-]+")


def unit_key(**parts: Any) -> str:
    """A file-name-safe key from named parts, in the given order: ``unit_key(k=4, l=0.1, seed=0)`` -> ``'k=4_l=0.1_seed=0'``."""
    return "_".join(_KEY_CHARS.sub("-", f"{name}={value}") for name, value in parts.items())


class RunDirRefused(ValueError):
    """A folder that cannot hold the run asked for; ``reason`` says why and the other attributes give the facts.

    ``path`` is the folder. ``reason`` is one of: ``"file"`` (``path`` is a file), ``"not_a_run"`` (a non-empty
    folder without a config.json), ``"bad_config"`` (its config.json is not a run's), ``"other_experiment"``
    (a run of ``saved_experiment``, not ``experiment``), ``"other_config"`` (a run of ``experiment`` whose
    configuration differs in the keys ``changed``) or ``"other_threads"`` (run with ``saved_threads`` torch threads,
    not ``threads``). The message states the facts; a command line adds its own option names to them.
    """

    def __init__(self, path: Path, reason: str, *, experiment: str | None = None, saved_experiment: str | None = None,
                 changed: tuple[str, ...] = (), threads: int | None = None, saved_threads: int | None = None):
        self.path, self.reason, self.experiment, self.saved_experiment = Path(path), reason, experiment, saved_experiment
        self.changed, self.threads, self.saved_threads = changed, threads, saved_threads
        facts = {
            "file": "is a file, not a folder",
            "not_a_run": "is a non-empty folder without a run's config.json",
            "bad_config": "holds a config.json that is not a run's",
            "other_experiment": f"holds a run of experiment {saved_experiment!r}, not {experiment!r}",
            "other_config": f"holds a {experiment} run with a different configuration (differs in: {', '.join(changed)})",
            "other_threads": f"was run with {saved_threads} torch threads, not {threads}",
        }
        super().__init__(f"{self.path} {facts[reason]}")


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance(device: str | None = None) -> dict:
    """Where results came from: git commit of the package source (``+dirty`` with uncommitted changes), versions
    (:func:`elastic_theory.infra.provenance.package_versions`, the same as in every command's result file), device."""
    info = {
        "git_commit": _git_commit(Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "device": device,
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu_count": os.cpu_count(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        info["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        if device is not None and device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    return info


class RunDir:
    """The run directory of one experiment with one configuration (see the module docstring).

    ``RunDir.open(path, experiment, config, threads=N)`` creates it or reopens it to resume; ``config`` is a
    JSON-able dict (compared after a JSON round trip, so tuples and lists are equal); ``threads`` the torch
    thread count the units are computed with (None: not recorded, and not checked).
    """

    def __init__(self, path: Path, experiment: str, config: dict, threads: int | None = None):
        self.root, self.experiment, self.config, self.threads = path, experiment, config, threads

    @classmethod
    def check(cls, path: str | os.PathLike, experiment: str, config: dict, threads: int | None = None) -> Path:
        """Raise :class:`RunDirRefused` unless ``path`` is new, empty, or a run of the same experiment, config and
        thread count (when both this call and the run record one); return it."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirRefused(path, "file")
        cfg_file = path / "config.json"
        if path.is_dir() and not cfg_file.is_file() and any(path.iterdir()):
            raise RunDirRefused(path, "not_a_run")
        if cfg_file.is_file():
            try:
                saved = json.loads(cfg_file.read_text(encoding="utf-8"))
                saved_name, saved_cfg = saved["experiment"], saved["config"]
            except (ValueError, KeyError, TypeError):
                raise RunDirRefused(path, "bad_config") from None
            if saved_name != experiment:
                raise RunDirRefused(path, "other_experiment", experiment=experiment, saved_experiment=saved_name)
            if saved_cfg != json.loads(json.dumps(to_jsonable(config))):
                changed = sorted(k for k in set(saved_cfg) | set(config) if saved_cfg.get(k) != to_jsonable(config).get(k))
                raise RunDirRefused(path, "other_config", experiment=experiment, changed=tuple(changed))
            ran_with = _recorded_threads(path, saved)
            if threads is not None and ran_with is not None and ran_with != threads:
                raise RunDirRefused(path, "other_threads", threads=threads, saved_threads=ran_with)
        return path

    @classmethod
    def open(cls, path: str | os.PathLike, experiment: str, config: dict, device: str | None = None,
             threads: int | None = None) -> RunDir:
        """Create (or reopen, to resume) the run directory; writes config.json and provenance.json."""
        path = cls.check(path, experiment, config, threads)
        run = cls(path, experiment, json.loads(json.dumps(to_jsonable(config))), threads)
        if not (path / "config.json").is_file():
            identity = {"experiment": experiment, "config": config}
            write_json_atomic(path / "config.json", identity if threads is None else {**identity, "threads": threads})
        prov, prov_file = {**provenance(device), "threads": threads}, path / "provenance.json"
        if prov_file.is_file():
            first = json.loads(prov_file.read_text(encoding="utf-8"))
            first.setdefault("resumed", []).append({k: prov[k] for k in ("git_commit", "started", "command", "device", "threads")})
            prov = first
        write_json_atomic(prov_file, prov)
        return run

    def path(self, *parts: str) -> Path:
        """A path inside the run directory (parent folders are created)."""
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def unit_path(self, key: str) -> Path:
        """Where the unit ``key`` is stored."""
        return self.path("units", f"{key}.json")

    def has_unit(self, key: str) -> bool:
        """Whether the unit ``key`` finished in this or an earlier (interrupted) run."""
        return self.unit_path(key).is_file()

    def unit(self, key: str, compute: Callable[[], dict]) -> dict:
        """The cached result of unit ``key``, or ``compute()`` saved atomically first (a JSON-able dict)."""
        p = self.unit_path(key)
        if p.is_file():
            return self.read_unit(key)
        result = to_jsonable(compute())
        write_json_atomic(p, result)
        return result

    def read_unit(self, key: str) -> dict:
        """The saved result of unit ``key``, which must have finished (``RuntimeError`` otherwise)."""
        p = self.unit_path(key)
        if not p.is_file():
            raise RuntimeError(f"unit {key!r} has not finished in the run directory {self.root} (no {p})")
        return json.loads(p.read_text(encoding="utf-8"))

    def write_results(self, results: dict) -> Path:
        """Write ``results.json`` atomically (with ``"threads"``, the run's thread count, when recorded) and return its path."""
        p = self.path("results.json")
        write_json_atomic(p, results if self.threads is None else {**results, "threads": self.threads})
        return p

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, as stored in results."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()


def _recorded_threads(path: Path, saved: dict) -> int | None:
    """The thread count a run directory was run with: config.json's ``threads``; for a run written before the count
    was part of a run's identity, the ``torch_threads`` its provenance.json recorded at the start; else None."""
    if "threads" in saved:
        return saved["threads"]
    try:
        return json.loads((path / "provenance.json").read_text(encoding="utf-8")).get("torch_threads")
    except (OSError, ValueError, AttributeError):
        return None


def read_run(path: str | os.PathLike) -> tuple[str, dict, dict | None]:
    """``(experiment, config, results or None)`` of a saved run directory; ``ValueError`` if it is not one."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"{path} holds no config.json: not a run directory")
    saved = json.loads(cfg_file.read_text(encoding="utf-8"))
    res_file = path / "results.json"
    results = json.loads(res_file.read_text(encoding="utf-8")) if res_file.is_file() else None
    return saved["experiment"], saved["config"], results
