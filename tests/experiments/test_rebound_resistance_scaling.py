"""Resistance, rebound and scaling in tiny configurations (seconds each): schema, checks that could fail, resume."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from elastic_theory.stats.behaviour import logit  # noqa: E402
from elastic_theory.experiments import Context  # noqa: E402
from elastic_theory.infra.config import config_to_dict  # noqa: E402
from elastic_theory.experiments.synthetic import rebound, resistance, scaling  # noqa: E402
from elastic_theory.infra.rundir import RunDir  # noqa: E402
from elastic_theory.data.synthetic import WorldConfig  # noqa: E402
from elastic_theory.infra.trainconfig import ModelConfig, StageConfig  # noqa: E402

TINY = dict(
    world=WorldConfig(vocab_size=3, length=3, prompt_length=1, n_general=4, n_prompts=3, resolution=60),
    model=ModelConfig(n_layer=1, n_embd=8, n_head=2, dtype="float64"),
    pretrain=StageConfig(optimizer="adam", lr=3e-2, steps=60, schedule="cosine"),
    finetune_lr=3e-3, batch_size=8, seeds=(0, 1),
)


def _tiny_rebound(**kw):
    return rebound.ReboundConfig(**TINY, align_amounts=(8, 64), perturb_amounts=(8, 16, 32, 64, 128),
                                 calibration_curves=10, **kw)


def _run(exp, cfg, folder):
    run = RunDir.open(folder, exp.NAME, config_to_dict(cfg))
    return exp.run(cfg, run, Context())


@pytest.mark.slow  # a training grid
def test_rebound_tiny(tmp_path):
    """More alignment raises the aligned answer's probability; negative data lowers it; both scales agree pointwise."""
    res = _run(rebound, _tiny_rebound(), tmp_path / "r")
    curves = res["curves"]
    start = {a: c[0]["probability"]["mean"] for a, c in curves.items()}
    assert start["64"] > start["8"] > res["pretrained"]["probability"]["mean"]
    for c in curves.values():
        assert c[-1]["probability"]["mean"] < c[0]["probability"]["mean"]
    unit = json.loads((tmp_path / "r" / "units" / "seed=0.json").read_text())
    for p in unit["curves"]["64"]:
        assert p["log_odds"] == pytest.approx(float(logit(p["probability"])), rel=1e-12)
    assert set(res["phases"]["by_align"]["8"]) == {"probability", "log_odds"}
    # the pre-trained model is its own reference: KL exactly 0 (not another model's outputs, e.g. the aligned one's)
    assert unit["pretrained"]["kl_to_pretrained_bits"] == 0.0
    # first drop compared as large minus small n+, per seed (not small minus large, not unpaired means of scores)
    units = [json.loads((tmp_path / "r" / "units" / f"seed={s}.json").read_text()) for s in (0, 1)]
    for scale in ("probability", "log_odds"):
        drops = [[u["curves"][a][0][scale] - u["curves"][a][1][scale] for a in ("8", "64")] for u in units]
        want = np.mean([large - small for small, large in drops])
        assert res["drop_comparison"]["first_drop"]["difference"][scale]["mean"] == pytest.approx(want, rel=1e-12)
    for a, r in res["data_to_revert"]["by_align"].items():
        assert len(r["per_seed"]) == 2 and r["min_kl_bits"]["mean"] > 0 and r["min_kl_bits"]["scale"] == "log"
        # min KL over the whole curve, n- = 0 included (the points data to revert searches)
        kl = [[p["kl_to_pretrained_bits"] for p in u["curves"][a]] for u in units]
        assert r["min_kl_bits"]["mean"] == pytest.approx(math.exp(np.mean(np.log([min(c) for c in kl]))), rel=1e-12)
    for c in curves.values():  # probabilities on the logit scale: inside (0, 1) whatever 2 seeds give
        assert all(p["probability"]["scale"] == "logit" and 0 < p["probability"]["low"] <= p["probability"]["high"] < 1
                   for p in c)
    assert {"pretrain", "align", "perturb"} == set(res["data"])
    # the pre-trained model of each seed is kept for a rerun
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == ["pretrain=1_seed=0.pt", "pretrain=1_seed=1.pt"]
    assert "| drop measure" in rebound.summarize(res)
    assert all(p.is_file() for p in rebound.plot(json.loads(json.dumps(res)), tmp_path))


@pytest.mark.slow  # two runs of the protocol
def test_rebound_resumes_after_an_interruption(tmp_path, monkeypatch):
    """Seed 0 finishes, seed 1 is interrupted; the rerun computes only seed 1 and equals an uninterrupted run."""
    cfg = _tiny_rebound()
    calls = []
    real = rebound.measure_seed

    def interrupted(config, seed, *a, **k):
        calls.append(seed)
        if seed == 1 and len(calls) == 2:
            raise KeyboardInterrupt
        return real(config, seed, *a, **k)

    monkeypatch.setattr(rebound, "measure_seed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(rebound, cfg, tmp_path / "a")
    resumed = _run(rebound, cfg, tmp_path / "a")
    assert calls == [0, 1, 1]
    fresh = _run(rebound, cfg, tmp_path / "b")
    assert json.dumps(resumed["curves"]) == json.dumps(fresh["curves"])


@pytest.mark.slow  # a chain of fine-tunings
def test_resistance_tiny(tmp_path, monkeypatch):
    from elastic_theory.empirical.sequential import SequentialWorld

    streams, original = [], SequentialWorld.finetune

    def recording(self, net, data, amounts, generator, *args, **kwargs):
        streams.append(generator.initial_seed())
        return original(self, net, data, amounts, generator, *args, **kwargs)

    monkeypatch.setattr(SequentialWorld, "finetune", recording)
    """Control targets have exactly the real targets' entropy; losses exceed the target entropy (Gibbs)."""
    cfg = resistance.ResistanceConfig(**TINY, checkpoints=(8, 32, 128), finetune_amount=32)
    res = _run(resistance, cfg, tmp_path / "s")
    assert [r["pair"] for r in res["rows"]] == ["1-2", "1-3", "2-3"]
    for r in res["rows"]:
        for side in ("forward", "inverse"):
            assert r[f"target_entropy_control_{side}"]["mean"] == pytest.approx(r[f"target_entropy_{side}"]["mean"], abs=1e-9)
            # CE(q, p) >= H(q), both bits per token: fine-tuning can approach, never beat, the target's entropy
            assert r[side]["mean"] >= r[f"target_entropy_{side}"]["mean"] - 1e-12
    unit = json.loads((tmp_path / "s" / "units" / "seed=0.json").read_text())
    h = unit["entropy_bits_per_token"]
    # per token over 3 tokens of a 3-letter alphabet: at most log2(3) = 1.58 bits (per sequence would reach 4.75)
    assert all(0 < x <= math.log2(3) for x in [*h, unit["pretrained_entropy_bits_per_token"]])
    for pair, v in unit["pairs"].items():
        i, j = int(pair[0]) - 1, int(pair[2]) - 1
        # forward trains theta_i on the later q_j, inverse theta_j on the earlier q_i (not the other way round)
        assert (v["target_entropy_forward"], v["target_entropy_inverse"]) == (h[j], h[i])
    # per seed: one alignment run, then 3 pairs x (forward, inverse, forward control, inverse control) fine-tunings;
    # all four of a pair draw their minibatches from one stream (the same random numbers), and pairs differ
    per_seed = [streams[1 + 13 * s: 13 * (s + 1)] for s in range(len(cfg.seeds))]
    assert len(streams) == 13 * len(cfg.seeds)
    for fours in per_seed:
        pair_streams = [fours[4 * p: 4 * p + 4] for p in range(3)]
        assert all(len(set(f)) == 1 for f in pair_streams) and len({f[0] for f in pair_streams}) == 3
    count = res["inverse_lower"]
    assert count["independent_comparisons"] == len(cfg.seeds) == len(count["mean_gap_per_seed"])
    gaps = [np.mean([unit["pairs"][p]["forward"] - unit["pairs"][p]["inverse"] for p in unit["pairs"]])]
    assert count["mean_gap_per_seed"][0] == pytest.approx(gaps[0], rel=1e-12)
    text = resistance.summarize(res)
    assert f"in {count['inverse_lower_seeds']}/2 seeds = 2 independent comparisons" in text
    assert "WARNING: fewer than 3 seeds" in text
    assert resistance.plot(json.loads(json.dumps(res)), tmp_path)[0].is_file()


@pytest.mark.slow  # trains a model per size and volume
def test_scaling_tiny(tmp_path):
    cfg = scaling.ScalingConfig(**TINY, sizes=((1, 4), (1, 8), (1, 16), (2, 16)), volumes=(10, 20, 40, 60),
                                align_amount=64, perturb_amount=32)
    res = _run(scaling, cfg, tmp_path / "c")
    params = [r["n_params"] for r in res["size"]]
    assert params == sorted(params) and len(set(params)) == 4
    for row in res["size"] + res["volume"]:
        assert row["aligned_probability"]["mean"] > row["pretrained_probability"]["mean"]
        assert row["drop_probability"]["mean"] > 0
    assert set(res["trend"]) == {"size", "volume"}
    unit = json.loads((tmp_path / "c" / "units" / "seed=0.json").read_text())
    for row in unit["size"] + unit["volume"]:
        # the share of the alignment gain undone: drop / (aligned - pre-trained), not drop / aligned
        gain = row["aligned"]["probability"] - row["pretrained"]["probability"]
        assert row["fraction_undone"] == pytest.approx(row["drop_probability"] / gain, rel=1e-12)
    # slope per doubling: against log2 of the parameter count (ln would be ln 2 = 0.69 times smaller)
    units = [json.loads((tmp_path / "c" / "units" / f"seed={s}.json").read_text()) for s in (0, 1)]
    slopes = [np.polyfit(np.log2([r["n_params"] for r in u["size"]]), [r["drop_log_odds"] for r in u["size"]], 1)[0]
              for u in units]
    assert res["trend"]["size"]["drop_log_odds"]["slope_per_doubling"]["mean"] == pytest.approx(np.mean(slopes), rel=1e-9)
    # scaling keeps no pre-trained state, so its run folder has no checkpoints/ folder
    assert not (tmp_path / "c" / "checkpoints").exists()
    assert len(scaling.plot(json.loads(json.dumps(res)), tmp_path)) == 2


@pytest.mark.parametrize("make, message", [
    (lambda: _tiny_rebound(eps_bits=0.0), "eps_bits must be > 0"),
    (lambda: rebound.ReboundConfig(**TINY, align_amounts=(8,)), "align_amounts needs >= 2 distinct"),
    (lambda: rebound.ReboundConfig(**TINY, perturb_amounts=(8, 16, 24, 32, 36)), "36 must be a positive multiple of batch_size = 8"),
    (lambda: resistance.ResistanceConfig(**TINY, checkpoints=(32, 8, 16)), "must increase strictly"),
    (lambda: scaling.ScalingConfig(**TINY, sizes=((1, 4), (1, 8), (1, 8), (2, 16))), ">= 4 distinct"),
    (lambda: rebound.ReboundConfig(**{**TINY, "w": (0.5, 0.2, 0.2)}), "summing to 1"),
    (lambda: rebound.ReboundConfig(**{**TINY, "finetune_optimizer": "lbfgs"}), "finetune_optimizer must be"),
])
def test_bad_configs_name_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()
