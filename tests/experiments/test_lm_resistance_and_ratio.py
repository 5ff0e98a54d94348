"""lm-resistance and lm-ratio: the analysis on hand-made units, end to end on a tiny local model
(``resistance_and_ratio_inputs`` of conftest.py), resume, and a slow SmolLM2 smoke test of --quick (bad input:
test_lm_bad_input.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import torch
from scipy import stats
from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.experiments.lm._ratio_analysis import analyse as analyse_ratio
from elastic_theory.experiments.lm._ratio_analysis import fieller_seed_ratio
from elastic_theory.experiments.lm._ratio_analysis import summarize as summarize_ratio
from elastic_theory.experiments.lm.ratio import LMRatioConfig
from elastic_theory.experiments.lm.resistance import LMResistanceConfig, verdict
from elastic_theory.experiments.lm.resistance import analyse as analyse_resistance
from elastic_theory.theory.tolerances import Float32Forward, sum_tolerance32
from elastic_theory.infra.trainconfig import FinetuneConfig
from tests import optional
from tests.experiments.experiment_inputs import invoke, write_config

# ------------------------------------------------------------------ resistance analysis on hand-made units
OWN = [0.1, 0.5, 0.9]  # own loss h_j of each checkpoint's outputs (nats/token)
NOISE = {0: 0.0, 1: 0.013, 2: -0.007}


def _resistance_units() -> list[dict]:
    """forward(theta_i <- q_j) = h_j + 0.2 + e, inverse(theta_j <- q_i) = h_i + 0.3 + e': raw gap h_j - h_i - 0.1 > 0
    (inverse lower), controlled gap (F - h_j) - (I - h_i) = -0.1 + noise < 0 (inverse higher once the targets' own
    loss is subtracted)."""
    units = []
    for seed, e in NOISE.items():
        pairs = {}
        for i, j in ((0, 1), (0, 2), (1, 2)):
            f = OWN[j] + 0.2 + e
            inv = OWN[i] + 0.3 - e
            pairs[f"{i + 1}-{j + 1}"] = {
                "forward": {"train_loss_mean": f, "train_loss_final": f - 0.05, "target_nll_after": f - 0.1,
                            "target_nll_before": f + 1.0},
                "inverse": {"train_loss_mean": inv, "train_loss_final": inv - 0.05, "target_nll_after": inv - 0.1,
                            "target_nll_before": inv + 1.0},
            }
        units.append({"seed": seed, "own_nll_per_token": list(OWN), "distinct_outputs": [4, 4, 4], "pairs": pairs})
    return units


def _cfg(algorithm: str = "sft") -> LMResistanceConfig:
    return LMResistanceConfig(finetune=FinetuneConfig(algorithm=algorithm, batch_size=8), checkpoints=(8, 16, 32))


def test_resistance_raw_and_controlled_gaps_are_forward_minus_inverse_with_the_right_own_loss():
    """Raw: inverse lower in every (seed, pair), verdict holds; controlled: reversed, verdict fails.

    Killed: forward and inverse swapped (raw verdict fails, count 0/9); the control subtracting h_i from the forward
    loss and h_j from the inverse (controlled gap 2(h_j - h_i) - 0.1 > 0, holds); no control at all (same as raw)."""
    res = analyse_resistance(_cfg(), _resistance_units())
    noise = np.array(list(NOISE.values()))
    for row in res["rows"]:
        i, j = (int(c) - 1 for c in row["pair"].split("-"))
        e = row["losses"]["train_loss_mean"]
        assert e["gap_forward_minus_inverse"]["mean"] == pytest.approx(OWN[j] - OWN[i] - 0.1 + 2 * noise.mean(), abs=1e-12)
        assert e["controlled_gap"]["mean"] == pytest.approx(-0.1 + 2 * noise.mean(), abs=1e-12)
        assert e["verdict"] == "holds" and e["controlled_verdict"] == "fails"
        assert row["forward"] == f"theta{i + 1} <- q{j + 1}" and row["inverse"] == f"theta{j + 1} <- q{i + 1}"
    counts = res["inverse_lower"]["train_loss_mean"]
    assert {k: (c["inverse_lower_seeds"], c["independent_comparisons"]) for k, c in counts.items()} == {
        "raw": (3, 3), "controlled": (0, 3)}  # seeds, not the 9 (seed, pair) cells
    assert counts["raw"]["seed_comparison_pairs"] == "9/9" and counts["controlled"]["every_comparison_seeds"] == 0
    # per seed, mean over pairs of the raw gap h_j - h_i - 0.1 + 2e: pairs (0,1), (0,2), (1,2) give 0.4, 0.8, 0.4
    assert counts["raw"]["mean_gap_per_seed"] == pytest.approx([(0.4 + 0.8 + 0.4) / 3 - 0.1 + 2 * e for e in NOISE.values()])


def test_resistance_dpo_training_loss_gets_no_per_token_control():
    """DPO's logged loss is nats per pair: subtracting a per-token own loss would mix units, so it is reported raw;
    the per-token target NLL still gets the control."""
    res = analyse_resistance(_cfg("dpo"), _resistance_units())
    row = res["rows"][0]["losses"]
    assert "controlled_gap" not in row["train_loss_mean"] and "controlled_gap" in row["target_nll_after"]
    assert "controlled" not in res["inverse_lower"]["train_loss_mean"]
    assert res["units"]["train_loss"] == "nats per pair (DPO loss)"


@pytest.mark.parametrize(("low", "high", "expected"), [(0.01, 0.2, "holds"), (-0.2, -0.01, "fails"),
                                                       (-0.01, 0.2, "inconclusive"), (math.nan, math.nan, "inconclusive")])
def test_verdict_reads_the_interval_of_forward_minus_inverse(low, high, expected):
    assert verdict({"mean": 0.0, "low": low, "high": high, "n": 3}) == expected


# ------------------------------------------------------------------ ratio analysis on hand-made units
PRETRAIN = 1.0e6


def _ratio_units(alpha: float = 1.0) -> dict[int, list[dict]]:
    """Per seed s and n+: d gamma_a = c_s * k^alpha * d, d gamma_p = -d (d = 1e-7 bits/token), so R = c_s k^alpha;
    base-model rates far from the aligned ones (a ratio taken from the base would differ)."""
    units = {}
    for n, tokens in ((8, 400), (32, 1600), (64, 3200)):
        k = PRETRAIN / tokens
        us = []
        for seed, c in ((0, 1.0e-3), (1, 1.3e-3), (2, 0.8e-3)):
            dp = 1e-2
            da = c * k**alpha * dp
            us.append({"seed": seed, "align_tokens": tokens, "align_response_tokens": tokens // 4,
                       "rates": {"base": {"alignment": {"bits_per_token": 9.0}, "wikipedia": {"bits_per_token": 4.0},
                                          "alignment_responses": {"bits_per_token": 7.0}},
                                 "aligned": {"alignment": {"bits_per_token": 2.0}, "wikipedia": {"bits_per_token": 4.5},
                                             "alignment_responses": {"bits_per_token": 1.0}},
                                 "perturbed": {"alignment": {"bits_per_token": 2.0 + da},
                                               "wikipedia": {"bits_per_token": 4.5 - dp},
                                               "alignment_responses": {"bits_per_token": 1.0 + 3 * da}}}})
        units[n] = us
    return units


def test_ratio_uses_the_change_from_aligned_to_perturbed_and_k_in_tokens():
    """R_meas = mean(d gamma_a) / -mean(d gamma_p) with d = perturbed - aligned; k = |D_p| / alignment tokens.

    Killed: rates before alignment (base) instead of after (R would be (2 + da - 9) / (4 - 4.5 + dp) < 0); k per
    response (|D_p| / n+, 50x larger); k in response tokens (4x larger); the sign convention of THEORY (R > 0 when
    d gamma_a > 0 > d gamma_p)."""
    cfg = LMRatioConfig(pretrain_tokens=PRETRAIN, align_amounts=(8, 32, 64), seeds=(0, 1, 2))
    res = analyse_ratio(cfg, _ratio_units())
    for n, tokens in ((8, 400), (32, 1600), (64, 3200)):
        row = res["by_align"][str(n)]
        k = PRETRAIN / tokens
        assert row["k"] == pytest.approx(k, rel=1e-12)
        assert row["k_response_tokens"] == pytest.approx(4 * k, rel=1e-12)
        assert row["R_meas"]["value"] == pytest.approx(np.mean([1.0e-3, 1.3e-3, 0.8e-3]) * k, rel=1e-9)
        assert row["R_over_k"] == pytest.approx(np.mean([1.0e-3, 1.3e-3, 0.8e-3]), rel=1e-9)
        assert row["sign_counts"] == {"both right": 3, "gamma_a wrong": 0, "gamma_p wrong": 0, "both wrong": 0}
        assert row["R_meas_both_right"]["value"] == pytest.approx(row["R_meas"]["value"], rel=1e-12)
        assert row["responses"]["R_meas"]["value"] == pytest.approx(3 * row["R_meas"]["value"], rel=1e-9)
        assert row["responses"]["R_over_k"] == pytest.approx(3 * row["R_over_k"] / 4, rel=1e-9)
    slope = res["slope_ln_R_vs_ln_k"]
    assert slope["per_seed"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-9)


def test_a_seed_with_both_signs_wrong_is_counted_apart_and_kept_out_of_the_ratio_and_the_slope():
    """Seed 1's changes flipped at n+ = 32 (gamma_a fell, gamma_p rose): its ratio is still positive, c k, so a
    summary that looks at the ratio's sign only would keep it. Signs first: it is a "both wrong" seed at that n+,
    the both-right ratio there is the mean over seeds 0 and 2 only, and seed 1 drops out of the slope (its chain of
    fine-tunings from one base is one unit: a wrong point removes the seed, not the point)."""
    cfg = LMRatioConfig(pretrain_tokens=PRETRAIN, align_amounts=(8, 32, 64), seeds=(0, 1, 2))
    units = _ratio_units()
    flipped = units[32][1]["rates"]
    for d in ("alignment", "wikipedia", "alignment_responses"):
        a = flipped["aligned"][d]["bits_per_token"]
        flipped["perturbed"][d]["bits_per_token"] = 2 * a - flipped["perturbed"][d]["bits_per_token"]
    res = analyse_ratio(cfg, units)
    row = res["by_align"]["32"]
    assert row["sign_counts"]["both wrong"] == 1 and row["sign_counts"]["both right"] == 2
    assert [p["signs"] for p in row["signs_per_seed"]] == ["both right", "both wrong", "both right"]
    k = PRETRAIN / 1600
    assert row["R_meas_both_right"]["value"] == pytest.approx(np.mean([1.0e-3, 0.8e-3]) * k, rel=1e-9)
    assert row["R_meas_both_right"]["n_seeds"] == 2
    assert row["R_meas"]["per_seed"][1] > 0  # the flipped seed's ratio alone looks fine
    slope = res["slope_ln_R_vs_ln_k"]
    assert slope["seeds_defined"] == "2/3" and math.isnan(slope["per_seed"][1])
    res.update(experiment="lm-ratio", model={"name": "tiny"}, setting="hand-made units", algorithm="sft", lora=False)
    text = summarize_ratio(res)
    assert "1 both wrong" in text and "(2 seeds)" in text and "2/3" in text


def test_ratio_slope_recovers_a_power_other_than_one():
    """R = c k^0.5: slope 0.5 in every seed, the verdict says it differs from the predicted 1 (a fit of ln R against
    ln n+ instead of ln k would give -0.5)."""
    cfg = LMRatioConfig(pretrain_tokens=PRETRAIN, align_amounts=(8, 32, 64), seeds=(0, 1, 2))
    slope = analyse_ratio(cfg, _ratio_units(alpha=0.5))["slope_ln_R_vs_ln_k"]
    assert slope["per_seed"] == pytest.approx([0.5, 0.5, 0.5], abs=1e-9)
    assert slope["verdict"] == "differs from 1"


def _fieller_t(num, den, level=0.95):
    """Fieller's set {r : (N - rD)^2 <= t^2 (v_NN - 2 r v_ND + r^2 v_DD)} solved directly (numpy roots)."""
    n = len(num)
    t2 = stats.t.ppf(0.5 + level / 2, n - 1) ** 2
    v = np.cov(np.vstack([num, den]), ddof=1) / n
    N, D = np.mean(num), np.mean(den)
    roots = np.roots([D**2 - t2 * v[1, 1], -2 * (N * D - t2 * v[0, 1]), N**2 - t2 * v[0, 0]])
    return sorted(roots.real)


def test_fieller_seed_ratio_uses_students_t_and_the_covariance_of_the_means():
    """Against the quadratic solved directly with t^2 (3 seeds: t = 4.30, z = 1.96 would give an interval less than
    half as wide; a covariance of the values instead of the means would be sqrt(3) times too wide)."""
    num, den = [2.0, 2.6, 1.7], [1.0, 1.2, 0.95]
    got = fieller_seed_ratio(num, den)
    assert got["value"] == pytest.approx(np.mean(num) / np.mean(den), rel=1e-12)
    assert got["ci95"] == pytest.approx(_fieller_t(num, den), rel=1e-9)
    assert got["per_seed"] == pytest.approx([2.0, 2.6 / 1.2, 1.7 / 0.95], rel=1e-12)
    assert fieller_seed_ratio([1.0, -1.0, 0.5], [0.1, -0.1, 0.02])["ci95"] is None  # denominator not resolved from 0
    assert fieller_seed_ratio([1.0], [2.0])["ci95"] is None
    # 2 seeds: t = 12.71, whose normal tail 2e-37 is below float64's spacing at 1, so a level handed on as
    # 2 Phi(t) - 1 rounds to 1.0 (z = inf) and the set becomes the whole line; the interval must still be t^2's.
    num2, den2 = [2.0, 2.6], [1.0, 1.1]
    assert fieller_seed_ratio(num2, den2)["ci95"] == pytest.approx(_fieller_t(num2, den2), rel=1e-9)


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (LMResistanceConfig, {"checkpoints": (16, 8, 32)}, "strictly increasing"),
    (LMResistanceConfig, {"finetune_amount": 10}, "multiple of finetune.batch_size"),
    (LMResistanceConfig, {"n_prompts": 0}, "n_prompts"),
    (LMRatioConfig, {"pretrain_tokens": 0.0}, "pretrain_tokens"),
    (LMRatioConfig, {"pretrain_tokens": math.inf}, "pretrain_tokens"),
    (LMRatioConfig, {"align_amounts": (8, 8)}, "distinct"),
    (LMRatioConfig, {"perturb_amount": 6}, "multiple of finetune.batch_size"),
])
def test_configs_refuse_bad_values(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_pretrain_tokens_default_is_each_built_in_models_own():
    """k's numerator: SmolLM2's 2T and Gemma 3 270M's 6T from their model cards (not one figure for both: a Gemma run
    with SmolLM2's figure would put k, and every R/k, off by 3x without a word), an explicit value as given, and no
    default at all for a model that is not built in (refused before any work, naming the option)."""
    from elastic_theory.experiments.lm._ratio_analysis import pretrain_tokens_of

    assert pretrain_tokens_of(LMRatioConfig())[0] == 2.0e12
    assert pretrain_tokens_of(LMRatioConfig(model="gemma3-270m"))[0] == 6.0e12
    assert "6 trillion" in pretrain_tokens_of(LMRatioConfig(model="gemma3-270m"))[1]
    assert pretrain_tokens_of(LMRatioConfig(model="gemma3-270m", pretrain_tokens=1.5e12)) == (
        1.5e12, "the run's config (pretrain_tokens)")
    with pytest.raises(ValueError, match="--set pretrain_tokens=N"):
        LMRatioConfig(model="runs/my-checkpoint")
    assert pretrain_tokens_of(LMRatioConfig(model="runs/my-checkpoint", pretrain_tokens=3e9))[0] == 3e9


def test_analysis_takes_k_from_the_models_figure():
    """The same units analysed as a Gemma 3 run and as a SmolLM2 run: k differs by exactly 6T/2T = 3 and R/k by 1/3
    (the analysis reads the resolved figure, not the config field that is None), and results.json names its source."""
    units = _ratio_units()
    gemma = analyse_ratio(LMRatioConfig(model="gemma3-270m", align_amounts=(8, 32, 64), seeds=(0, 1, 2)), units)
    smol = analyse_ratio(LMRatioConfig(align_amounts=(8, 32, 64), seeds=(0, 1, 2)), units)
    assert gemma["pretrain_tokens"] == 6.0e12 and smol["pretrain_tokens"] == 2.0e12
    assert "model card" in gemma["pretrain_tokens_source"]
    for n in ("8", "32", "64"):
        assert gemma["by_align"][n]["k"] == pytest.approx(3 * smol["by_align"][n]["k"], rel=1e-15)


def test_full_configs_are_in_the_experiments_folder():
    """test_experiments checks every experiments/NAME.json against its defaults; here: both files are there."""
    root = Path(__file__).resolve().parents[2] / "experiments"
    for name in ("lm-resistance", "lm-ratio"):
        assert json.loads((root / f"{name}.json").read_text())["experiment"] == name


# ------------------------------------------------------------------ end to end on a tiny local model
TINY_FT = FinetuneConfig(lr=1e-2, batch_size=4, max_length=128)


def _model_and_pairs(inputs: Path) -> tuple[Path, Path]:
    """The model folder and the pairs file of ``resistance_and_ratio_inputs`` (conftest.py)."""
    return inputs / "model", inputs / "pairs.jsonl"


def _resistance_config(model, data, **kw):
    base = dict(model=str(model), setting=str(data), finetune=TINY_FT, checkpoints=(4, 8, 12), n_prompts=4,
                finetune_amount=8, max_new_tokens=8, seeds=(0, 1))
    return LMResistanceConfig(**{**base, **kw})


def _ratio_config(model, data, **kw):
    base = dict(model=str(model), setting=str(data), finetune=TINY_FT, align_amounts=(4, 20), perturb_amount=8,
                n_perturb_pool=8, n_wikipedia=2, pretrain_tokens=1.0e6, track_every=1, seeds=(0, 1))
    return LMRatioConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def resistance_run(resistance_and_ratio_inputs, tmp_path_factory):
    model, data = _model_and_pairs(resistance_and_ratio_inputs)
    tmp = tmp_path_factory.mktemp("res")
    cfg = write_config(tmp / "cfg.json", "lm-resistance", _resistance_config(model, data))
    out = tmp / "run"
    result = invoke("resistance", "--model", model, "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    return cfg, out, result.output


@pytest.mark.slow  # trains a chain of checkpoints
def test_resistance_end_to_end_on_a_tiny_model(resistance_run, resistance_and_ratio_inputs):
    """`experiment resistance --model DIR` runs lm-resistance: every pair's losses are the logged per-step losses
    (mean and last), both directions train the same number of steps, and the summary, units and plot exist."""
    model = resistance_and_ratio_inputs / "model"
    _, out, output = resistance_run
    res = json.loads((out / "results.json").read_text())
    assert res["experiment"] == "lm-resistance" and res["seeds"] == [0, 1]
    assert [r["pair"] for r in res["rows"]] == ["1-2", "1-3", "2-3"]
    for seed in (0, 1):
        unit = json.loads((out / "units" / f"seed={seed}.json").read_text())
        assert len(unit["outputs"]) == 3 and all(len(o) == 4 for o in unit["outputs"])
        for pair in unit["pairs"].values():
            for d in pair.values():
                assert len(d["losses"]) == 8 // 4
                assert d["train_loss_mean"] == pytest.approx(np.mean(d["losses"]), rel=1e-12)
                assert d["train_loss_final"] == d["losses"][-1]
                assert all(math.isfinite(v) and v > 0 for v in d["losses"])
    assert "inverse < forward" in output and (out / "lm-resistance.png").is_file()
    assert CliRunner().invoke(app, ["plot", str(out)]).exit_code == 0


@pytest.mark.slow  # two runs of the protocol
def test_resistance_resume_recomputes_nothing(resistance_run, resistance_and_ratio_inputs, monkeypatch):
    """A finished run reloads every unit (no model is loaded); a deleted unit is the only one recomputed."""
    from elastic_theory.experiments.lm import _common as lm_common

    model = resistance_and_ratio_inputs / "model"
    cfg, out, _ = resistance_run
    first = json.loads((out / "results.json").read_text())
    monkeypatch.setattr(lm_common, "load_base", lambda *a: pytest.fail("a finished run loaded the model"))
    result = invoke("resistance", "--model", model, "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    again = json.loads((out / "results.json").read_text())
    assert again["rows"] == first["rows"] and again["inverse_lower"] == first["inverse_lower"]
    kept = (out / "units" / "seed=0.json").read_bytes()
    (out / "units" / "seed=1.json").unlink()
    calls = []
    monkeypatch.undo()
    real = lm_common.load_base
    monkeypatch.setattr(lm_common, "load_base", lambda *a: calls.append(a) or real(*a))
    result = invoke("resistance", "--model", model, "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and (out / "units" / "seed=0.json").read_bytes() == kept
    assert (out / "units" / "seed=1.json").is_file()


@pytest.mark.slow  # DPO fine-tuning runs
def test_resistance_with_dpo_runs_and_keeps_the_dpo_loss_raw(resistance_and_ratio_inputs, tmp_path, monkeypatch):
    """--algorithm dpo: chosen = the target checkpoint's output, rejected = the trained one's own; the logged loss
    is DPO's (ln 2 at the first step, where the policy is its own reference), reported without the per-token control.

    At the first step each z = beta [(lp_w - lp0_w) - (lp_l - lp0_l)] is a difference of two float32 evaluations of
    the same sums: |z| <= beta * 2 margin_tolerance(n), Float32Forward of each model as its fine-tuning starts
    (recorded as each starts), and -log sigmoid is 1-Lipschitz; the float32 mean of 4 adds gamma_8 ln 2."""
    from elastic_theory.empirical.behaviour_logprobs import response_token_ids
    from elastic_theory.experiments.lm import resistance as lm_resistance

    tolerances = []
    real = lm_resistance.finetune_losses

    def recording(net, tokenizer, examples, config, *args, **kwargs):
        n = max(len(ids) - start for ids, start in (response_token_ids(tokenizer, p.prompt, getattr(p, side))
                                                    for p in examples for side in ("aligned", "unaligned")))
        f32 = Float32Forward.of(net, context=config.max_length)
        tolerances.append(config.beta * 2 * f32.margin_tolerance(n) + sum_tolerance32(8, 4 * math.log(2)) / 4)
        return real(net, tokenizer, examples, config, *args, **kwargs)

    monkeypatch.setattr(lm_resistance, "finetune_losses", recording)
    model, data = _model_and_pairs(resistance_and_ratio_inputs)
    cfg = write_config(tmp_path / "cfg.json", "lm-resistance",
                       _resistance_config(model, data, checkpoints=(4, 8), seeds=(0,)))
    out = tmp_path / "run"
    result = invoke("resistance", "--model", model, "--algorithm", "dpo", "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["algorithm"] == "dpo" and res["units"]["train_loss"] == "nats per pair (DPO loss)"
    unit = json.loads((out / "units" / "seed=0.json").read_text())
    for d in unit["pairs"]["1-2"].values():  # the largest bound of the seed's runs: 0.047 nats; measured gap 2e-9
        assert d["losses"][0] == pytest.approx(math.log(2), rel=0, abs=max(tolerances))
    losses = res["rows"][0]["losses"]
    assert "controlled_gap" not in losses["train_loss_mean"] and "controlled_gap" in losses["target_nll_after"]
    assert CliRunner().invoke(app, ["plot", str(out)]).exit_code == 0  # one seed: saved bounds are null


@pytest.fixture(scope="module")
def ratio_run(resistance_and_ratio_inputs, tmp_path_factory):
    model, data = _model_and_pairs(resistance_and_ratio_inputs)
    tmp = tmp_path_factory.mktemp("ratio")
    config = _ratio_config(model, data)
    cfg = write_config(tmp / "cfg.json", "lm-ratio", config)
    out = tmp / "run"
    result = invoke("ratio", "--model", model, "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    return config, cfg, out, result.output


@pytest.mark.slow  # trains per seed and amount
def test_ratio_end_to_end_measures_exactly_the_documents_trained_on(ratio_run, resistance_and_ratio_inputs):
    """gamma_a is the pooled bits per token of the distinct alignment documents trained on (prompt_text + aligned),
    recomputed here with score_documents on the base model; |D_a| counts their tokens with repeats; R_meas is
    mean(d gamma_a) / -mean(d gamma_p) of the units.

    Killed: a mean of per-document rates (documents differ in length), documents of another split or order,
    |D_a| counted in examples, or in distinct documents only (n+ = 20 exceeds the 16-prompt alignment pool: the
    stream's second pass repeats 4 documents, trained on twice and scored once); the response tokens of
    k_response_tokens counted over distinct responses only, or with the prompt's tokens."""
    from elastic_theory.data.corpora import read_pairs_jsonl, split_train_measure
    from elastic_theory.empirical.behaviour_logprobs import response_token_ids
    from elastic_theory.empirical.data import check_documents
    from elastic_theory.empirical.finetune import prompt_text
    from elastic_theory.empirical.loading import load_model_and_tokenizer
    from elastic_theory.empirical.scoring import encode_documents, score_documents
    from elastic_theory.experiments.lm._common import pooled_nll_per_token
    from elastic_theory.experiments.lm._common import stream

    config, _, out, output = ratio_run
    model, data = _model_and_pairs(resistance_and_ratio_inputs)
    net, tok = load_model_and_tokenizer(str(model))
    res = json.loads((out / "results.json").read_text())
    pairs = read_pairs_jsonl(data)
    for seed in (0, 1):
        pool = split_train_measure(pairs, n_measure=config.n_perturb_pool, seed=seed, measure_fraction=None).train
        for n in config.align_amounts:
            unit = json.loads((out / "units" / f"seed={seed}_align={n}.json").read_text())
            docs = [prompt_text(tok, p.prompt) + p.aligned for p in stream(pool, n, seed, 0)]
            assert unit["align_tokens"] == sum(len(ids) for ids in encode_documents(tok, check_documents(docs)))
            assert unit["distinct_align_documents"] == len(set(docs)) == min(n, len(pool))
            response_ids = [response_token_ids(tok, p.prompt, p.aligned) for p in stream(pool, n, seed, 0)]
            assert unit["align_response_tokens"] == sum(len(ids) - start for ids, start in response_ids)
            scores = score_documents(net, tok, list(dict.fromkeys(docs)))
            n_tokens = sum(s.n_tokens for s in scores)
            pooled = sum(s.bits for s in scores) / n_tokens
            per_doc = np.mean([s.bits / s.n_tokens for s in scores])
            distinct = list(dict.fromkeys(stream(pool, n, seed, 0)))
            longest = max(max(len(ids) for ids, _ in response_ids), max(s.n_tokens for s in scores) + 1)
            f32 = Float32Forward.of(net, context=longest)
            # Two float32 evaluations (the run's and this one) of a rate over N tokens, 2 sum_tolerance(N)/N in bits
            # (0.013 bits per token: logits up to 34 nats here; measured gap 0). The mean of per-document rates (the
            # wrong formula) is 1.9 to 11 bounds from the pooled rate on these documents: outside the tolerance.
            tol = 2 * f32.sum_tolerance(n_tokens) / n_tokens / math.log(2)
            assert abs(pooled - per_doc) > tol
            assert unit["rates"]["base"]["alignment"]["bits_per_token"] == pytest.approx(pooled, rel=0, abs=tol)
            responses = pooled_nll_per_token(net, tok, distinct) / math.log(2)
            n_response = sum(len(ids) - start for ids, start in
                             (response_token_ids(tok, p.prompt, p.aligned) for p in distinct))
            assert unit["rates"]["base"]["alignment_responses"]["bits_per_token"] == pytest.approx(
                responses, rel=0, abs=2 * f32.sum_tolerance(n_response) / n_response / math.log(2))
    for n in config.align_amounts:
        us = [json.loads((out / "units" / f"seed={s}_align={n}.json").read_text()) for s in (0, 1)]
        da = [u["rates"]["perturbed"]["alignment"]["bits_per_token"] - u["rates"]["aligned"]["alignment"]["bits_per_token"]
              for u in us]
        dp = [u["rates"]["perturbed"]["wikipedia"]["bits_per_token"] - u["rates"]["aligned"]["wikipedia"]["bits_per_token"]
              for u in us]
        row = res["by_align"][str(n)]
        assert row["R_meas"]["value"] == pytest.approx(np.mean(da) / -np.mean(dp), rel=1e-9)
        assert row["k"] == pytest.approx(np.mean([config.pretrain_tokens / u["align_tokens"] for u in us]), rel=1e-12)
    assert res["slope_ln_R_vs_ln_k"] is not None and "slope of ln R_meas" in output
    assert (out / "lm-ratio.png").is_file() and res["tracks"]
    assert CliRunner().invoke(app, ["plot", str(out)]).exit_code == 0
    for track in res["tracks"]:
        assert (out / track).is_file() and (out / track).read_text().strip()


@pytest.mark.slow  # two runs of the protocol
def test_ratio_resume_recomputes_nothing(ratio_run, resistance_and_ratio_inputs, monkeypatch):
    from elastic_theory.experiments.lm import _common as lm_common

    model = resistance_and_ratio_inputs / "model"
    _, cfg, out, _ = ratio_run
    first = json.loads((out / "results.json").read_text())
    monkeypatch.setattr(lm_common, "load_base", lambda *a: pytest.fail("a finished run loaded the model"))
    result = invoke("ratio", "--model", model, "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "results.json").read_text())["by_align"] == first["by_align"]


def test_pooled_nll_is_total_nats_over_total_response_tokens(resistance_and_ratio_inputs):
    """Against a forward pass per pair; responses of different lengths so a mean of per-pair rates differs."""
    from elastic_theory.data.corpora import PreferencePair
    from elastic_theory.empirical.behaviour_logprobs import response_token_ids
    from elastic_theory.empirical.loading import load_model_and_tokenizer
    from elastic_theory.experiments.lm._common import pooled_nll_per_token

    model = resistance_and_ratio_inputs / "model"
    net, tok = load_model_and_tokenizer(str(model))
    pairs = [PreferencePair("a", "Question 1?", "No.", "x"),
             PreferencePair("b", "Question 2?", "I'm sorry, I can't help with thing 2 at all, ever.", "x")]
    nats, tokens, per_pair = 0.0, 0, []
    for p in pairs:
        ids, start = response_token_ids(tok, p.prompt, p.aligned)
        with torch.no_grad():
            logp = torch.log_softmax(net(torch.tensor([ids])).logits[0].double(), -1)
        nll = -float(sum(logp[t - 1, ids[t]] for t in range(start, len(ids))))
        nats, tokens = nats + nll, tokens + len(ids) - start
        per_pair.append(nll / (len(ids) - start))
    # two float32 evaluations, 2 sum_tolerance(n)/n nats per token (0.012 here; measured gap 2e-5 bounds); the
    # mean of per-pair rates is 164 bounds away
    longest = max(len(response_token_ids(tok, p.prompt, p.aligned)[0]) for p in pairs)
    tol = 2 * Float32Forward.of(net, context=longest).sum_tolerance(tokens) / tokens
    assert pooled_nll_per_token(net, tok, pairs) == pytest.approx(nats / tokens, rel=0, abs=tol)
    assert abs(nats / tokens - np.mean(per_pair)) > 2 * tol


# ------------------------------------------------------------------ SmolLM2 (slow)
@pytest.mark.slow
@optional.SMOLLM2
@pytest.mark.parametrize("name", ["resistance", "ratio"])
def test_smollm2_quick_runs(name, tmp_path):
    """--quick of each protocol on SmolLM2-135M, one seed of it and its smallest amounts, finishes and writes its
    results: the real model's path through loading, LoRA fine-tuning (its q_proj/v_proj targets, the chat template),
    generation and scoring (the analysis over seeds is tested on hand-made units above;
    docs/experiments.md's two-seed commands run as dry runs in tests/test_docs_commands.py, as pasted with
    RUN_LONG_COMMANDS=1)."""
    out = tmp_path / name
    smaller = {"resistance": ["--set", "checkpoints=[4,8]", "--set", "finetune_amount=4", "--set", "n_prompts=2",
                              "--set", "max_new_tokens=6"],  # one optimizer step per direction
               "ratio": ["--set", "align_amounts=[4]", "--set", "n_wikipedia=1"]}[name]  # the path, not the numbers
    result = CliRunner().invoke(app, ["experiment", name, "--model", "smollm2-135m", "--quick", "--seeds", "0",
                                      *smaller, "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    key = "inverse_lower" if name == "resistance" else "by_align"
    assert res[key] and res["model"]["name"]
