"""What every command shares (elastic_theory.cli.app): output paths, stdout JSON, provenance, escaping, help,
--version, Hypothesis storage, and a demo that fits the terminal and says what to do next."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from elastic_theory import __version__, claims
from elastic_theory.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
COMMANDS = ("demo", "verify", "ratio", "perturb", "tree", "measure")


def _tokens(tmp_path: Path, name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("[0]\n[1, 0]\n[1, 1]\n[0]\n", encoding="utf-8")
    return path


def test_json_dash_is_standard_output(tmp_path, monkeypatch):
    """--json - prints the JSON alone on stdout (the table goes to stderr) and creates no file named '-'."""
    monkeypatch.chdir(tmp_path)
    data = _tokens(tmp_path)
    res = runner.invoke(app, ["tree", "--data", str(data), "--depth", "2", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["huffman_expected_bits"] == 1.5 and "Huffman" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


def test_a_symlink_output_updates_its_target_and_a_fifo_is_refused_before_work(tmp_path):
    data = _tokens(tmp_path)
    target = tmp_path / "kept.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    res = runner.invoke(app, ["tree", "--data", str(data), "--depth", "2", "--json", str(tmp_path / "link.json")])
    assert res.exit_code == 0 and (tmp_path / "link.json").is_symlink()
    assert json.loads(target.read_text())["depth"] == 2

    os.mkfifo(tmp_path / "fifo")
    res = runner.invoke(app, ["verify", "--claim", "mixture_lemma", "--json", str(tmp_path / "fifo")])
    assert res.exit_code == 2 and f"--json {tmp_path / 'fifo'}: is not a regular file" in res.stderr
    assert "verdicts as expected" not in res.output  # refused at parse time, before any claim ran
    assert (tmp_path / "fifo").exists() and not (tmp_path / "fifo").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["tree", "--data", "{data}", "--depth", "2"],
        ["ratio", "--k", "10", "--l", "0.01", "--w3", "0.5"],
        ["perturb", "--pretrain", "{data}", "--align", "{data}", "--perturb", "{data}", "--l", "0.1"],
        ["verify", "--claim", "mixture_lemma"],
    ],
)
def test_every_result_file_records_versions_and_the_command(tmp_path, args):
    data = _tokens(tmp_path)
    out = tmp_path / "r.json"
    res = runner.invoke(app, [a.format(data=data) for a in args] + ["--json", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    if args[0] == "perturb":  # the input files are not part of the numbers: they are recorded as settings
        assert result["config"]["pretrain"] == str(data) and result["config"]["size_unit"] == "responses"
    prov = result["provenance"]
    assert prov["versions"]["elastic-theory"] == __version__ and prov["versions"]["numpy"]
    assert set(prov) == {"versions", "argv", "platform", "created"}
    assert f"wrote {out}" in res.stderr


def test_bracketed_file_names_are_printed_as_written(tmp_path):
    data = _tokens(tmp_path, "runs[step=500].jsonl")
    res = runner.invoke(app, ["tree", "--data", str(data), "--depth", "2"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "Token tree of runs[step=500].jsonl" in res.stdout


def test_a_huge_depth_is_exact_not_an_overflow(tmp_path):
    """Any depth at or beyond the longest response codes each response as one chunk: same report, no OverflowError."""
    data = _tokens(tmp_path)
    reports = []
    for depth in ("2", str(10**20)):
        res = runner.invoke(app, ["tree", "--data", str(data), "--depth", depth, "--json", "-"])
        assert res.exit_code == 0, res.output
        reports.append(json.loads(res.stdout))
    for key in ("entropy_bits", "huffman_expected_bits", "paper_ideal_code_bits", "n_leaves", "mean_chunks"):
        assert reports[0][key] == reports[1][key]
    assert reports[1]["depth"] == 10**20 and reports[1]["effective_depth"] == 2


def test_perturb_overflow_is_one_line_not_nan(tmp_path):
    """l = 1e308 overflows the float64 mixture: exit 2 and one line naming --l, not warnings and a NaN table."""
    p, a, t = (tmp_path / n for n in ("p.jsonl", "a.jsonl", "t.jsonl"))
    p.write_text("[1, 2, 3]\n[1, 2]\n[0, 1]\n")
    a.write_text("[1, 2]\n[2, 2]\n")
    t.write_text("[0, 1]\n[1, 2]\n")
    res = runner.invoke(app, ["perturb", "--pretrain", str(p), "--align", str(a), "--perturb", str(t), "--l", "1e308"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --l 1e+308: the float64 arithmetic")
    assert len(res.stderr.strip().splitlines()) == 1 and "nan" not in res.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples_and_readable_metavars(command):
    res = runner.invoke(app, [command, "--help"])
    assert res.exit_code == 0
    examples = [line.strip() for line in res.stdout.splitlines() if line.strip().startswith(f"elastic-theory {command}")]
    assert len(examples) >= 2, res.stdout
    for bad in ("<bool>", "<list[", "<path>", "<str>", "<int>", "<float>", "``"):
        assert bad not in res.stdout, (bad, res.stdout)


@pytest.mark.parametrize("command", ["measure", "compare", "finetune", "experiment"])
def test_every_torch_command_states_its_default_thread_count_once(command):
    """--threads defaults to one number everywhere (not torch's choice), said once in the option's help."""
    from elastic_theory.cli.app import DEFAULT_THREADS

    flat = " ".join(runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"}).stdout.split())
    entry = flat[flat.index("--threads N"):].split(" --")[0]
    assert f"(default {DEFAULT_THREADS}:" in entry and "[default:" not in entry and flat.count("--threads N") == 1


def test_threads_below_one_are_refused_when_the_command_line_is_parsed(tmp_path):
    res = runner.invoke(app, ["experiment", "joint-ratio", "--quick", "--threads", "0", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--threads must be an integer >= 1, got 0" in res.stderr
    assert not (tmp_path / "o").exists()


def _run_dir_refused_for(reason: str, folder: Path) -> dict:
    """Make ``folder`` a run directory that ``RunDir.check(folder, "exp", {"a": 1, "b": 2}, threads=2)`` refuses for
    ``reason``; returns the check's arguments."""
    from elastic_theory.infra.rundir import RunDir

    if reason == "file":
        folder.write_text("x")
    elif reason == "not_a_run":
        folder.mkdir()
        (folder / "notes.txt").write_text("x")
    elif reason == "bad_config":
        folder.mkdir()
        (folder / "config.json").write_text("[]")
    else:
        name, config, threads = {"other_experiment": ("other", {"a": 1, "b": 2}, 2),
                                 "other_config": ("exp", {"a": 0, "b": 0}, 2), "other_threads": ("exp", {"a": 1, "b": 2}, 1)}[reason]
        RunDir.open(folder, name, config, threads=threads)
    return {"path": folder, "experiment": "exp", "config": {"a": 1, "b": 2}, "threads": 2}


@pytest.mark.parametrize("reason, message", [
    ("file", "--out {p} is a file; give a folder for the run"),
    ("not_a_run", "--out {p} is a non-empty folder without a run's config.json; give a new or empty folder"),
    ("bad_config", "{p}/config.json is not a run's config.json; give another --out folder"),
    ("other_experiment", "--out {p} holds a run of experiment 'other', not 'exp'; give another --out folder"),
    ("other_config", "--out {p} holds a exp run with a different configuration (differs in: a, b); give another --out "
                     "folder to run this one"),
    ("other_threads", "--out {p} was run with --threads 1; rerun with --threads 1 to resume it, or give another --out"),
])
def test_a_refused_run_directory_is_one_line_naming_the_command_lines_options(tmp_path, capsys, reason, message):
    """The run directory raises the facts (RunDirRefused); the command line words them with --out and --threads."""
    import typer

    from elastic_theory.cli.app import RUN_DIR_MESSAGES, bad_input_exits_2
    from elastic_theory.infra.rundir import RunDir

    assert reason in RUN_DIR_MESSAGES
    args = _run_dir_refused_for(reason, tmp_path / "run")
    with pytest.raises(typer.Exit) as exited:
        bad_input_exits_2(RunDir.check)(**args)
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err == f"error: {message.format(p=tmp_path / 'run')}\n"


def test_commands_import_only_the_shared_app_module_and_the_library():
    """No sideways imports between commands: what two commands share lives in cli/app.py (the input checks several
    commands make before scoring: cli/inputs.py, docs/architecture.md) or below it."""
    import ast

    for module in sorted((ROOT / "elastic_theory" / "cli").glob("*_cmd.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert node.module in ("app", "inputs"), f"{module.name} imports from .{node.module}"


def test_help_lists_the_commands_in_their_order():
    """The order of `elastic-theory --help` is the order cli/__init__.py imports the command modules in."""
    assert [c.name for c in app.registered_commands] == [
        "measure", "compare", "probe", "corpus", "ratio", "perturb", "verify", "demo", "experiment", "plot", "report", "finetune", "tree"]


def test_verify_help_lists_every_claim_id():
    res = runner.invoke(app, ["verify", "--help"], env={"COLUMNS": "400"})
    flat = " ".join(res.stdout.split())
    assert all(claim_id in flat for claim_id in claims.CLAIMS)


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"elastic-theory {__version__}"


@pytest.mark.slow  # a subprocess running the Hypothesis search
def test_verify_leaves_no_hypothesis_folder_in_the_working_directory(tmp_path):
    """The claims run Hypothesis searches; its storage goes to a temporary folder, not ./.hypothesis."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "elastic_theory", "verify", "--claim", "overlapping_supports"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("width", [80, 120])
def test_demo_fits_the_terminal_and_says_what_to_try_next(width, monkeypatch):
    """Every line fits the width, no header or claim id is cut or broken, and the demo ends with next steps.
    The claims are a subset (the longest id among them) to keep the test fast; corpus and ratio tables are full."""
    real = claims.run_verification
    subset = ["general_perturbation_formula", "sign_beyond_threshold", "mixture_lemma"]
    monkeypatch.setattr(claims, "run_verification", lambda seed: real(seed, subset))
    res = runner.invoke(app, ["demo", "--no-experiments"], env={"COLUMNS": str(width)})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in res.stdout
    for claim_id in subset:
        assert any(re.search(rf"\b{claim_id}\b", line) for line in lines), claim_id
    for header in ("E[#chunks] per response", "d = 32", "sign claim"):
        assert header in res.stdout
    has_evidence = re.search(r"claim\s+expected\s+verdict\s+as expected\s+evidence", res.stdout) is not None
    assert has_evidence == (width >= 120)
    tail = res.stdout[res.stdout.index("What to try next"):]
    assert "elastic-theory measure --model smollm2-135m" in tail and "docs/theory.md" in tail
    named = re.findall(r"(?:examples|docs)/[\w.]+\.(?:jsonl|txt|md)", tail)
    assert named and all((ROOT / path).is_file() for path in named), named  # the suggested commands run as shown


def _every_command(group=None, path=()):
    """Every command's words (``["models", "export"]``), from the click group typer builds."""
    import typer

    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield [*path, name]
            yield from _every_command(cmd, (*path, name))
        else:
            yield [*path, name]


def test_every_command_help_has_an_example_and_no_type_placeholders():
    """The README promises examples for every command; typer's placeholders (`<list[str]>`, `NAME <str>`) say
    nothing. Kills a command added without an Examples block and an option or argument left without a metavar."""
    commands = list(_every_command())
    assert ["compare"] in commands and ["models", "export"] in commands and len(commands) >= 14
    for words in commands:
        text = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "200"}).stdout
        assert re.search(r"^  Examples?:\n\n    elastic-theory " + " ".join(words) + r"\s", text, re.M), words
        placeholders = re.findall(r"<(?:str|int|float|bool|path|file|directory|list\[[^\]]*\]|\w+ range)>", text)
        assert not placeholders, (words, placeholders)  # typer's type labels; checkpoint-<step> in prose is not one


def test_help_examples_name_files_that_exist():
    """The examples in every command's --help use the shipped example datasets, not files a newcomer lacks."""
    for command in COMMANDS:
        text = runner.invoke(app, [command, "--help"]).stdout
        for path in re.findall(r"examples/[\w.]+\.(?:jsonl|txt|json)", text):
            assert (ROOT / path).is_file(), (command, path)
