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


def test_each_real_model_experiment_is_the_variant_of_a_protocol():
    """The registry's aliases are the protocols that run on a pretrained LM, in the registry's order."""
    assert EXPERIMENTS.aliases == {"rebound": "lm-rebound", "data-to-revert": "lm-data-to-revert",
                                   "resistance": "lm-resistance", "ratio": "lm-ratio"}
    assert {name: get(name).variant_of for name in names() if get(name).variant_of} == {
        real: protocol for protocol, real in EXPERIMENTS.aliases.items()}
    assert get("ratio").name == "lm-ratio" and get("rebound").name == "rebound"  # a synthetic experiment wins


@pytest.mark.parametrize(("name", "real", "runs"), [
    ("rebound", False, "rebound"), ("rebound", True, "lm-rebound"), ("resistance", False, "resistance"),
    ("resistance", True, "lm-resistance"), ("data-to-revert", False, "lm-data-to-revert"),
    ("ratio", False, "lm-ratio"), ("ratio", True, "lm-ratio"), ("lm-ratio", True, "lm-ratio"),
    ("lm-rebound", False, "lm-rebound"), ("joint-ratio", False, "joint-ratio"), ("nope", False, "nope"),
])
def test_the_command_line_runs_a_protocols_real_model_experiment_with_model_options(name, real, runs):
    from elastic_theory.cli.experiment_cmd import experiment_name

    for options in (("smollm2-135m", None, False), (None, "dpo", False), (None, None, True)) if real else [(None, None, False)]:
        assert experiment_name(name, *options) == runs


@pytest.mark.parametrize("name", ["joint-ratio", "scaling", "nope"])
def test_model_options_are_refused_for_a_synthetic_world_experiment(name):
    from elastic_theory.cli.experiment_cmd import experiment_name

    message = (f"--model, --algorithm and --lora apply to rebound, data-to-revert, resistance, ratio (a pretrained LM); "
               f"{name!r} runs on the synthetic world: drop them")
    for options in (("m", None, False), (None, "dpo", False), (None, None, True)):
        with pytest.raises(ValueError) as refused:
            experiment_name(name, *options)
        assert str(refused.value) == message


def test_lm_data_to_revert_is_the_rebound_protocol_under_its_own_name(tmp_path, monkeypatch):
    """lm-data-to-revert shares lm-rebound's functions and differs in its name, question and full config; a run's
    results carry the name of the run directory's experiment."""
    from elastic_theory.experiments import Context
    from elastic_theory.experiments.lm import rebound as lm_rebound
    from elastic_theory.infra.rundir import RunDir, unit_key

    rebound, revert = get("lm-rebound"), get("lm-data-to-revert")
    shared = ("prediction", "config_class", "quick", "run", "plot", "summarize", "check")
    assert [getattr(revert, f) for f in shared] == [getattr(rebound, f) for f in shared]
    assert revert.question != rebound.question
    assert (rebound.full(), revert.full()) == (lm_rebound.LMReboundConfig(), lm_rebound.data_to_revert_config())
    config = lm_rebound.quick_config()
    run = RunDir.open(tmp_path, revert.name, {})
    for seed in config.seeds:  # a finished run: every unit is there, so no model loads
        run.unit(unit_key(seed=seed, base=0), lambda: {"seconds": 0.0})
        for n in config.align_amounts:
            run.unit(unit_key(seed=seed, align=n), lambda: {"seconds": 1.0})
    monkeypatch.setattr(lm_rebound, "load_pairs", lambda setting: [])
    monkeypatch.setattr(lm_rebound, "analyse", lambda config, base_units, units: {})
    monkeypatch.setattr(lm_rebound, "run_header", lambda config, name, **extra: {"experiment": name})
    results = revert.run(config, run, Context())
    assert results["experiment"] == "lm-data-to-revert" and results["unit_seconds"] == {"4": [1.0, 1.0], "8": [1.0, 1.0]}
