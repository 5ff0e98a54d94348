"""``elastic-theory finetune`` in one process on a tiny model: what it writes, and bad input refused before any model loads."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from typer.testing import CliRunner  # noqa: E402

from elastic_theory.cli import app  # noqa: E402


def _args(inputs, out, *extra):
    return ["finetune", "--model", str(inputs / "model"), "--data", str(inputs / "pairs.jsonl"), "--algorithm", "sft",
            "--set", "batch_size=4", "--set", "max_length=48", "--n-train", "8", "--n-measure", "4", "--no-progress",
            "--device", "cpu", "--out", str(out), *extra]


def _invoke(args, env=None):
    return CliRunner().invoke(app, args, env=env)


@pytest.mark.slow  # fine-tunes, saves and re-measures a tiny model per algorithm
@pytest.mark.parametrize("algorithm, lora", [("sft", False), ("dpo", False), ("sft", True)])
def test_finetune_writes_a_model_that_measure_reads_and_a_result(finetune_inputs, tmp_path, algorithm, lora):
    from elastic_theory.empirical import load_model_and_tokenizer

    out = tmp_path / "run"
    extra = ["--track", f"t={finetune_inputs / 'track.jsonl'}", "--every", "1"]
    if lora:
        extra += ["--lora", "--set", 'lora_targets=["c_attn"]']
    args = _args(finetune_inputs, out, *extra)
    args[args.index("sft")] = algorithm
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "result.json").read_text())
    assert report["config"]["algorithm"] == algorithm and report["config"]["lora"] is lora and report["threads"] == 1
    assert len(report["losses"]) == 2 and report["world_size"] == 1  # 8 examples, 4 per step
    assert len(report["data"]["train"]) == 8 and not set(report["data"]["train"]) & set(report["data"]["measure"])
    assert [t["name"] for t in report["data"]["train_texts"]] == report["data"]["train"]  # what compare checks
    assert report["provenance"]["argv"]
    assert [json.loads(line)["step"] for line in (out / "track.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert (out / "final" / ("adapter_config.json" if lora else "config.json")).is_file()
    model, _ = load_model_and_tokenizer(out / "final", device="cpu")
    initial, _ = load_model_and_tokenizer(finetune_inputs / "model", device="cpu")
    changed = [name for name, w in model.state_dict().items() if not (w == initial.state_dict()[name]).all()]
    assert changed and (not lora or all("c_attn" in name for name in changed))
    assert sorted(p.name for p in out.iterdir()) == ["final", "result.json", "track.jsonl"]


@pytest.mark.parametrize("change, message", [
    (["--model", "{root}/nowhere"], "nowhere"),
    (["--algorithm", "ppo"], "--algorithm 'ppo': unknown; use one of sft, dpo"),
    (["--n-train", "30"], "too few"),
    (["--set", "nonsense=1"], "unknown config key 'nonsense'"),
    (["--set", "lr=-1"], "lr must be finite and > 0"),
    (["--target", "both"], "--target 'both'"),
    (["--every", "0"], "--every must be an integer >= 1"),
    (["--data", "{root}/missing.jsonl"], "missing.jsonl: no such file"),
    (["--track", "t"], "--track 't': expected NAME=PATH"),
    (["--set", "fsdp=true"], "fsdp needs GPUs"),
    (["--dtype", "int8"], "unknown dtype 'int8'"),
    (["--set", "batch_size=16"], "batch_size 16 is larger than the 8 examples"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(finetune_inputs, tmp_path, monkeypatch, change, message):
    """Refused before the model loads: a check made only by the loader or the trainer (the dtype, the batch size,
    fsdp on the CPU are checked there too, with the same message) fails this test by reaching the load."""
    import elastic_theory.empirical as empirical

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was refused")

    monkeypatch.setattr(empirical, "load_model_and_tokenizer", no_load)
    out = tmp_path / "run"
    args = _args(finetune_inputs, out)
    option, value = change[0], change[1].format(root=finetune_inputs)
    if option in args and option not in ("--set", "--track"):
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    assert message.format(root=finetune_inputs) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_tracked_file_holding_training_examples_is_refused_with_their_count(finetune_inputs, tmp_path, monkeypatch):
    """Tracking every pair's text holds the 8 training pairs (and the 24 others, which are fine): one line, exit 2,
    before the model loads. Kills a check on names only (the file's names are its own lines) and one that stops
    at the first hit without counting."""
    import elastic_theory.empirical as empirical

    monkeypatch.setattr(empirical, "load_model_and_tokenizer", lambda *a, **k: pytest.fail("loaded the model"))
    pairs = [json.loads(line) for line in (finetune_inputs / "pairs.jsonl").read_text().splitlines()]
    leaky = tmp_path / "all.jsonl"
    leaky.write_text("".join(json.dumps({"text": f"{p['prompt']}\n\n{p['unaligned']}"}) + "\n" for p in pairs))
    result = _invoke(_args(finetune_inputs, tmp_path / "run", "--track", f"all={leaky}"))
    assert result.exit_code == 2, result.output
    assert "--track all: 8 of its 32 documents hold text of the training examples" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_out_that_is_a_file_or_holds_a_finished_run_or_other_files_is_refused(finetune_inputs, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    result = _invoke(_args(finetune_inputs, a_file))
    assert result.exit_code == 2 and "is a file" in result.output and a_file.read_text() == "keep"
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "result.json").write_text("{}")
    result = _invoke(_args(finetune_inputs, finished))
    assert result.exit_code == 2 and "holds a finished run" in result.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = _invoke(_args(finetune_inputs, other))
    assert result.exit_code == 2 and "holds other files (notes.txt)" in result.output


def test_a_last_step_that_is_not_full_is_refused_under_several_processes(finetune_inputs, tmp_path, monkeypatch):
    """With WORLD_SIZE=2 (as torchrun sets it) 10 examples in steps of 4 would repeat 2 examples from the start."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = _args(finetune_inputs, tmp_path / "run")
    args[args.index("--n-train") + 1] = "10"
    result = _invoke(args)
    assert result.exit_code == 2 and "do not fill whole steps of batch_size 4" in result.output


def test_ctrl_c_during_training_leaves_no_model_and_no_result(finetune_inputs, tmp_path, monkeypatch):
    from elastic_theory.empirical import finetune as engine

    def interrupted(*args, tracker=None, **kwargs):
        tracker.measure(args[0], 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_finetune", interrupted)
    out = tmp_path / "run"
    result = _invoke(_args(finetune_inputs, out, "--track", f"t={finetune_inputs / 'track.jsonl'}"))
    assert result.exit_code == 130 and "no model and no result.json were written" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["track.jsonl"]
    assert len((out / "track.jsonl").read_text().splitlines()) == 1
    again = _invoke(_args(finetune_inputs, out, "--track", f"t={finetune_inputs / 'track.jsonl'}"))
    assert again.exit_code == 130 and len((out / "track.jsonl").read_text().splitlines()) == 1  # started over
