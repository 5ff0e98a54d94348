"""Every shell command in README.md, docs/ and examples/ runs as pasted, in a fresh copy of the checkout.

The commands are taken from the pages themselves: each line of a ```bash block (lines ending in a backslash
joined with the next, as the shell does), and each inline code span that starts with
``elastic-theory``, ``python``, ``nice -n`` or ``.venv/bin/``. A command that needs an earlier one's
output (a plot of a run, a comparison of the models a script writes) is one line joined with
``&&`` on the page, so each command runs on its own. Not run: the set-up command
(``bash scripts/bootstrap.sh``, which this test suite is already running under), ``source
.venv/bin/activate`` (simulated: ``elastic-theory`` and ``python`` on PATH are this interpreter, as
after activation), and synopses with placeholders (``--k K``, ``--json OUT``, ``[--lam LAM]``,
``benchmarks/...``). A fresh copy is used because commands write files (``--json out.json``,
``plots/``, the example generator). Commands that load SmolLM2 or Gemma 3, train models (the tiny example models, a
``--quick`` experiment), run the whole verification or the doc tests are marked ``slow``; the
benchmark and study scripts (``benchmarks/``, ``scripts/``) and the full experiments (minutes to
hours each) also run only with ``RUN_LONG_COMMANDS=1``; a command that needs a GPU is
marked ``gpu``.

An experiment command (``elastic-theory experiment ...``, quick or full: minutes each; a page names several
quick runs of the same experiment with other options) runs in the suite with ``--dry-run``: every check a run
makes before its first unit (options, ``--set`` items, config, data, run directory) on exactly the page's words,
and none of the training; the parts of its line after it that read its output (``&& elastic-theory plot
runs/...``) are left out of the dry run. A dry run made only of ``[nice -n N] elastic-theory experiment ...``
parts runs in the test's own process (the command's arguments, split as the shell splits them, given to the same
typer app the ``elastic-theory`` script calls, in the fresh copy's folder): a fresh interpreter would spend its
5 s importing torch to check a config. With ``RUN_LONG_COMMANDS=1`` it runs as pasted, in a shell. What a quick run computes
is tested by each experiment's own end-to-end tests on tiny configurations.

Each command runs once per suite: a command that another test already runs with the same arguments
(:data:`RUN_BY_TESTS`), and ``python -m pytest PATH`` on a path the suite itself collects, are checked to be so
and not run a second time here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import optional

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]
_STARTS = ("elastic-theory", "python ", "nice -n ", ".venv/bin/")
_SLOW = ("--model", " demo", "pytest", "generate_highprec", "make_tiny_models", "experiment ")
_BARE_RUNNABLE = ("verify", "demo", "--help", "--version")  # other `elastic-theory X` spans name a command, not run it
RUN_LONG = os.environ.get("RUN_LONG_COMMANDS") == "1"
_LONG = ("benchmarks/", "scripts/")  # benchmark and study scripts: minutes to hours each


def _is_synopsis(command: str) -> bool:
    return any(re.fullmatch(r"[A-Z][A-Z_]*", tok) or ("[" in tok and tok[0] not in "'\"") or tok.endswith("...")
               for tok in command.split())  # a quoted '[...]' is a JSON value (--set 'ks=[1,2]'), not an optional part


#: Commands of the pages that a test runs with the same arguments (and checks more of): running them here too would
#: pay twice for the same minutes. ``test_commands_run_elsewhere_are_run_there`` keeps each entry honest.
RUN_BY_TESTS = {
    "elastic-theory verify": "tests/cli/test_verify_cmd.py::test_docs_tables_are_the_verify_output",
    "elastic-theory verify --markdown": "tests/cli/test_verify_cmd.py::test_docs_tables_are_the_verify_output",
    "elastic-theory verify --faults --markdown": "tests/cli/test_verify_cmd.py::test_docs_tables_are_the_verify_output",
    "elastic-theory verify --json verify.json --plots plots/":
        "tests/cli/test_verify_cmd.py::test_docs_tables_are_the_verify_output",
    "elastic-theory demo": "tests/cli/test_demo_cmd.py::test_full_demo_writes_the_report",
    "elastic-theory measure --model gemma3-270m --data prose=examples/prose.jsonl --data lines=examples/prose.txt "
    "--threads 1 --json gemma3-rates.json": "tests/cli/test_measure_cmd.py::test_measure_on_gemma3_offline_in_a_fresh_process",
}

def _suite_runs(command: str) -> bool:
    """``python -m pytest [PATH ...]`` whose paths the suite collects itself (``testpaths`` in pyproject.toml; no
    path is the suite itself, a tier of it with ``-m``)."""
    words = command.split()
    if words[:3] != ["python", "-m", "pytest"]:
        return False
    paths = [w for w in words[3:] if not w.startswith("-") and "/" in w]
    return all(w.split("/")[0] in _TESTPATHS and (ROOT / w).exists() for w in paths)


_TESTPATHS = ("tests", "elastic_theory", "docs")  # pyproject.toml [tool.pytest.ini_options] testpaths


def page_commands() -> list[tuple[str, str]]:
    """``(page:line, command)`` for every runnable command of the pages, in page order, without duplicates."""
    found: dict[str, str] = {}
    for page in PAGES:
        in_bash, pending = False, ""
        for lineno, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{page.relative_to(ROOT)}:{lineno}"
            if line.startswith("```"):
                in_bash = line.strip() in ("```bash", "```sh") if not in_bash else False
                continue
            if in_bash:
                pending += line.split("  #")[0].split(" # ")[0].strip()
                if pending.endswith("\\"):  # continued on the next line
                    pending = pending[:-1].rstrip() + " "
                    continue
                candidates, pending = [pending], ""
            else:
                candidates = re.findall(r"`([^`]+)`", line)
            for cmd in candidates:
                words = cmd.split()
                mention = len(words) == 2 and words[0] == "elastic-theory" and words[1] not in _BARE_RUNNABLE
                runnable = cmd.startswith(_STARTS) and " " in cmd and not _is_synopsis(cmd) and not mention
                if runnable:
                    found.setdefault(cmd, where)
    return [(where, cmd) for cmd, where in found.items()]


def _experiment_segment(segment: str) -> bool:
    words = segment.split()
    i = next((j for j, w in enumerate(words) if w in ("elastic-theory", "elastic_theory")), None)
    return i is not None and words[i + 1:i + 2] == ["experiment"] and "--help" not in words


def dry_run(command: str) -> str | None:
    """The command's dry run: each ``&&`` part up to and including its last experiment with ``--dry-run``
    added, what follows (reading the run's output) left out; None when the command runs no experiment."""
    parts = command.split(" && ")
    last = max((i for i, p in enumerate(parts) if _experiment_segment(p)), default=None)
    if last is None:
        return None
    return " && ".join(p + " --dry-run" if _experiment_segment(p) else p for p in parts[:last + 1])


def in_process_dry_run(command: str) -> list[list[str]] | None:
    """The ``elastic-theory`` arguments of each ``&&`` part of a dry run when every part is ``[nice -n N]
    elastic-theory experiment ... --dry-run``; None for any other command (the shell runs it)."""
    runs = []
    for part in command.split(" && "):
        words = shlex.split(part)
        if words[:2] == ["nice", "-n"]:
            words = words[3:]  # the priority of a process that trains nothing here
        if words[:2] != ["elastic-theory", "experiment"] or words[-1] != "--dry-run":
            return None
        runs.append(words[1:])
    return runs


def _marks(command: str):
    marks = []
    if dry_run(command) is not None and not RUN_LONG:
        command = dry_run(command)
    full_experiment = " experiment " in f" {command}" and "--quick" not in command and "--help" not in command
    full_experiment = full_experiment and "--dry-run" not in command
    if full_experiment or any(s in command for s in _LONG):  # bench_scoring --repeats 3 is about 15 minutes: opt-in, CI has 90 minutes
        marks.append(pytest.mark.skipif(not RUN_LONG, reason="benchmark, study script or full experiment: set RUN_LONG_COMMANDS=1"))
    if "--suite gpu" in command:
        marks.append(pytest.mark.gpu)
    if "smollm2-135m" in command:
        marks.append(optional.SMOLLM2)
    if "gemma3-270m" in command:
        marks.append(optional.GEMMA3)
    if "jailbreakbench" in command or (" experiment " in f" {command}" and "--model" in command):
        marks.append(optional.JAILBREAKBENCH)  # the real-model protocols read its behaviours by default (setting safety)
    full_verify = command.startswith("elastic-theory verify") and "--claim" not in command and "--help" not in command
    if "--dry-run" in command and in_process_dry_run(command) is not None:
        return marks  # checks only, in this process: well under a second (the first one imports torch here)
    if marks or full_verify or any(s in command for s in _SLOW):  # a subprocess importing torch: slow
        marks.append(pytest.mark.slow)
    return marks


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory):
    """A copy of the checkout without build outputs, with ``elastic-theory`` and ``python`` on PATH (as after
    ``source .venv/bin/activate``) running this interpreter on the copy's sources."""
    root = tmp_path_factory.mktemp("clone") / "elastic-theory"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", ".hypothesis", ".pytest_cache", "plots", "*.json.tmp", "runs", "demo-report", "models"))
    bin_dir = root.parent / "bin"
    bin_dir.mkdir()
    for name, target in (("elastic-theory", f'"{sys.executable}" -m elastic_theory'), ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(root),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return root, env


@pytest.mark.parametrize(
    "where, command", [pytest.param(w, c, marks=_marks(c), id=c[:70]) for w, c in page_commands()
                       if c not in RUN_BY_TESTS and not _suite_runs(c)]
)
def test_the_command_runs_as_pasted(fresh_checkout, where, command):
    root, env = fresh_checkout
    if not RUN_LONG and dry_run(command) is not None:
        command = dry_run(command)
        runs = in_process_dry_run(command)
        if runs is not None:
            from typer.testing import CliRunner

            from elastic_theory.cli import app

            for args in runs:
                with pytest.MonkeyPatch.context() as mp:
                    mp.chdir(root)
                    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
                        mp.setenv(name, "1")
                    result = CliRunner().invoke(app, args)
                assert result.exit_code == 0, f"{where}: {command}\n{result.output[-2000:]}"
                assert "every check passed, nothing was run" in result.output, result.output
            return
    if command.startswith(".venv/bin/"):
        command = command.removeprefix(".venv/bin/")  # the fresh copy has no .venv; PATH stands in for it
    proc = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"{where}: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr


def test_the_pages_name_commands_and_example_files_that_exist():
    """The extraction finds the README's commands, and every examples/ file a page names is committed."""
    commands = [c for _, c in page_commands()]
    assert any(c.startswith("elastic-theory perturb --pretrain examples/P.jsonl") for c in commands)
    assert any(c.startswith("elastic-theory measure --model smollm2-135m") for c in commands)
    named = {m for page in PAGES for m in re.findall(r"examples/[\w.]+\.(?:jsonl|txt|json)", page.read_text())}
    assert named and all((ROOT / m).is_file() for m in named), named


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the text examples are Python 3.11's help text")
def test_the_example_files_are_the_generators_output():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import make_examples
    finally:
        sys.path.pop(0)
    for name, text in make_examples.files().items():
        assert (ROOT / "examples" / name).read_text(encoding="utf-8") == text, name


def test_commands_run_elsewhere_are_run_there():
    """Every command this file does not run is on a page and is run by the suite: ``python -m pytest PATH`` only on
    the suite's own test paths (checked against pyproject.toml), each :data:`RUN_BY_TESTS` entry by a test that
    exists and passes the command's arguments, word for word, to the same subcommand (a test may pass more: one
    verification with ``--faults --markdown --json ... --plots ...`` is the run of the pages' four verify commands).

    Killed: a page command dropped from the suite because its entry points at a renamed or deleted test, or at a
    test that runs the subcommand with other options (a ``--quick`` page command checked by a test without it)."""
    import ast
    import tomllib

    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    assert tuple(testpaths) == _TESTPATHS
    commands = [c for _, c in page_commands()]
    assert any(_suite_runs(c) for c in commands)
    for command, test_id in RUN_BY_TESTS.items():
        assert command in commands, f"{command!r} is no longer on a page: drop it from RUN_BY_TESTS"
        path, name = test_id.split("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
        strings = {n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for decorator in fn.decorator_list:  # parametrized values count as the test's own arguments
            strings |= {n.value for n in ast.walk(decorator) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        words = command.split()[1:]
        missing = [w for w in words if w not in strings]
        assert not missing, f"{test_id} does not pass {missing} of {command!r}"
