"""Run infrastructure: run directories that cache units of work, provenance, training configs, configs to JSON and back.

Every name below imports from here (``from elastic_theory.infra import ...``) and loads its module on first use.
The function ``provenance`` is not among them: its name is the module's, :mod:`.provenance`.
"""

from __future__ import annotations

from .. import lazy_exports

#: The module that provides each public name.
EXPORTS: dict[str, tuple[str, ...]] = {
    ".rundir": (
        "RunDir", "RunDirRefused", "read_run", "unit_key",
    ),
    ".provenance": (
        "RECORDED_PACKAGES", "package_version", "package_versions",
    ),
    ".config": (
        "OverrideRefused", "apply_overrides", "config_from_dict", "config_to_dict", "read_config_file",
    ),
    ".shards": (
        "balanced_shards", "parse_shard",
    ),
    ".trainconfig": (
        "ALGORITHMS", "DTYPE_NAMES", "OPTIMIZERS", "SCHEDULES", "FinetuneConfig", "ModelConfig",
        "StageConfig",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
