"""Run directories: config first, units computed once, other runs (and other thread counts) refused."""

import json
import re

import pytest

from elastic_theory.infra.provenance import package_versions
from elastic_theory.infra.rundir import RunDir, RunDirRefused, read_run, unit_key


def test_unit_is_computed_once_and_survives_reopening(tmp_path):
    calls = []
    run = RunDir.open(tmp_path / "r", "exp", {"a": 1, "t": (1, 2)})

    def compute():
        calls.append(1)
        return {"x": 0.5, "inf": float("inf")}

    # io.to_jsonable's encoding: null, with the reason under the value's JSON Pointer in "non_finite"
    stored = {"x": 0.5, "inf": None, "non_finite": {"/inf": "inf"}}
    assert run.unit("u", compute) == stored
    again = RunDir.open(tmp_path / "r", "exp", {"a": 1, "t": [1, 2]})  # tuple and list are the same config
    assert again.unit("u", compute) == stored and calls == [1]
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert "git_commit" in prov and len(prov["resumed"]) == 1
    assert prov["versions"] == package_versions()  # the versions every command's result file records, not a subset
    assert read_run(tmp_path / "r")[:2] == ("exp", {"a": 1, "t": [1, 2]})


def test_read_unit_reads_a_finished_unit_and_refuses_a_missing_one(tmp_path):
    """read_unit gives what unit() saved (after a reopen too) and never computes: a unit not finished is an error."""
    run = RunDir.open(tmp_path / "r", "exp", {"a": 1})
    saved = run.unit("u", lambda: {"x": 0.5, "nan": float("nan")})
    assert run.read_unit("u") == saved == {"x": 0.5, "nan": None, "non_finite": {"/nan": "nan"}}
    assert RunDir.open(tmp_path / "r", "exp", {"a": 1}).read_unit("u") == saved
    with pytest.raises(RuntimeError, match=r"unit 'v' has not finished in the run directory .*r \(no .*v\.json\)"):
        run.read_unit("v")
    assert not run.has_unit("v")


def test_refuses_another_experiment_or_configuration(tmp_path):
    RunDir.open(tmp_path / "r", "exp", {"a": 1})
    with pytest.raises(ValueError, match="holds a run of experiment 'exp', not 'other'"):
        RunDir.open(tmp_path / "r", "other", {"a": 1})
    with pytest.raises(ValueError, match=r"different configuration \(differs in: a\)"):
        RunDir.open(tmp_path / "r", "exp", {"a": 2})
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="non-empty folder without a run's config.json"):
        RunDir.check(tmp_path / "junk", "exp", {})


def test_unit_key_is_a_safe_file_name():
    assert unit_key(k=4.0, l=0.1, seed=0) == "k=4.0_l=0.1_seed=0"
    assert "/" not in unit_key(path="a/b c")


def test_thread_count_is_part_of_a_runs_identity(tmp_path):
    """A run records its torch thread count; it resumes with the same count and refuses another before writing."""
    run = RunDir.open(tmp_path / "r", "exp", {"a": 1}, threads=1)
    run.write_results({"x": 1.0})
    assert json.loads((tmp_path / "r" / "config.json").read_text())["threads"] == 1
    assert json.loads((tmp_path / "r" / "results.json").read_text()) == {"x": 1.0, "threads": 1}
    RunDir.open(tmp_path / "r", "exp", {"a": 1}, threads=1)
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    assert prov["threads"] == 1 and [r["threads"] for r in prov["resumed"]] == [1]
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    message = f"{tmp_path / 'r'} was run with 1 torch threads, not 2"
    with pytest.raises(RunDirRefused, match=re.escape(message)) as refused:
        RunDir.open(tmp_path / "r", "exp", {"a": 1}, threads=2)
    assert (refused.value.reason, refused.value.path, refused.value.saved_threads, refused.value.threads) == (
        "other_threads", tmp_path / "r", 1, 2)
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before


def test_a_run_from_before_threads_were_recorded_keeps_the_count_its_provenance_saw(tmp_path):
    """config.json without "threads": the count is the torch_threads its provenance.json recorded at the start."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"experiment": "exp", "config": {"a": 1}}))
    (folder / "provenance.json").write_text(json.dumps({"torch_threads": 2}))
    with pytest.raises(RunDirRefused, match="was run with 2 torch threads, not 1"):
        RunDir.check(folder, "exp", {"a": 1}, threads=1)
    assert RunDir.check(folder, "exp", {"a": 1}, threads=2) == folder
