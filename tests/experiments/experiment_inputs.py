"""What the experiment tests hand to ``elastic-theory experiment``: a config file, the command line itself, and the
lm-rebound grid and config of the tiny GPT-2 that ``conftest.py`` saves (``rebound_inputs``)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.infra.config import config_to_dict

#: The tiny lm-rebound run's seeds, alignment amounts n+ and perturbation amounts m.
SEEDS = (0, 1)
ALIGNS = (4, 12)
PERTURBS = (4, 8, 16)


def invoke(*args):
    """``elastic-theory experiment ARGS --no-progress`` in this process (paths may be given as :class:`Path`)."""
    return CliRunner().invoke(app, ["experiment", *map(str, args), "--no-progress"])


def write_config(path: Path, name: str, config) -> Path:
    """``path`` as a config file of experiment ``name`` (what ``--config`` reads)."""
    path.write_text(json.dumps({"experiment": name, "config": config_to_dict(config)}))
    return path


def rebound_config(folder: Path, **changes) -> dict:
    """The tiny lm-rebound config of the model and pairs in ``folder`` (``model/``, ``pairs.jsonl``), with ``changes``."""
    cfg = {"model": str(folder / "model"), "setting": str(folder / "pairs.jsonl"), "judge": "refusal_rate",
           "finetune": {"lr": 0.003, "batch_size": 4, "max_length": 64}, "align_amounts": list(ALIGNS),
           "perturb_amounts": list(PERTURBS), "n_measure": 6, "n_generate": 2, "max_new_tokens": 4,
           "generate_amounts": [16], "track_every": 2, "n_track": 2, "seeds": list(SEEDS)}
    return {**cfg, **changes}


def write_rebound_config(folder: Path, name: str, **changes) -> Path:
    """``folder/NAME.json``: :func:`rebound_config` of ``folder`` with ``changes``, as an lm-rebound config file."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"experiment": "lm-rebound", "config": rebound_config(folder, **changes)}))
    return path
