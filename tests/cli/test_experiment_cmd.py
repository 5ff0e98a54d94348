"""``elastic-theory experiment``: a bad ``--config`` file or ``--set`` item is one line naming the option, exit 2."""

import json

import pytest
from typer.testing import CliRunner

from elastic_theory.cli import app


def _refused(tmp_path, *args) -> str:
    res = CliRunner().invoke(app, ["experiment", "joint-ratio", *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "o").exists()  # refused before anything was written
    return res.stderr.strip()


def test_a_bad_config_file_is_named_with_its_option(tmp_path):
    path = tmp_path / "c.json"
    assert _refused(tmp_path, "--config", str(path)) == f"error: --config {path}: no such file"
    path.write_text("{")
    assert _refused(tmp_path, "--config", str(path)) == (
        f"error: --config {path}: not valid JSON (Expecting property name enclosed in double quotes)")
    path.write_text(json.dumps({"experiment": "scaling", "config": {}}))
    assert _refused(tmp_path, "--config", str(path)) == (
        f'error: --config {path}: expected {{"experiment": "joint-ratio", "config": {{...}}}}')
    path.write_text(json.dumps({"experiment": "joint-ratio", "config": {"ks": "many"}}))
    assert _refused(tmp_path, "--config", str(path)) == "error: ks must be a list, got 'many'"  # a value, not the file


@pytest.mark.parametrize(("items", "message"), [
    (["model"], "--set 'model': expected KEY=VALUE, e.g. --set model.n_embd=32"),
    (["=3"], "--set '=3': expected KEY=VALUE, e.g. --set model.n_embd=32"),
    (["model.width=3"], "--set 'model.width=3': unknown config key 'model.width'; known: dtype, n_embd, n_head, n_layer"),
    (["seeds.x=1"], "--set 'seeds.x=1': unknown config key 'seeds'"),
    (["nope=1", "model"], "--set 'nope=1': unknown config key 'nope'; known: "),  # the first refused item, in order
    (["model.n_embd=wide"], "model.n_embd must be an integer, got 'wide'"),
])
def test_a_bad_set_item_is_named_with_its_option(tmp_path, items, message):
    args = [arg for item in items for arg in ("--set", item)]
    assert _refused(tmp_path, *args).startswith(f"error: {message}")
