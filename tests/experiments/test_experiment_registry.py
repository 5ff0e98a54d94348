"""The experiment registry: what the full configs under experiments/ and its README's table hold is what it holds."""

import json
import re
from pathlib import Path

import pytest

from elastic_theory.experiments import EXPERIMENTS, MODULES, get, names
from elastic_theory.infra.config import apply_overrides, config_to_dict

ROOT = Path(__file__).resolve().parents[2]


def test_full_configs_in_experiments_folder_are_the_defaults():
    """The documented results come from experiments/NAME.json: one file per registered experiment, its full config."""
    assert sorted(p.stem for p in (ROOT / "experiments").glob("*.json")) == names()
    for name in names():
        saved = json.loads((ROOT / "experiments" / f"{name}.json").read_text())
        assert saved == {"experiment": name, "config": config_to_dict(get(name).full())}, name
    assert apply_overrides(get("joint-ratio").quick(), ["seeds=[5]"]).seeds == (5,)


def test_the_readme_table_has_a_row_per_experiment_in_the_registrys_order():
    rows = re.findall(r"^\| ([a-z-]+) \|", (ROOT / "experiments" / "README.md").read_text(), flags=re.MULTILINE)
    assert rows[0] == "name" and rows[1:] == EXPERIMENTS.names()  # the header, then one row each


def test_names_are_sorted_and_an_unknown_one_lists_them():
    assert names() == sorted(EXPERIMENTS.names()) and len(names()) == len(MODULES) + 1  # lm.rebound registers two
    assert all(get(name).name == name for name in names())
    with pytest.raises(ValueError, match=f"unknown experiment 'nope'; known: {', '.join(names())}$"):
        get("nope")
