"""The capacity experiment: its verdicts on hand-made numbers (a wrong-k prediction is flagged), a small run end to end,
sharded and in one process."""

import json
import math

import pytest
import scipy.stats  # noqa: F401  # imported at collection, not inside the first test (seed_interval imports it lazily)
from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.experiments import get
from elastic_theory.experiments.synthetic._capacity_analysis import cell_summary, verdict
from elastic_theory.experiments.synthetic.capacity import summarize_rows


def _rows(deltas, predicted=(0.02, -0.005), wrong=(0.02, -0.00125), l=0.1, kl=(0.3, 0.001)):
    """One cell's rows: per seed the l = 0 control and the l model, measured changes ``deltas[seed] = (da, dp)``."""
    rows = []
    for seed, (da, dp) in enumerate(deltas):
        for ll, scale in ((0.0, 0.0), (l, 1.0)):
            rows.append({
                "capacity": "1x4", "model": 0, "n_parameters": 500, "k": 4.0, "k_wrong": 16.0, "l": ll, "seed": seed,
                "gamma_align": 3.0 + scale * da, "gamma_pretrain": 3.5 + scale * dp,
                "gamma_align_heldout": 3.3 + scale * da, "gamma_pretrain_heldout": 3.9 + scale * dp,
                "gamma_align_optimum": 2.0 + scale * predicted[0], "gamma_pretrain_optimum": 2.5 + scale * predicted[1],
                "gamma_align_optimum_wrong_k": 2.1 + scale * wrong[0], "gamma_pretrain_optimum_wrong_k": 2.6 + scale * wrong[1],
                "kl_train_bits": kl[seed % 2] + 0.01 * scale, "kl_heldout_bits": 5.0, "kl_heldout_floor_bits": 1.0,
            })
    return rows


def test_a_measurement_matching_its_own_data_agrees_and_the_wrong_k_control_is_flagged():
    """R_meas = R_pred of the same data (4) within 2% in each of 3 seeds: agrees; the same numbers against the
    prediction of the data at k = 16 (R = 16) are flagged. Kills a verdict that passes anything (the control would
    agree) and one that compares with the wrong k's prediction (the real cell would be flagged)."""
    cell = cell_summary(_rows([(0.0202, -0.005), (0.0198, -0.005), (0.02, -0.00505)]), tolerance=0.1)
    assert cell["n_seeds"] == 3 and cell["agrees"] and not cell["wrong_k_agrees"]
    assert cell["R_predicted"] == [pytest.approx(4.0)] * 3 and cell["R_predicted_wrong_k"] == [pytest.approx(16.0)] * 3
    assert cell["wrong_k_R_over_R_pred"] == [pytest.approx(r / 4.0) for r in cell["R_over_R_pred"]]
    assert cell["signs_as_predicted"] == [True] * 3
    # the train KL of a seed is the larger of its two compared models
    assert cell["kl_train_bits"] == [pytest.approx(0.31), pytest.approx(0.011), pytest.approx(0.31)]


def test_one_seed_with_the_wrong_sign_flags_the_cell_even_when_the_mean_ratio_fits():
    """Signs are per seed: a seed with dgamma_p > 0 where the prediction is < 0 flags the cell (kills a verdict on means)."""
    cell = cell_summary(_rows([(0.02, -0.005), (0.02, -0.005), (-0.02, 0.005)]), tolerance=0.1)
    assert cell["signs_as_predicted"] == [True, True, False] and not cell["agrees"]
    assert cell["R_over_R_pred"] == [pytest.approx(1.0)] * 3  # the ratio alone cannot see it


def test_verdict_tolerance_is_relative_to_each_seeds_own_prediction():
    """Each seed is compared with its own prediction (kills comparing every seed with seed 0's)."""
    v = verdict([0.02, 0.04], [-0.005, -0.005], [0.02, 0.04], [-0.005, -0.005], tolerance=0.05)
    assert v["agrees"] and v["R_over_R_pred"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert not verdict([0.02, 0.04], [-0.005, -0.005], [0.02, 0.02], [-0.005, -0.005], tolerance=0.05)["agrees"]
    assert not verdict([0.02], [0.0], [0.02], [-0.005], tolerance=0.05)["agrees"]  # infinite measured ratio


def test_summary_table_counts_seeds_and_warns_under_three():
    rows = _rows([(0.0202, -0.005), (0.0198, -0.005)])
    results = {"n_align": 10, "w": [0.6, 0.2, 0.2], "l_star": 0.25, "tolerance": 0.1, "summary": summarize_rows(rows, 0.1)}
    text = get("capacity").summarize(results)
    line = next(x for x in text.splitlines() if x.startswith("| 1x4"))
    assert "| 4 | 0.1 | 2 | 2/2 |" in line and "| agrees |" in line and "k = 16: flagged" in line
    assert "Warning: cells with 2 seed(s)" in text


TINY = ["--quick", "--set", "ks=[4]", "--set", "seeds=[0,1]", "--set", 'models=[{"n_layer": 1, "n_embd": 2, "n_head": 1}, '
        '{"n_layer": 1, "n_embd": 4, "n_head": 1}]', "--set", 'base=[{"optimizer": "adam", "lr": 0.02, "steps": 20}]',
        "--set", 'perturb=[{"optimizer": "adam", "lr": 0.02, "steps": 5}]', "--no-progress"]


def _units(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}


def _rows_without_time(out):
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow  # four tiny capacity runs, each building the quick world (about 15 s)
def test_shards_split_the_cells_and_the_run_without_shard_collects_them(tmp_path):
    """--shard 0/2 and 1/2 on one run directory compute disjoint shares of the (model, k, seed) cells and write no
    results; the same command without --shard then trains nothing (no unit file added or rewritten) and writes the
    results a one-process run writes (but for the seconds). Killed: shards that each compute every cell (shard 0 alone
    would leave no unit missing), shards that miss a cell (the collecting run would train it), a collected result
    that differs from one process's."""
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    first = CliRunner().invoke(app, ["experiment", "capacity", *TINY, "--shard", "0/2", "--out", str(sharded)])
    assert first.exit_code == 0, first.output
    assert "shard 0/2: its units are saved" in first.output and not (sharded / "results.json").exists()
    after_first = _units(sharded)
    second = CliRunner().invoke(app, ["experiment", "capacity", *TINY, "--shard", "1/2", "--out", str(sharded)])
    assert second.exit_code == 0, second.output
    after_second = _units(sharded)
    assert {k: after_second[k] for k in after_first} == after_first  # shard 1 left shard 0's units alone
    assert 0 < len(after_first) < len(after_second)
    collect = CliRunner().invoke(app, ["experiment", "capacity", *TINY, "--out", str(sharded)])
    assert collect.exit_code == 0, collect.output
    assert _units(sharded) == after_second  # nothing trained: every unit came from a shard
    alone = CliRunner().invoke(app, ["experiment", "capacity", *TINY, "--out", str(single)])
    assert alone.exit_code == 0, alone.output
    assert _rows_without_time(sharded) == _rows_without_time(single)
    # the run end to end (the quick config with fewer models and steps; the whole quick run is docs/experiments.md's
    # command, a dry run in the suite): a cell per (model, k, l > 0) over both seeds, the plot, an underfitting model
    # (train KL above 0.1 bits), each seed's own finite prediction, and the warning for fewer than 3 seeds
    res = json.loads((single / "results.json").read_text())
    assert (single / "capacity.png").is_file() and (sharded / "capacity.png").is_file()
    cells = res["summary"]
    assert len(cells) == 2 * 1 * 2 and all(c["n_seeds"] == 2 for c in cells)
    assert max(max(c["kl_train_bits"]) for c in cells) > 0.1
    assert all(math.isfinite(r) for c in cells for r in c["R_predicted"])
    assert "Warning: cells with 2 seed(s)" in get("capacity").summarize(res)


@pytest.mark.parametrize(("args", "message"), [
    (["capacity", "--quick", "--shard", "2/2"], "0 <= I < N"),
    (["capacity", "--quick", "--shard", "one/2"], "expected I/N"),
    (["joint-ratio", "--quick", "--shard", "0/2"], "joint-ratio computes its units in one process"),
])
def test_bad_shard_is_one_line_before_any_work(tmp_path, args, message):
    result = CliRunner().invoke(app, ["experiment", *args, "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_experiment_under_a_launcher_is_refused(tmp_path, monkeypatch):
    """Under torchrun (WORLD_SIZE = 2) each process would run the whole experiment into one folder: refused in one
    line, before a run folder exists, naming --shard."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["experiment", "capacity", "--quick", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--shard I/N" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_shard_plans_partition_the_cells_and_balance_their_cost():
    """Every cell in exactly one shard, for 1 to 5 shards, and the largest shard's cost exceeds the mean by less
    than the largest cell (Graham's bound for longest-first); one process owns every cell."""
    from elastic_theory.experiments import Context

    cells = [(m, k, s) for m in range(4) for k in (4.0, 16.0, 64.0) for s in range(3)]
    costs = [(10 ** m) * (k + 1.5) for m, k, _ in cells]
    assert Context().owned(cells, costs) == set(cells)
    for n in range(1, 6):
        shares = [Context(shard=(i, n)).owned(cells, costs) for i in range(n)]
        assert sorted(c for share in shares for c in share) == sorted(cells)
        loads = [sum(costs[cells.index(c)] for c in share) for share in shares]
        assert max(loads) - sum(costs) / n < max(costs)
