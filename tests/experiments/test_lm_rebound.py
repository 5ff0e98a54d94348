"""The rebound and data-to-revert protocols on a pretrained LM (``experiment rebound --model ...``).

End to end on a tiny GPT-2 saved to a temporary folder with 24 made-up refusal / compliance pairs
(``rebound_inputs`` of conftest.py; seconds): the expected shifts, nested perturbation data, resume, plots from
saved results (bad input: test_lm_bad_input.py). A SmolLM2 run of ``--quick`` is marked slow.
"""

import json
from pathlib import Path

import pytest

from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.experiments import get
from elastic_theory.experiments.lm._common import stream
from elastic_theory.experiments.lm._rebound_protocol import split_seed
from elastic_theory.experiments.lm.rebound import LMReboundConfig
from elastic_theory.infra.config import config_from_dict, config_to_dict
from tests import optional
from tests.experiments.experiment_inputs import (ALIGNS, PERTURBS, SEEDS, invoke, rebound_config,
                                                write_rebound_config)

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(rebound_inputs):
    """``(folder, run folder, results)``: ``rebound_inputs`` (conftest.py) and one finished run in ``run/`` (a whole
    protocol run: the tests that read it are in the slow tier)."""
    tmp, out = rebound_inputs, rebound_inputs / "run"
    result = invoke("rebound", "--model", str(tmp / "model"), "--config", str(tmp / "cfg.json"), "--out", str(out))
    assert result.exit_code == 0, result.output
    return tmp, out, json.loads((out / "results.json").read_text())


def units(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))}


@pytest.mark.slow  # reads the module's whole protocol run
def test_one_unit_per_seed_and_alignment_amount_and_one_base_unit_per_seed(tiny):
    _, out, res = tiny
    assert set(units(out)) == {f"seed={s}_align={n}" for s in SEEDS for n in ALIGNS} | {f"seed={s}_base=0" for s in SEEDS}
    assert res["experiment"] == "lm-rebound" and res["seeds"] == list(SEEDS)
    assert [p["perturb_amount"] for p in res["curves"]["4"]] == [0, *PERTURBS]
    # the options the command line wrote into the config are in the run's config.json (so a resume checks them)
    saved = json.loads((out / "config.json").read_text())
    assert saved["experiment"] == "lm-rebound" and saved["config"]["model"].endswith("model")


@pytest.mark.slow  # reads the module's whole protocol run
def test_aligning_raises_the_margin_and_perturbing_lowers_it(tiny):
    """Per seed: margin(base) < margin(n+ = 4) < margin(n+ = 12) at m = 0, and every curve ends below its start.

    Killed: swapped targets (alignment would lower the margin), a swapped margin sign, measuring a stale copy
    (the curve would be flat), keeping the last aligned model for every n+ (the two starts would be equal).
    """
    _, out, _ = tiny
    u = units(out)
    for s in SEEDS:
        base = u[f"seed={s}_base=0"]["scores"]
        small, large = (u[f"seed={s}_align={n}"]["curve"] for n in ALIGNS)
        for key in ("margin_per_token", "margin_per_response"):
            assert base[key] < small[0][key] < large[0][key], (s, key)
            for curve in (small, large):
                values = [p[key] for p in curve]
                assert values[-1] < values[0] and values == sorted(values, reverse=True), (s, key, values)
        assert small[0]["kl_bits_per_token"] > 0 and large[0]["kl_bits_per_token"] > small[0]["kl_bits_per_token"]


@pytest.mark.slow  # reads the module's whole protocol run
def test_generation_is_measured_only_where_the_config_asks(tiny):
    _, out, res = tiny
    for u in (v for k, v in units(out).items() if "align" in k):
        gen = {p["perturb_amount"]: p["generation_score"] for p in u["curve"]}
        assert all((v is None) == (m not in (0, 16)) for m, v in gen.items()), gen
        assert all(0 <= gen[m] <= 1 for m in (0, 16))
    assert res["curves"]["12"][1]["generation_score"] is None and res["curves"]["12"][3]["generation_score"] is not None


def test_streams_are_nested_and_the_pools_disjoint(rebound_inputs):
    tmp = rebound_inputs
    from elastic_theory.data.corpora import read_pairs_jsonl, split_train_measure

    pool = list(range(7))
    long = stream(pool, 30, seed=3, stage=1)
    assert stream(pool, 9, seed=3, stage=1) == long[:9]
    assert sorted(long[:7]) == pool and sorted(long[7:14]) == pool  # each pass is a permutation of the pool
    assert stream(pool, 7, seed=3, stage=0) != long[:7]  # the two stages draw different orders
    cfg = config_from_dict(LMReboundConfig, rebound_config(tmp))
    pairs = read_pairs_jsonl(tmp / "pairs.jsonl")
    data = split_seed(pairs, cfg, 0)
    prompts = [{p.prompt for p in part} for part in (data.measure, data.align_pool, data.perturb_pool)]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])
    # held out from the measurement side (half of the 24, by hash: what corpus --split measure writes), trained on
    # the whole training side: an n_measure of any size moves no prompt into training
    sides = split_train_measure(pairs, n_measure=12, seed=0)
    assert len(prompts[0]) == cfg.n_measure and prompts[0] <= {p.prompt for p in sides.measure}
    assert prompts[1] | prompts[2] == {p.prompt for p in sides.train} and len(prompts[1]) + len(prompts[2]) == 12


@pytest.mark.slow  # two runs of the protocol
def test_a_shorter_perturbation_grid_gives_the_same_points(tiny, tmp_path):
    """The first m examples of a longer perturbation run are a shorter run's data: the curve points agree.

    Killed: a learning-rate schedule that depends on the run's length, data drawn anew for each run length.
    Same seeded computation on one CPU thread, so the numbers agree to rounding of the sums (1e-9 relative).
    """
    tmp, out, _ = tiny
    cfg = write_rebound_config(tmp_path, "short", model=str(tmp / "model"), setting=str(tmp / "pairs.jsonl"),
                               perturb_amounts=[4, 8], generate_amounts=[8], seeds=[0], align_amounts=[4])
    result = invoke("lm-rebound", "--config", str(cfg), "--out", str(tmp_path / "short"))
    assert result.exit_code == 0, result.output
    short = units(tmp_path / "short")["seed=0_align=4"]["curve"]
    long = units(out)["seed=0_align=4"]["curve"]
    for a, b in zip(short, long[:3]):
        assert a["perturb_amount"] == b["perturb_amount"]
        for key in ("margin_per_token", "margin_per_response", "kl_bits_per_token"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (a["perturb_amount"], key)


@pytest.mark.slow  # two runs of the protocol
def test_resume_recomputes_nothing_and_a_lost_unit_comes_back_equal(tiny):
    tmp, out, res = tiny
    before = {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    args = ["rebound", "--model", str(tmp / "model"), "--config", str(tmp / "cfg.json"), "--out", str(out)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")} == before
    lost = out / "units" / "seed=1_align=12.json"
    saved = json.loads(lost.read_text())
    lost.unlink()
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    redone = json.loads(lost.read_text())
    for a, b in zip(saved["curve"], redone["curve"]):
        for key in ("margin_per_token", "kl_bits_per_token"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json") if p != lost} == {
        k: v for k, v in before.items() if k != lost.name}
    again = json.loads((out / "results.json").read_text())["curves"]["12"][-1]["margin_per_token"]["mean"]
    assert again == pytest.approx(res["curves"]["12"][-1]["margin_per_token"]["mean"], rel=1e-9)


@pytest.mark.slow  # reads the module's whole protocol run
def test_tracks_hold_the_alignment_set_and_the_wikipedia_proxy(tiny):
    _, out, res = tiny
    assert "tracks/seed=0_align.jsonl" in res["tracks"] and "tracks/seed=1_align=12_perturb.jsonl" in res["tracks"]
    lines = [json.loads(x) for x in (out / "tracks" / "seed=0_align.jsonl").read_text().splitlines()]
    assert {x["dataset"] for x in lines} == {"alignment", "wikipedia"}
    assert sorted({x["step"] for x in lines}) == [0, 2]  # every 2 of the 3 steps to n+ = 12, no duplicate lines
    assert len(lines) == 4
    align = [x["bits_per_token"] for x in lines if x["dataset"] == "alignment"]
    assert align[1] < align[0]  # training on the aligned responses compresses them better


@pytest.mark.slow  # reads the module's whole protocol run
def test_plot_redraws_from_saved_results(tiny):
    _, out, res = tiny
    for png in out.glob("*.png"):
        png.unlink()
    result = CliRunner().invoke(app, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "lm-rebound.png").stat().st_size > 0 and (out / "lm-data-to-revert.png").stat().st_size > 0
    summary = get("lm-rebound").summarize(res)
    assert "961" in summary and "598" in summary and "| 12 | 16 |" in summary


@pytest.mark.slow  # DPO with LoRA, then reloads every checkpoint
@pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning")  # peft on GPT-2's Conv1D, handled
def test_dpo_with_lora_runs_through_the_same_protocol(tiny, tmp_path):
    """--algorithm dpo --lora: each stage trains a fresh adapter on the merged previous one; DPO raises the margin
    during alignment and lowers it during perturbation (the stages' targets are not swapped); the saved
    checkpoints score as their curve points.

    Killed: swapped stage targets, a checkpoint saved without its adapters merged (it would score as the base
    or as the aligned model)."""
    tmp, _, _ = tiny
    out = tmp_path / "dpo"
    result = invoke("rebound", "--model", str(tmp / "model"), "--algorithm", "dpo", "--lora", "--config",
                    str(tmp / "cfg.json"), "--set", "finetune.lora_targets=[\"c_attn\"]", "--set", "finetune.lr=0.03",
                    "--seeds", "0", "--set", "align_amounts=[8]", "--set", "perturb_amounts=[4,8]", "--set",
                    "generate_amounts=[8]", "--out", str(out))
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())["config"]["finetune"]
    assert saved["algorithm"] == "dpo" and saved["lora"] is True
    u = units(out)
    curve = [p["margin_per_response"] for p in u["seed=0_align=8"]["curve"]]
    assert u["seed=0_base=0"]["scores"]["margin_per_response"] < curve[0] and curve[-1] < curve[0]
    # The saved checkpoints carry the adapters merged: the points were measured with them unmerged (W x + B A x),
    # the checkpoints compute (W + B A) x, and the margins are differences of float32 log-probability sums, so the
    # bounds are absolute (Float32Forward with the adapter's rank). Killed, on this run (the last point; bounds
    # for two evaluations, 5.3e-4 nats per token, 1.1e-2 nats per response, 1.3e-4 bits per token): a checkpoint
    # without its adapters scores as the base, off by 8.4e-3 nats per token (16 bounds), 0.16 nats per response
    # (15 bounds) and 1.1e-3 bits of KL (8.6 bounds); as the aligned model, by 0.088 nats per token (167 bounds).
    # Measured gaps (1 and 2 threads, separate processes): 1.2e-8 nats per token, 2.4e-7 per response, 6e-9 bits.
    config = config_from_dict(LMReboundConfig, json.loads((out / "config.json").read_text())["config"])
    checkpoints_score_their_points(out, config, 0, (8,), 8)


@pytest.mark.slow  # a run of the protocol with generation
def test_the_sentiment_setting_scores_generations_by_vader(tiny, tmp_path):
    """Polarity pairs share one prompt: split by name (else one distinct item, too few), one generation prompt."""
    tmp, _, _ = tiny
    cfg = write_rebound_config(tmp_path, "sent", model=str(tmp / "model"), setting="sentiment", judge="auto",
                               seeds=[0], align_amounts=[4], perturb_amounts=[4, 8], generate_amounts=[8])
    out = tmp_path / "sent"
    result = invoke("lm-rebound", "--config", str(cfg), "--out", str(out))
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["judge"] == "sentiment"
    curve = units(out)["seed=0_align=4"]["curve"]
    assert all(-1 <= p["generation_score"] <= 1 for p in curve if p["perturb_amount"] in (0, 8))
    assert curve[0]["margin_per_token"] > units(out)["seed=0_base=0"]["scores"]["margin_per_token"]


def test_the_recorded_configs_are_the_full_defaults():
    for name in ("lm-rebound", "lm-data-to-revert"):
        saved = json.loads((ROOT / "experiments" / f"{name}.json").read_text())
        assert saved == {"experiment": name, "config": config_to_dict(get(name).full())}
    assert get("lm-data-to-revert").full().perturb_amounts[-1] > get("lm-rebound").full().perturb_amounts[-1]


@pytest.mark.slow
@optional.SMOLLM2
def test_smollm2_quick_run(tmp_path):
    out = tmp_path / "quick"
    result = invoke("rebound", "--model", "smollm2-135m", "--quick", "--seeds", "0", "--set", "align_amounts=[4]",
                    "--out", str(out))  # one alignment amount: the real model's path, not the comparison of two
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["model"]["name"] == "smollm2-135m" and res["lora"] is True
    for curve in res["curves"].values():
        assert curve[-1]["margin_per_token"]["mean"] < curve[0]["margin_per_token"]["mean"]


def checkpoints_score_their_points(out: Path, config: LMReboundConfig, seed: int, aligns, last: int) -> None:
    """Each saved checkpoint of ``seed`` (every n+ at m = 0 and m = ``last``), loaded the way ``compare`` loads it,
    scores the margins and the KL its curve recorded, within twice the float32 bounds of one evaluation
    (:class:`~elastic_theory.theory.tolerances.Float32Forward` of the checkpoint and the base, over the longest measured
    sequence; absolute for the margins, differences of float32 sums)."""
    from elastic_theory.empirical.behaviour_logprobs import response_token_ids
    from elastic_theory.empirical.finetune import SIDES
    from elastic_theory.empirical.loading import load_model_and_tokenizer
    from elastic_theory.experiments.lm._common import load_pairs
    from elastic_theory.experiments.lm._rebound_protocol import Measurer
    from elastic_theory.theory.tolerances import Float32Forward

    base, tok = load_model_and_tokenizer(config.model, device="cpu")
    data = split_seed(load_pairs(config.setting), config, seed)
    measure = Measurer(base, tok, data, config)
    encoded = [response_token_ids(tok, p.prompt, getattr(p, side)) for p in data.measure for side in SIDES]
    longest = max(len(ids) for ids, _ in encoded)
    response = max(len(ids) - start for ids, start in encoded)
    u = units(out)
    for n in aligns:
        curve = u[f"seed={seed}_align={n}"]["curve"]
        for point in (curve[0], curve[-1]):
            assert point["perturb_amount"] in (0, last)
            model, _ = load_model_and_tokenizer(out / "checkpoints" / f"seed={seed}_align={n}_perturb="
                                                f"{point['perturb_amount']}", device="cpu")
            got = measure(model, generate=False)
            f32 = Float32Forward.of(model, base, context=longest,
                                    adapter_rank=config.finetune.lora_r if config.finetune.lora else 0)
            for key, unit in (("margin_per_token", "token"), ("margin_per_response", "response")):
                tol = 2 * f32.margin_tolerance(response, unit, len(data.measure))
                assert got[key] == pytest.approx(point[key], rel=0, abs=tol), (n, point["perturb_amount"], key)
            kl = max(got["kl_bits_per_token"], point["kl_bits_per_token"])
            assert got["kl_bits_per_token"] == pytest.approx(point["kl_bits_per_token"], rel=0,
                                                             abs=2 * f32.kl_bits_tolerance(kl)), (n, point["perturb_amount"])


@pytest.mark.slow  # reads the module's whole protocol run
def test_saved_checkpoints_are_the_measured_models(tiny):
    """The first seed's aligned models (m = 0) and its models after the largest m are saved, and each scores
    the margin and KL its curve recorded, within the float32 bounds, after a round trip through the loader
    ``compare`` uses (the LoRA case: :func:`test_dpo_with_lora_runs_through_the_same_protocol`).

    Killed: saving the base or a stale copy instead of the trained state, saving for every seed (disk), naming
    the folder after the wrong amount. On this run the base is off by 310 to 1090 bounds in the margin per
    token (41 to 163 in the KL), the other saved amount of the same n+ by 1170 to 1480 (100 to 155 in the KL).
    """
    tmp, out, _ = tiny
    names = {p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")}
    assert names == {f"seed={SEEDS[0]}_align={n}_perturb={m}" for n in ALIGNS for m in (0, PERTURBS[-1])}
    checkpoints_score_their_points(out, config_from_dict(LMReboundConfig, rebound_config(tmp)), SEEDS[0], ALIGNS,
                                   PERTURBS[-1])


@pytest.mark.slow  # the whole real-model analysis, its phase fits included: about 4 s on a loaded machine
def test_refusal_rates_and_kl_get_bounded_intervals_from_hand_made_units(monkeypatch):
    """The analysis alone, on units where two seeds refuse 0 and 2 of 4 generation prompts and KL starts within eps:
    the refusal rate's interval lies in (0, 1) (counted: empirical logit over the 4 prompts), every KL interval is
    positive, min KL takes the m = 0 point (0.005 and 0.006, within eps: data to revert 0 for both seeds), and the
    summary says it rests on 2 seeds with a warning and shows the per-seed amounts where there is no interval.

    Killed: raw t-intervals (the rate's would be 0.25 [-2.93, 3.43], the KL's below 0 at m = 0); min KL over m > 0
    (0.2); an amount interval of two zeros (width 0) or "not reached" for seeds that reverted at once."""
    import math

    from elastic_theory.experiments.lm import _rebound_analysis
    from elastic_theory.experiments.lm.rebound import LMReboundConfig

    monkeypatch.setattr(_rebound_analysis, "CALIBRATION_CURVES", 2)  # the phase analysis's counts, not what this
    monkeypatch.setattr(_rebound_analysis, "N_RESAMPLES", 19)  # test checks: kept small so it runs in a second
    amounts = (0, 8, 16, 24, 32, 40, 48, 56)
    config = LMReboundConfig(judge="refusal_rate", align_amounts=(8,), perturb_amounts=amounts[1:], seeds=(0, 1),
                             n_measure=4, n_generate=4, generate_amounts=(56,))
    base = [{"seed": s, "n_generate": 4, "scores": {"margin_per_token": -1.0, "margin_per_response": -5.0,
                                                   "generation_score": 0.0}} for s in (0, 1)]

    def curve(rate, kl0, seed):
        return [{"perturb_amount": m, "margin_per_token": 1.0 - 0.5 * math.log1p(m) + 0.01 * seed,
                 "margin_per_response": 5.0 - 2 * math.log1p(m) - 0.02 * seed,
                 "kl_bits_per_token": kl0 if m == 0 else 0.2 + m / 100, "generation_score": g}
                for m, g in ((m, rate if m == 0 else 0.0 if m == 56 else None) for m in amounts)]
    units = {8: [{"seed": 0, "curve": curve(0.0, 0.005, 0)}, {"seed": 1, "curve": curve(0.5, 0.006, 1)}]}
    res = _rebound_analysis.analyse(config, base, units)
    rate = res["curves"]["8"][0]["generation_score"]
    assert rate["scale"] == "logit" and 0 < rate["low"] < rate["high"] < 1
    assert all(p["kl_bits_per_token"]["low"] > 0 for p in res["curves"]["8"])
    entry = res["data_to_revert"]["by_align"]["8"]
    assert entry["min_kl_bits_per_token"]["mean"] == pytest.approx(math.sqrt(0.005 * 0.006))
    assert entry["kl"]["per_seed"] == [0.0, 0.0] and entry["kl"]["interval"] is None
    text = _rebound_analysis.summarize({**res, "experiment": "lm-rebound", "model": {"name": "m"}, "setting": "safety",
                                        "algorithm": "sft", "lora": True, "judge": "refusal_rate"})
    assert "95% t-intervals over 2 seeds (WARNING: fewer than 3 seeds" in text and "per seed 0, 0 (reached in 2/2" in text
