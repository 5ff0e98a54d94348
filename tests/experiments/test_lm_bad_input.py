"""Bad input to the real-model experiments (lm-rebound, lm-data-to-revert, lm-resistance, lm-ratio and the commands
that reach them with ``--model``): refused in one line, exit 2, before a run folder exists.

Each case runs on the tiny model whose config it needs (``rebound_inputs`` or ``resistance_and_ratio_inputs`` of
conftest.py, saved once per session); only the files are read, nothing is trained.
"""

from __future__ import annotations

import pytest

from tests.experiments.experiment_inputs import invoke

REBOUND, RESISTANCE_AND_RATIO = "rebound_inputs", "resistance_and_ratio_inputs"


@pytest.mark.parametrize(("inputs", "args", "message"), [
    # lm-rebound and lm-data-to-revert; {cfg} is the tiny lm-rebound config of the model and pairs
    (REBOUND, ["rebound", "--algorithm", "ppo"], "--algorithm 'ppo'"),
    (REBOUND, ["joint-ratio", "--model", "smollm2-135m"], "synthetic world"),
    (REBOUND, ["rebound", "--model", "{model}", "--config", "{cfg}", "--set", "n_measure=30"], "too few"),
    (REBOUND, ["rebound", "--model", "{tmp}/nowhere", "--config", "{cfg}"], "nowhere"),
    (REBOUND, ["lm-rebound", "--config", "{cfg}", "--set", "perturb_amounts=[3,8]"], "multiple of finetune.batch_size"),
    (REBOUND, ["lm-rebound", "--config", "{cfg}", "--set", "setting=sentiments"], "setting 'sentiments'"),
    # lm-ratio
    (RESISTANCE_AND_RATIO, ["ratio", "--model", "{model}", "--set", "pretrain_tokens=-1"], "pretrain_tokens must be"),
    (RESISTANCE_AND_RATIO, ["ratio", "--model", "{model}", "--set", "setting={data}", "--set", "n_perturb_pool=8",
                            "--set", "align_amounts=[4,8]", "--set", "n_wikipedia=100000", "--set", "pretrain_tokens=1e6"],
     "n_wikipedia = 100000"),
    (RESISTANCE_AND_RATIO, ["ratio", "--model", "{model}", "--algorithm", "ppo"], "--algorithm 'ppo'"),
    (RESISTANCE_AND_RATIO, ["ratio", "--model", "{tmp}/missing-model", "--set", "pretrain_tokens=1e6"], "missing-model"),
    (RESISTANCE_AND_RATIO, ["ratio", "--model", "{model}"], "--set pretrain_tokens=N"),  # not built in: no default
    # lm-resistance
    (RESISTANCE_AND_RATIO, ["resistance", "--model", "{model}", "--set", "setting={data}", "--set", "n_prompts=1000"],
     "too few"),
    (RESISTANCE_AND_RATIO, ["resistance", "--model", "{model}", "--set", "checkpoints=[16,8,32]"],
     "strictly increasing"),
    (RESISTANCE_AND_RATIO, ["resistance", "--model", "{model}", "--set", "setting={tmp}/no-such.jsonl"],
     "no-such.jsonl"),
    (RESISTANCE_AND_RATIO, ["resistance", "--model", "{model}", "--set", "setting=sentiment"], "share one prompt"),
])
def test_bad_input_exits_2_with_one_line_and_no_run_folder(request, tmp_path, inputs, args, message):
    """``{model}``, ``{data}`` and ``{cfg}`` are the files of the case's inputs folder, ``{tmp}`` the test's own folder.

    Killed: a check made after the run folder is opened or the model loaded (the folder would exist), a
    traceback or a message over several lines."""
    folder = request.getfixturevalue(inputs)
    out = tmp_path / "run"
    files = {"model": folder / "model", "data": folder / "pairs.jsonl", "cfg": folder / "cfg.json", "tmp": tmp_path}
    result = invoke(*(a.format(**files) for a in args), "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
