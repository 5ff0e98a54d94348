"""sequential-ratio's signs-first analysis (per-seed sign outcomes, the ratio over both-right seeds, the slope over
seed chains) and its direction controls (one step of the same norm along D_t, D_a, D_p and a random direction)."""

import json
import math

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.data.synthetic import WorldConfig
from elastic_theory.experiments import get
from elastic_theory.experiments.synthetic._sequential_ratio_analysis import (
    scaling_over_seed_chains,
    scaling_slopes,
    sign_outcome,
    summary_rows,
)
from elastic_theory.experiments.synthetic.sequential_ratio import SequentialRatioConfig
from elastic_theory.infra.config import config_to_dict
from elastic_theory.infra.trainconfig import ModelConfig, StageConfig


def _row(k, seed, da, dp, arm="sgd lr=1e-05", step=1):
    return {"k": k, "seed": seed, "arm": arm, "step": step, "delta_gamma_align": da, "delta_gamma_pretrain": dp,
            "ratio": da / -dp, "l_eff": 0.01, "R_finite_predicted_at_l_eff": k, "kl_to_p_leff_bits": 1e-9,
            "base_kl_to_optimum_bits": 1e-12, "kl_sign_threshold_bits": 1e-6}


def test_sign_outcomes_name_which_rate_moved_the_wrong_way():
    # kills: judging by the ratio's sign alone (both wrong gives a positive ratio), or counting a zero change as right
    assert sign_outcome(1e-3, -1e-4) == "both right"
    assert sign_outcome(-1e-3, 1e-4) == "both wrong"
    assert sign_outcome(-1e-3, -1e-4) == "gamma_a wrong"
    assert sign_outcome(1e-3, 1e-4) == "gamma_p wrong"
    assert sign_outcome(0.0, -1e-4) == "gamma_a wrong" and sign_outcome(1e-3, 0.0) == "gamma_p wrong"
    assert sign_outcome(math.nan, -1e-4) == "gamma_a wrong"


def test_a_seed_with_both_signs_wrong_is_counted_as_such_and_left_out_of_the_ratio_and_the_slope():
    """Seed 1 at k = 64 moved both rates the wrong way (ratio 56 > 0, as in the issue's rerun): it is its own outcome,
    and neither the ratio at k = 64 nor the slope uses it. Kills: keeping every positive ratio."""
    rows = []
    for seed, scale in ((0, 1.0), (1, 1.1), (2, 0.95)):
        for k in (4.0, 16.0, 64.0):
            rows.append(_row(k, seed, 1e-4 * scale * k, -1e-4))
    rows[5] = _row(64.0, 1, -5.6e-3, 1e-4)  # both wrong, ratio +56
    assert rows[5]["ratio"] == pytest.approx(56.0)
    at64 = next(s for s in summary_rows(rows, []) if s["k"] == 64.0)
    assert at64["sign_counts"] == {"both right": 2, "gamma_a wrong": 0, "gamma_p wrong": 0, "both wrong": 1}
    assert at64["signs_per_seed"][1] == {"seed": 1, "signs": "both wrong"}
    assert at64["n_both_right"] == 2 and at64["ratio_both_right"] == pytest.approx(64 * (1.0 + 0.95) / 2)
    assert at64["ratio"] != pytest.approx(at64["ratio_both_right"])  # the all-seed mean (kept under "ratio") includes it
    (slope,) = scaling_over_seed_chains(rows)
    assert slope["n_both_right"] == 8 and slope["n_points"] == 9
    assert [p["n_points"] for p in slope["per_seed"]] == [3, 2, 3]
    assert slope["slope"] == pytest.approx(1.0, abs=1e-12)  # seed 1's two right points lie on ratio = 1.1 k
    (pooled,) = scaling_slopes(rows)
    assert pooled["n_positive"] == 9 and pooled["slope"] != pytest.approx(1.0, abs=1e-3)


def test_slope_interval_is_the_t_interval_of_per_seed_slopes_not_the_pooled_fit():
    """Three seeds, each an exact line ln R = a_s + b_s ln k with b_s = 0.8, 1.0, 1.3: the slope is their mean and its
    interval the Student-t interval over the 3 slopes (t_{0.975,2}). Kills: pooling the 9 points as independent (narrower)."""
    ks, slopes, rows = (4.0, 16.0, 64.0), (0.8, 1.0, 1.3), []
    for seed, b in enumerate(slopes):
        rows += [_row(k, seed, 1e-4 * k ** b, -1e-4) for k in ks]
    (s,) = scaling_over_seed_chains(rows)
    assert [p["slope"] for p in s["per_seed"]] == pytest.approx(list(slopes), abs=1e-12)
    half = stats.t.ppf(0.975, 2) * np.std(slopes, ddof=1) / math.sqrt(3)
    assert s["slope"] == pytest.approx(np.mean(slopes)) and s["slope_ci95"] == pytest.approx(
        [np.mean(slopes) - half, np.mean(slopes) + half])
    (pooled,) = scaling_slopes(rows)
    assert pooled["slope"] == pytest.approx(s["slope"])  # same centre here, but 9 "independent" points give a narrower interval
    assert pooled["slope_ci95"][1] - pooled["slope_ci95"][0] < 0.8 * (s["slope_ci95"][1] - s["slope_ci95"][0])
    # one seed: a slope but no interval
    (one,) = scaling_over_seed_chains([r for r in rows if r["seed"] == 0])
    assert one["slope"] == pytest.approx(0.8) and one["slope_ci95"] is None


TINY_WORLD = WorldConfig(vocab_size=2, length=3, min_length=2, prompt_length=1, n_prompts=2, resolution=24)


@pytest.mark.slow  # trains two tiny bases and fine-tunes them
def test_direction_controls_give_ratio_k_for_every_direction_but_reinforce_alignment_along_d_a(tmp_path):
    """One step of the same norm along D_a lowers gamma_a (alignment reinforced: signs not both right) while its
    first-order ratio is still R(k, 0), as along D_p and a random direction; the D_t control is the arm's own first step.
    Kills: controls that take a different step size, start from another base, or report a ratio that differs by
    direction (the identity says it cannot at a stationary point)."""
    cfg = SequentialRatioConfig(
        world=TINY_WORLD, model=ModelConfig(n_layer=1, n_embd=16, n_head=1), ks=(4.0, 16.0), seeds=(0,),
        base=(StageConfig("adam", 3e-2, 100), StageConfig("lbfgs", 1.0, 150, "constant")),
        base_warm=(StageConfig("lbfgs", 1.0, 150, "constant"),),
        arms=(StageConfig("sgd", 1e-5, 2, "constant"),), report_steps=(1, 2),
    )
    path = tmp_path / "seq.json"
    path.write_text(json.dumps({"experiment": "sequential-ratio", "config": config_to_dict(cfg)}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["experiment", "sequential-ratio", "--config", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    r0 = {f["k"]: f["R_predicted_l0"] for f in res["first_order"]}
    for k in (4.0, 16.0):
        c = {x["direction"]: x for x in res["direction_controls"] if x["k"] == k}
        assert set(c) == {"D_t", "D_a", "D_p", "random"}
        (row,) = [r for r in res["rows"] if r["k"] == k and r["step"] == 1]
        assert c["D_t"]["delta_gamma_align"] == pytest.approx(row["delta_gamma_align"], rel=1e-9)
        assert c["D_t"]["delta_gamma_pretrain"] == pytest.approx(row["delta_gamma_pretrain"], rel=1e-9)
        assert all(x["step_norm"] == pytest.approx(c["D_t"]["step_norm"], rel=1e-12) for x in c.values())
        assert all(x["first_order_ratio"] == pytest.approx(r0[k], rel=1e-2) for x in c.values())
        assert c["D_a"]["delta_gamma_align"] < 0 and sign_outcome(c["D_a"]["delta_gamma_align"],
                                                                  c["D_a"]["delta_gamma_pretrain"]) != "both right"
        assert c["D_a"]["ratio"] == pytest.approx(r0[k], rel=0.2)  # one small step: still near k
        assert c["D_p"]["delta_gamma_pretrain"] < 0  # descent on D_p lowers gamma_p
    summary = {(s["k"], s["direction"]): s for s in res["direction_controls_summary"]}
    assert summary[(4.0, "D_a")]["sign_counts"]["both right"] == 0
    text = get("sequential-ratio").summarize(res)
    assert "|D_p| grad CE_p + |D_a| grad CE_a = 0" in text and "Stationarity check" in text and "Direction controls" in text
