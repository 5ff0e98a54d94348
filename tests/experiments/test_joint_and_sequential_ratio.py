"""Experiments on trained transformers: derived agreement with the theory, resume after a kill, plots, bad input.

The end-to-end run trains a 1-layer, 16-wide GPT-2 on a 12-sequence world (seconds).
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from elastic_theory.cli import app
from elastic_theory.experiments import get
from elastic_theory.experiments.synthetic._joint_ratio_analysis import rate_error_bound_bits
from elastic_theory.experiments.synthetic.joint_ratio import JointRatioConfig
from elastic_theory.experiments.synthetic.sequential_ratio import fit_effective_l
from elastic_theory.data.synthetic import SyntheticWorld, WorldConfig
from elastic_theory.infra.trainconfig import ModelConfig, StageConfig
from tests.experiments.experiment_inputs import write_config

ROOT = Path(__file__).resolve().parents[2]

# Variable lengths (2 or 3 tokens + end token): the per-token R differs from the per-response R, so a unit
# mix-up shows; k = 4, l = 0.2 < l* = 0.25.
TINY = JointRatioConfig(
    world=WorldConfig(vocab_size=2, length=3, min_length=2, prompt_length=1, n_prompts=2, resolution=24),
    model=ModelConfig(n_layer=1, n_embd=16, n_head=1), ks=(4.0,), ls=(0.2,), l_ratio=0.2, seeds=(0,),
    base=(StageConfig("adam", 3e-2, 100), StageConfig("lbfgs", 1.0, 150, "constant")),
    base_warm=(StageConfig("lbfgs", 1.0, 150, "constant"),),
    perturb=(StageConfig("lbfgs", 1.0, 150, "constant"),), influence=False,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jr")
    cfg = write_config(tmp / "tiny.json", "joint-ratio", TINY)
    out = tmp / "run"
    result = CliRunner().invoke(app, ["experiment", "joint-ratio", "--config", str(cfg), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return tmp, out, json.loads((out / "results.json").read_text())


@pytest.mark.slow  # trains to the joint optimum
def test_tiny_joint_ratio_agrees_within_the_derived_bound(tiny_run):
    """Measured rate changes equal the joint optimum's for the same data within rate_error_bound_bits of each model's KL."""
    _, out, res = tiny_run
    world = SyntheticWorld(TINY.world)
    d = world.datasets(4, 0.2, TINY.w)
    n = d.pretrain.size + d.align.size
    rows = {r["l"]: r for r in res["rows"]}
    bounds = {}
    for l, r in rows.items():
        total = n + l * d.align.size
        # The KL is a float64 sum of p(x) * (log p(x) - log q(x)); its rounding is a few eps times sum p |log p| = H,
        # so 8 eps H (~1e-15 bits) stands for it. The bound then is ~1e-7, 10^5 below the effect: even a rounding
        # 1000x larger would not decide the test.
        rounding = 8 * np.finfo(np.float64).eps * world.datasets(4, l, TINY.w).union.tree(world.config.data_vocab_size).entropy()
        for role, share in (("align", d.align.size / total), ("pretrain", d.pretrain.size / total)):
            mean_len = float((d.role(role).probs * [len(s) for s in d.role(role).sequences]).sum())
            bounds[(l, role)] = rate_error_bound_bits(r["kl_to_optimum_bits"], share, mean_len, rounding)
            assert abs(r[f"gamma_{role}"] - r[f"gamma_{role}_optimum"]) <= bounds[(l, role)]
            # what the summary's certificate reads: the share and mean length of the data trained on, and a rounding
            # allowance of 8 eps times the cross-entropy (= H at the optimum); kills a run() saving other ones
            assert r[f"share_{role}"] == pytest.approx(share, rel=1e-12)
            assert r[f"mean_length_{role}"] == pytest.approx(mean_len, rel=1e-12)
            assert r["kl_rounding_bits"] == pytest.approx(rounding, rel=1e-6)
    da_pred = rows[0.2]["gamma_align_optimum"] - rows[0.0]["gamma_align_optimum"]
    dp_pred = rows[0.2]["gamma_pretrain_optimum"] - rows[0.0]["gamma_pretrain_optimum"]
    ea, ep = bounds[(0.2, "align")] + bounds[(0.0, "align")], bounds[(0.2, "pretrain")] + bounds[(0.0, "pretrain")]
    # the bound must be far tighter than the effect, or the test could not tell right from wrong
    assert ea < 0.1 * da_pred and ep < 0.1 * -dp_pred
    s = res["summary"][0]
    lo, hi = (da_pred - ea) / -(dp_pred - ep), (da_pred + ea) / -(dp_pred + ep)
    assert lo <= s["R_measured"] <= hi
    # converged: the summary certifies the seed, with the bound-to-signal ratio of these bounds and this interval
    da = rows[0.2]["gamma_align"] - rows[0.0]["gamma_align"]
    dp = rows[0.2]["gamma_pretrain"] - rows[0.0]["gamma_pretrain"]
    assert s["bound_to_signal"] == pytest.approx(max(ea / abs(da), ep / abs(dp)), rel=1e-6)
    assert s["certified_per_seed"] == [True] and s["verdict"] == "certified" and s["seeds_not_certified"] == []
    (interval,) = s["R_certified_interval_per_seed"]
    assert interval[0] <= s["R_predicted"] <= interval[1]
    # the per-token prediction is not the per-response one here (mean lengths differ): a unit mix-up would miss
    pm = d.perturbation_model()
    per_response = (pm.rates(pm.align, 0.2).cross_entropy_bits - pm.rates(pm.align, 0.0).cross_entropy_bits) / -(
        pm.rates(pm.pretrain, 0.2).cross_entropy_bits - pm.rates(pm.pretrain, 0.0).cross_entropy_bits)
    assert s["R_predicted"] == pytest.approx(da_pred / -dp_pred, rel=1e-12)
    assert not lo <= per_response <= hi
    # the data files hold exactly what was trained on
    assert rows[0.2]["data"]["perturb"].endswith("perturb.jsonl") and (out / rows[0.2]["data"]["perturb"]).stat().st_size > 0


@pytest.mark.slow  # trains a tiny joint-ratio run
def test_summary_names_the_seeds_beyond_the_kl_sign_threshold(tiny_run):
    """Each seed's KL and the threshold of joint_ratio.sign_kl_threshold_bits are in results.json; a seed beyond it is
    named in the printed summary with its KL."""
    from elastic_theory.experiments.synthetic._joint_ratio_analysis import sign_kl_threshold_bits

    _, _, res = tiny_run
    (s,) = res["summary"]
    rows = {r["l"]: r for r in res["rows"]}
    d = {l: SyntheticWorld(TINY.world).datasets(4, l, TINY.w) for l in (0.0, 0.2)}
    mean_length = float((d[0.0].pretrain.probs * [len(x) for x in d[0.0].pretrain.sequences]).sum())
    threshold = sign_kl_threshold_bits(s["delta_gamma_pretrain_predicted"],
                                       [d[l].pretrain.size / d[l].union.size for l in (0.0, 0.2)], mean_length)
    assert s["kl_sign_threshold_bits_per_seed"] == [pytest.approx(threshold, rel=1e-12)]
    assert s["kl_to_optimum_bits_per_seed"] == [max(rows[0.0]["kl_to_optimum_bits"], rows[0.2]["kl_to_optimum_bits"])]
    assert s["seeds_beyond_kl_threshold"] == ([0] if s["kl_to_optimum_bits_per_seed"][0] > threshold else [])
    summarize = get("joint-ratio").summarize
    far = {**res, "summary": [{**s, "kl_to_optimum_bits_per_seed": [0.02], "seeds_beyond_kl_threshold": [0]}]}
    assert f"k = 4, seed 0: KL 0.02 bits > {threshold:.2g}" in summarize(far)
    assert "certify" not in summarize({**res, "summary": [{**s, "seeds_beyond_kl_threshold": []}]})


@pytest.mark.slow  # a killed subprocess and a rerun
def test_resume_after_a_kill_gives_identical_results(tiny_run, tmp_path):
    tmp, _, reference = tiny_run
    cfg = tmp / "tiny.json"
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "elastic_theory", "experiment", "joint-ratio", "--config", str(cfg),
                             "--out", str(out), "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((out / "units").glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    assert done and not (out / "results.json").exists()
    result = CliRunner().invoke(app, ["experiment", "joint-ratio", "--config", str(cfg), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert {p: (out / "units" / p).stat().st_mtime_ns for p in done} == done  # finished units were not recomputed
    resumed = json.loads((out / "results.json").read_text())

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(resumed["rows"]) == strip(reference["rows"]) and resumed["summary"] == reference["summary"]


def _as_run_returned(saved: dict) -> dict:
    """Results read back from results.json with each value listed under ``non_finite`` (saved as null) restored."""
    out = json.loads(json.dumps(saved))
    for pointer, reason in out.pop("non_finite", {}).items():
        *path, last = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        parent = out
        for token in path:
            parent = parent[int(token) if isinstance(parent, list) else token]
        parent[int(last) if isinstance(parent, list) else last] = float(reason)
    return out


@pytest.mark.slow  # trains the tiny joint-ratio and sequential-ratio runs
def test_summary_of_results_read_back_with_nulls_is_the_summary_of_the_run(tiny_run):
    """A non-finite value is saved as null (io.to_jsonable); summarizing results.json as read back gives the text that
    the results run() returned give. Without influence, the influence ratio is nan."""
    _, out, _ = tiny_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"][0]["R_influence_l0"] is None and saved["non_finite"]["/summary/0/R_influence_l0"] == "nan"
    summarize = get("joint-ratio").summarize
    assert summarize(saved) == summarize(_as_run_returned(saved))
    assert "| nan (pred. " in summarize(saved)


def test_plot_redraws_from_saved_results_and_from_a_tracker_file(tiny_run, tmp_path):
    _, out, _ = tiny_run
    for png in out.glob("*.png"):
        png.unlink()
    result = CliRunner().invoke(app, ["plot", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["joint_ratio_R.png", "joint_ratio_changes.png"]
    track = tmp_path / "rates.jsonl"
    track.write_text("".join(json.dumps({"step": s, "dataset": d, "bits_per_token": 2.0 - 0.1 * s, "bits_per_byte": 0.5})
                             + "\n" for s in range(3) for d in ("wiki", "news")))
    result = CliRunner().invoke(app, ["plot", str(track)])
    assert result.exit_code == 0 and (tmp_path / "rates.png").stat().st_size > 1000
    track.write_text('{"step": 1}\n')
    result = CliRunner().invoke(app, ["plot", str(track)])
    assert result.exit_code == 2 and "needs step, dataset and bits_per_token" in result.output


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_run_resumes_only_with_the_thread_count_it_was_run_with(tiny_run):
    """The thread count is part of a run's identity: another count is refused (exit 2, one line, nothing written),
    the same count resumes and recomputes nothing."""
    tmp, out, reference = tiny_run
    args = ["experiment", "joint-ratio", "--config", str(tmp / "tiny.json"), "--out", str(out), "--no-progress"]
    before = _files(out)
    refused = CliRunner().invoke(app, [*args, "--threads", "2"])
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert f"--out {out} was run with --threads 1; rerun with --threads 1 to resume it, or give another --out" in refused.output
    assert _files(out) == before
    units = {p: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    resumed = CliRunner().invoke(app, [*args, "--threads", "1"])
    assert resumed.exit_code == 0, resumed.output
    assert {p: p.stat().st_mtime_ns for p in units} == units
    assert json.loads((out / "results.json").read_text()) == {**reference, "threads": 1} == reference


@pytest.mark.slow  # two processes each train and measure
def test_the_same_command_gives_the_same_numbers_in_two_processes(tmp_path):
    """Two processes run one quick experiment (shrunk to seconds) at once: their results.json are equal, number for
    number, except the wall-clock ``seconds`` of each trained model."""
    shrink = ["--set", "ks=[4]", "--set", "seeds=[0]", "--set", "influence_cg_iterations=10",
              "--set", 'base=[{"optimizer": "adam", "lr": 0.02, "steps": 60}, '
                       '{"optimizer": "lbfgs", "lr": 1.0, "steps": 15, "schedule": "constant"}]',
              "--set", 'perturb=[{"optimizer": "lbfgs", "lr": 1.0, "steps": 10, "schedule": "constant"}]']
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "elastic_theory", "experiment", "joint-ratio", "--quick", *shrink,
                               "--out", str(tmp_path / name), "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for name in ("A", "B")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    def numbers(name: str):
        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k != "seconds"}
            return [strip(v) for v in value] if isinstance(value, list) else value

        return strip(json.loads((tmp_path / name / "results.json").read_text()))

    a, b = numbers("A"), numbers("B")
    assert a == b and a["threads"] == 1
    assert a["rows"] and all(r["steps"] > 0 and r["gamma_pretrain"] > 0 for r in a["rows"])  # it trained and measured


@pytest.mark.parametrize(
    "args, message",
    [
        (["joint-ratio", "--set", "ks=[0]"], "k = |D_p|/|D_a| must be finite and > 0, got 0.0"),
        (["joint-ratio", "--set", "ls=[-0.1, 0.2]"], "l = |D_t|/|D_a| must be finite and >= 0, got -0.1"),
        (["joint-ratio", "--set", "w=[0.5, 0.2, 0.2]"], "w must be three non-negative weights (w1, w2, w3) summing to 1"),
        (["sequential-ratio", "--set", "ks=[-4]"], "k = |D_p|/|D_a| must be finite and > 0, got -4.0"),
        (["nonesuch"], "unknown experiment 'nonesuch'; known: "),
        (["joint-ratio", "--set", "model.width=3"], "unknown config key 'model.width'"),
        (["joint-ratio", "--set", "seeds"], "expected KEY=VALUE"),
        (["joint-ratio", "--seeds", "1,x"], "--seeds '1,x': expected integers"),
        (["joint-ratio", "--quick", "--set", "world.vocab_size=1"], "world.vocab_size must be an integer >= 2"),
    ],
)
def test_bad_configs_exit_2_with_one_line(args, message, tmp_path):
    result = CliRunner().invoke(app, ["experiment", *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_output_folder_of_another_experiment_is_refused(tiny_run):
    _, out, _ = tiny_run
    result = CliRunner().invoke(app, ["experiment", "sequential-ratio", "--quick", "--out", str(out)])
    assert result.exit_code == 2 and "holds a run of experiment 'joint-ratio', not 'sequential-ratio'" in result.output


def test_influence_of_the_tabular_optimum_is_the_exact_derivative():
    """At the exact joint optimum of a tabular learner, -H^-1 grad CE_t moves the rates at the §2.1 rate."""
    import torch

    from elastic_theory.empirical.rate_derivatives import influence_dgamma_dl
    from elastic_theory.empirical.training import SequenceData, TabularModel

    world = SyntheticWorld(WorldConfig(vocab_size=2, length=3, min_length=2, prompt_length=1, n_prompts=2, resolution=24))
    d = world.datasets(8, 0.1, (0.6, 0.2, 0.2))
    base = d.without_perturbation()
    V = world.config.data_vocab_size
    model = TabularModel(base.union, V)
    ev = {r: SequenceData(d.role(r), V) for r in ("pretrain", "align")}
    factor = d.align.size / (d.pretrain.size + d.align.size)
    out = influence_dgamma_dl(model, SequenceData(base.union, V), SequenceData(d.perturb, V), ev, factor,
                              max_iter=200, rtol=1e-12)
    pm = d.perturbation_model()
    for role, tree in (("pretrain", pm.pretrain), ("align", pm.align)):
        exact = pm.rates(tree, 0.0).dgamma_dl_bits_per_token
        assert out["dgamma_dl"][role] == pytest.approx(exact, rel=1e-6), role
    assert torch.get_default_dtype() == torch.float32  # nothing changed global torch state


def test_first_order_ratio_is_k_at_a_stationary_point():
    """|D_p| grad CE_p + |D_a| grad CE_a = 0 at the joint optimum, so any first step moves the rates in ratio k (per response)."""
    from elastic_theory.empirical.rate_derivatives import first_order_changes
    from elastic_theory.empirical.training import SequenceData, TabularModel

    world = SyntheticWorld(WorldConfig(vocab_size=3, length=3, prompt_length=1, n_prompts=3, resolution=60))
    for k in (4, 64):
        d = world.datasets(k, 0.1, (0.6, 0.2, 0.2))
        V = world.config.data_vocab_size
        fo = first_order_changes(TabularModel(d.without_perturbation().union, V), SequenceData(d.perturb, V),
                                 {r: SequenceData(d.role(r), V) for r in ("pretrain", "align")}, lr=1.0)
        assert fo["align"] / -fo["pretrain"] == pytest.approx(k, rel=1e-9)


def test_effective_l_recovers_the_l_of_a_joint_optimum():
    rng = np.random.default_rng(0)
    base, pt = rng.integers(1, 20, size=30).astype(float), rng.dirichlet(np.ones(30))
    n, a = base.sum(), 7.0
    for l in (0.0, 0.05, 0.8):
        p_l = (base + l * a * pt) / (n + l * a)
        fit = fit_effective_l(np.log(p_l), base, pt, n, a)
        assert fit["l_eff"] == pytest.approx(l, abs=1e-6) and fit["kl_bits"] < 1e-12
    assert math.isfinite(fit_effective_l(np.log(np.full(30, 1 / 30)), base, pt, n, a)["kl_bits"])


@pytest.mark.slow  # trains bases and fine-tunes them
def test_tiny_sequential_ratio_end_to_end(tmp_path):
    """A tiny sequential run: first-order ratios equal the per-token R(k, 0) of the same data, tracks are drawn."""
    from elastic_theory.experiments.synthetic.sequential_ratio import SequentialRatioConfig

    cfg = SequentialRatioConfig(
        world=TINY.world, model=TINY.model, ks=(4.0,), seeds=(0,), base=TINY.base, base_warm=TINY.base_warm,
        arms=(StageConfig("sgd", 1e-5, 3, "constant"),), report_steps=(1, 3),
    )
    path = write_config(tmp_path / "seq.json", "sequential-ratio", cfg)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["experiment", "sequential-ratio", "--config", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    (fo,) = res["first_order"]
    # variable lengths: the per-token R at l = 0 is k E_p|x| / E_a|x|, not k
    assert fo["R_predicted_l0"] != pytest.approx(4.0, rel=1e-3)
    assert fo["ratio_tabular"] == pytest.approx(fo["R_predicted_l0"], rel=1e-9)
    assert [r["step"] for r in res["rows"]] == [1, 3]
    # every row carries its base's KL to the optimum and the KL above which that distance could flip dgamma_p's sign
    assert all(r["base_kl_to_optimum_bits"] == fo["base_kl_to_optimum_bits"] for r in res["rows"])
    assert all(0 < r["kl_sign_threshold_bits"] < math.inf for r in res["rows"])
    far = [{**x, "seeds_beyond_kl_threshold": [{"seed": 0, "base_kl_to_optimum_bits": 0.05, "kl_sign_threshold_bits": 1e-9}]}
           if x["step"] == 1 else x for x in res["summary"]]
    summarize = get("sequential-ratio").summarize
    assert "k = 4, seed 0: base KL 0.05 bits > the sign threshold at 1 of 2" in summarize({**res, "summary": far})
    # one seed: every ratio interval rests on fewer than 3 seeds, and the table says so row by row
    assert "WARNING: ratio intervals over fewer than 3 both-right seeds" in summarize(res)
    assert all(f"k = 4, {s['arm']}, step {s['step']}: {s['n_both_right']}" in summarize(res) for s in res["summary"] if s["step"])
    # one k: no slope (nan, saved as null); results.json as read back summarizes as the run's results do
    assert all(x["slope"] is None for x in res["scaling"]) and res["non_finite"]["/scaling/0/slope"] == "nan"
    assert summarize(res) == summarize(_as_run_returned(res))
    track = out / res["tracks"][next(iter(res["tracks"]))]
    assert len(track.read_text().splitlines()) == 2 * 4  # two datasets at steps 0..3
    assert CliRunner().invoke(app, ["plot", str(track)]).exit_code == 0 and track.with_suffix(".png").is_file()
    # the per-seed ratio plot redraws from results.json as read back (a null both-right mean included)
    (out / "sequential_ratio.png").unlink()
    assert CliRunner().invoke(app, ["plot", str(out)]).exit_code == 0 and (out / "sequential_ratio.png").is_file()


def test_joint_sign_threshold_is_where_the_rate_error_bounds_add_up_to_the_change():
    """joint_ratio.sign_kl_threshold_bits: at KL delta* each compared model's rate_error_bound_bits sum to |dgamma_p|
    (so below it the errors cannot flip the sign); for small changes delta* ~ dgamma_p^2."""
    from elastic_theory.experiments.synthetic._joint_ratio_analysis import sign_kl_threshold_bits
    from elastic_theory.theory.tolerances import roundings

    shares, mean_length = (64 / 65, 64 / 65.2), 3.0  # D_p's share of the union at l = 0 and l = 0.2, k = 64
    for change in (-2.6e-3, -1.4e-5, -5.5e-8):  # the documented dgamma_p at k = 4, 64 and 1024 (bits per token)
        delta = sign_kl_threshold_bits(change, shares, mean_length)
        bound = sum(rate_error_bound_bits(delta, share, mean_length) for share in shares)
        assert bound == pytest.approx(-change, rel=roundings(32))
    assert sign_kl_threshold_bits(-1e-8, shares, mean_length) / sign_kl_threshold_bits(-1e-9, shares, mean_length) \
        == pytest.approx(100, rel=1e-6)


@settings(deadline=None)
@given(st.integers(2, 12), st.floats(0.01, 0.99), st.floats(0.0, 0.3), st.floats(1e-6, 0.5), st.data())
def test_pretraining_change_is_first_order_plus_kl_plus_a_base_term_within_its_pinsker_bound(n, align_share, eps, eta, data):
    """For a base q0 and a later model qn on one support, p̂ = pi_p P_p + pi_a P_a, v = ln qn - ln q0 (nats):
    pi_p dCE_p = T - sum (p̂ - q0) v with T = -pi_a dCE_a + KL(q0 || qn), and |sum (p̂ - q0) v| <=
    max|v| sqrt(2 KL(p̂ || q0)); so a base closer than sequential_ratio.sign_kl_threshold_bits keeps the sign of T."""
    from elastic_theory.experiments.synthetic.sequential_ratio import sign_kl_threshold_bits
    from elastic_theory.testing import probability_vectors
    from elastic_theory.theory.tolerances import sum_tolerance

    p_p, p_a, r = (data.draw(probability_vectors(n, min_prob=0.1 / n)) for _ in range(3))
    direction = np.array(data.draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)))
    p_hat = (1 - align_share) * p_p + align_share * p_a
    q0 = (1 - eps) * p_hat + eps * r  # a base eps away from the optimum p̂
    qn = q0 * np.exp(eta * direction)
    qn /= qn.sum()  # a step of size eta
    v = np.log(qn) - np.log(q0)
    d_ce = {name: float(-(p * v).sum()) for name, p in (("pretrain", p_p), ("align", p_a))}
    kl_step = float((q0 * (np.log(q0) - np.log(qn))).sum())
    base_term = float(((p_hat - q0) * v).sum())
    T = -align_share * d_ce["align"] + kl_step
    scale = float(((p_hat + q0) * np.abs(v)).sum()) + kl_step
    assert (1 - align_share) * d_ce["pretrain"] == pytest.approx(T - base_term, abs=sum_tolerance(8 * n, scale))
    kl_base = float((p_hat * (np.log(p_hat) - np.log(q0))).sum())
    # The computed KL is off by up to kl_error (n terms, each a difference of two logs, absolute error a few ulps of
    # p (|ln p| + |ln q0|)); Pinsker's bound is evaluated at the largest KL that rounding allows, since the square
    # root turns an absolute error kl_error at KL ~ 0 into sqrt(2 kl_error) (a base within 1e-10 of p̂ computes
    # its KL as -1.6e-16 while its base term is 5e-11).
    kl_error = sum_tolerance(4 * n, float((p_hat * (np.abs(np.log(p_hat)) + np.abs(np.log(q0)))).sum()))
    assert abs(base_term) <= np.abs(v).max() * np.sqrt(2 * (max(kl_base, 0.0) + kl_error)) + sum_tolerance(4 * n, scale)
    threshold_bits = sign_kl_threshold_bits(d_ce["align"], align_share, kl_step, float(np.abs(v).max()))
    if kl_base / math.log(2) < threshold_bits and abs(T) > sum_tolerance(8 * n, scale):
        assert np.sign(d_ce["pretrain"]) == np.sign(T)
