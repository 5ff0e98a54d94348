"""``elastic-theory probe``: the JSON has the issue's keys and agrees with itself, reruns give the same numbers, LoRA
steps only the adapter, and every bad input is one line and exit 2 before any model loads."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from elastic_theory.cli import app

ROLES = ("--align", "a", "--pretrain", "p", "--perturb", "t")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from pydoc_data.topics import topics  # real English prose shipped with Python

    from elastic_theory.empirical.tiny import byte_bpe_tokenizer, tiny_gpt2, tiny_llama

    texts = [topics[k][:120] for k in sorted(topics)[:18]]
    root = tmp_path_factory.mktemp("probe")
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    for folder, build in (("gpt2", tiny_gpt2), ("llama", tiny_llama)):
        build(tok, seed=0, n_positions=48).save_pretrained(root / folder)
        tok.save_pretrained(root / folder)
    for i, name in enumerate("apt"):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[i * 6:(i + 1) * 6]))
    (root / "one.jsonl").write_text(json.dumps({"text": texts[0]}) + "\n")
    return root


def _data(root) -> list[str]:
    return [arg for n in "apt" for arg in ("--data", f"{n}={root / f'{n}.jsonl'}")]


def _run(*args):
    return CliRunner().invoke(app, ["probe", *map(str, args), "--no-progress"])


@pytest.mark.slow  # two probes with controls and curvatures on a tiny GPT-2: about 8 s on a loaded 2-core CPU
def test_json_keys_and_reruns(root, tmp_path):
    args = ["--model", root / "gpt2", *_data(root), *ROLES, "--lr", "1e-3,1e-2", "--second-order", "--controls",
            "--optimizer", "adam", "--seed", 3]
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    result = _run(*args, "--json", first)
    assert result.exit_code == 0, result.output
    assert "elastic limit" in result.output and "R measured" in result.output
    assert _run(*args, "--json", second).exit_code == 0
    a, b = (json.loads(p.read_text()) for p in (first, second))
    for r in (a, b):
        del r["provenance"]
    assert a == b  # seeded random direction, fixed threads, intervals without resampling: the same numbers
    assert set(a["datasets"]) == {"a", "p", "t"}
    for d in a["datasets"].values():
        assert {"bits_per_token", "bits_per_byte", "grad_norm"} <= set(d)
    assert [(e["direction"], e["lr"]) for e in a["steps"]] == [
        (d, lr) for lr in (1e-3, 1e-2) for d in ("perturb", "align", "pretrain", "random")]
    for e in a["steps"]:
        assert {"direction", "lr", "predicted_first_order", "predicted_second_order", "measured", "R_first_order",
                "R_measured", "signs_hold", "prediction_inside_ci"} <= set(e)
        for name in "apt":
            assert set(e["measured"][name]) >= {"value", "ci95"} and len(e["measured"][name]["ci95"]) == 2
            assert isinstance(e["prediction_inside_ci"][name], bool)
            assert e["predicted_second_order"][name] == pytest.approx(
                e["predicted_first_order"][name] + 0.5 * e["curvature"][name])
        assert set(e["R_measured"]) == {"value", "ci95"}
        assert e["signs_hold"] == (e["measured"]["a"]["value"] > 0 > e["measured"]["p"]["value"])
    norms = {e["direction"]: e["step_norm"] for e in a["steps"] if e["lr"] == 1e-3}
    for d in ("align", "pretrain", "random"):  # the controls have the perturbation step's norm (float32 rounding)
        assert norms[d] == pytest.approx(norms["perturb"], rel=1e-5)
    assert {"step_scale", "lr"} <= set(a["elastic_limit"])
    assert a["elastic_limit"]["lr"] is None  # Adam: the limit is a number of steps
    assert (a["elastic_limit"]["steps"] is None) == (a["elastic_limit"]["step_scale"] is None)
    assert set(a["cosines"]) == {"a", "p", "t"} and a["cosines"]["p"]["p"] == pytest.approx(1.0)
    assert a["config"]["optimizer"] == "adam" and a["config"]["lrs"] == [1e-3, 1e-2]


def test_lora_steps_the_adapter_only(root, tmp_path):
    out = tmp_path / "lora.json"
    result = _run("--model", root / "llama", *_data(root), *ROLES, "--lora", "--lora-r", 2,
                  "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    # rank 2 on q_proj and v_proj (32 x 32) of 2 layers: 2 * 2 * (2*32 + 32*2) adapter parameters, nothing else
    assert report["n_trained_parameters"] == 2 * 2 * (2 * 32 + 32 * 2)
    assert report["steps"][0]["step_norm"] > 0


@pytest.mark.parametrize("args, message", [
    (("--align", "x", "--pretrain", "p", "--perturb", "t"), "--align 'x': no --data dataset"),
    (("--align", "a", "--pretrain", "a", "--perturb", "t"), "--align and --pretrain both name 'a'"),
    (("--align", "a", "--pretrain", "p", "--perturb", "p"), "--pretrain and --perturb both name 'p'"),
    ((*ROLES, "--lr", "0"), "every learning rate must be finite and > 0"),
    ((*ROLES, "--lr", "1e-3,abc"), "'abc' is not a number"),
    ((*ROLES, "--lr", "1e-3,0.001"), "is given twice"),
    ((*ROLES, "--optimizer", "lbfgs"), "--optimizer 'lbfgs': use one of sgd, adam, adamw"),
    ((*ROLES, "--weight-decay", "-1"), "--weight-decay must be finite and >= 0"),
    ((*ROLES, "--lora-r", "0"), "--lora-r must be an integer >= 1"),
    ((*ROLES, "--batch-size", "0"), "--batch-size must be an integer >= 1"),
    ((*ROLES, "--dtype", "int8"), "unknown dtype 'int8'"),
    ((*ROLES, "--json", "{root}/a.jsonl/x.json"), "--json {root}/a.jsonl/x.json: {root}/a.jsonl is a file, not a folder"),
])
def test_bad_input_exits_2_before_loading(root, args, message):
    """The model named does not exist: each error must come from the check of the option, before any loading."""
    result = _run("--model", root / "no-such-model", *_data(root), *(str(a).format(root=root) for a in args))
    assert result.exit_code == 2, result.output
    assert message.format(root=root) in result.output and result.output.count("error:") == 1


def test_one_document_and_duplicate_data_are_refused(root):
    one = ["--data", f"one={root / 'one.jsonl'}"]
    result = _run("--model", root / "no-such-model", *_data(root), *one, *ROLES)
    assert result.exit_code == 2 and "--data one: 1 document; the paired leave-one-out interval needs at least 2" in result.output
    result = _run("--model", root / "no-such-model", *_data(root), "--data", f"a={root / 'p.jsonl'}", *ROLES)
    assert result.exit_code == 2 and "the name 'a' is used twice" in result.output
    result = _run("--model", root / "no-such-model", *_data(root), *ROLES)
    assert result.exit_code == 2 and "no-such-model" in result.output  # all options good: the model is the error


@pytest.fixture
def library_bars_on():
    """transformers' progress bars on for the test, as in a fresh process (another test of the same process may have
    switched them off: then --progress would show nothing and --no-progress would hide nothing), restored after."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    yield
    if not was_on:
        hf_logging.disable_progress_bar()


@pytest.mark.slow  # four tiny LoRA probes: about 3 s of CPU, 12 s on a loaded 2-core machine
def test_seed_initializes_the_adapter_and_no_progress_hides_loading(root, tmp_path, library_bars_on):
    """--seed seeds the fresh LoRA adapter (its A matrix is random, B is 0, so the step along B, and every prediction,
    depends on A): the same seed gives the same numbers, another seed other numbers; there is no --n-resamples (the
    intervals are leave-one-out t intervals, nothing resampled). Killed: the seed set after the adapter is built
    (the adapter then comes from wherever torch's global generator stands: reruns differ), a --seed that seeds
    nothing the report depends on (another seed, the same numbers), an --n-resamples still accepted and ignored. --no-progress hides transformers' "Loading weights" bar, which --progress shows (so
    the check can fail: a probe that loads outside the progress switch prints it under --no-progress too)."""
    args = ["--model", root / "llama", *_data(root), *ROLES, "--lora", "--lora-r", 2]
    first, again, other = (_run(*args, "--seed", s, "--json", tmp_path / f"{i}.json")
                           for i, s in enumerate((0, 0, 1)))
    assert first.exit_code == again.exit_code == other.exit_code == 0, first.output
    a, b, c = (json.loads((tmp_path / f"{i}.json").read_text())["steps"][0]["predicted_first_order"] for i in range(3))
    assert a == b and a != c
    assert "Loading weights" not in first.output
    shown = CliRunner().invoke(app, ["probe", *map(str, args), "--progress"])
    assert shown.exit_code == 0 and "Loading weights" in shown.output
    gone = _run(*args, "--n-resamples", 300)
    assert gone.exit_code == 2 and "No such option: --n-resamples" in gone.output
