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


def test_dry_run_checks_everything_and_writes_nothing(tmp_path):
    """``--dry-run`` makes the run's checks and stops: a valid command says so and exits 0 without creating the run
    directory (kills: a dry run that trains, or one that writes config.json); a refused item still exits 2 (kills:
    a dry run that skips the checks); a run directory of another experiment is refused as in a real run; a finished
    unit of the same run is counted."""
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["experiment", "joint-ratio", "--quick", "--dry-run", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "dry run: joint-ratio (quick)" in res.stdout and "nothing was run" in res.stdout and "new" in res.stdout
    assert not out.exists()
    assert _refused(tmp_path, "--quick", "--dry-run", "--set", "ks=[0]").startswith("error: ")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"experiment": "scaling", "config": {}}))
    res = CliRunner().invoke(app, ["experiment", "joint-ratio", "--quick", "--dry-run", "--out", str(other)])
    assert res.exit_code == 2 and "scaling" in res.stderr
    from elastic_theory.cli.experiment_cmd import resolve_config
    from elastic_theory.infra.config import config_to_dict

    exp, config = resolve_config("joint-ratio", True, None, None, [], None, None, False)
    (out / "units").mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"experiment": "joint-ratio", "config": config_to_dict(config)}))
    (out / "units" / "a.json").write_text("{}")
    res = CliRunner().invoke(app, ["experiment", "joint-ratio", "--quick", "--dry-run", "--out", str(out)])
    assert res.exit_code == 0 and "resumes with 1 finished units" in res.stdout, res.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "units"]


def test_plot_of_a_json_result_says_what_it_is_instead_of_not_valid_json(tmp_path):
    """``plot compare.json`` said "not valid JSON" for valid JSON; a one-line track still plots as before."""
    import json

    from typer.testing import CliRunner

    from elastic_theory.cli import app

    compare_result = tmp_path / "compare.json"
    compare_result.write_text(json.dumps({"base": {}, "checkpoints": {}, "k": None}, indent=2))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"a": 1}, indent=2))
    for path, message in ((compare_result, "is a compare result, not a rate track; its plots are drawn by compare --plots DIR"),
                          (other, "is one JSON document, not a rate track")):
        result = CliRunner().invoke(app, ["plot", str(path)])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
        assert "not valid JSON" not in result.output
