"""Every ``--option`` that a user-facing message names exists on the command that shows the message.

A message is a string inside a ``raise`` or inside a call of ``echo``/``print``/``fail``/``interrupted``/``warn``
(f-string parts included), read with ``ast`` from every module of the package; ``pip install`` commands are not
options of ours. The commands that can show a message:

* a message of a command module (``cli/*_cmd.py``): that module's commands (one of them must have the option);
* a message of any other module, in top-level function or class ``F``: every command module that names ``F`` and
  imports the module (or its package), directly or in a function of ``cli/app.py`` or ``cli/inputs.py`` that it
  calls; the option must be on one command of each such module.

An option that follows a command's name in the message (``compare --base MODEL``, ``corpus NAME --split measure``)
belongs to that command instead. Wrong states this kills: ``compare`` saying "give one with --tokenizer PATH" without
a ``--tokenizer`` option (the issue's case), a renamed option left in a message, a message naming another
command's option without naming that command.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

from elastic_theory.cli import app
from tests.test_architecture import GRAPH

PACKAGE = Path(__file__).resolve().parents[2] / "elastic_theory"
OPTION = re.compile(r"--[a-z][a-z0-9-]*")
MESSAGE_CALLS = {"echo", "secho", "print", "fail", "interrupted", "warn", "ValueError"}
ROOT = typer.main.get_command(app)
COMMANDS: dict[str, set[str]] = {
    name: {"--help", *(o for p in cmd.params for o in (*p.opts, *p.secondary_opts))}
    for name, cmd in ROOT.commands.items()
}
MODULE_COMMANDS: dict[str, list[str]] = {}
for _name, _cmd in ROOT.commands.items():
    MODULE_COMMANDS.setdefault(_cmd.callback.__module__, []).append(_name)


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def attributed_options(text: str) -> list[tuple[str, str | None]]:
    """``(option, command or None)`` for every option in ``text``: the command is the one whose name is followed by
    an option within two words, up to the end of that clause (a word ending in ``.``, ``;``, ``,`` or ``)``)."""
    text = re.sub(r"pip install[^;)]*", "", text)
    words = text.split()
    out, current = [], None
    for i, word in enumerate(words):
        bare = word.strip("`'\"(")
        if bare in COMMANDS and any(w.lstrip("`'\"(").startswith("--") for w in words[i + 1 : i + 3]):
            current = bare
        for option in OPTION.findall(word):
            if word.lstrip("`'\"(").startswith(option):
                out.append((option, current))
        if word.rstrip("`'\"").endswith((".", ";", ",", ")")):
            current = None
    return out


def messages(path: Path) -> list[tuple[str, str | None, int, str | None]]:
    """``(option, command named before it or None, line, enclosing top-level name)`` of every message in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for top in tree.body:
        for node in ast.walk(top):
            if isinstance(node, ast.Raise) and node.exc is not None:
                roots = [node.exc]
            elif isinstance(node, ast.Call) and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in MESSAGE_CALLS:
                roots = node.args
            else:
                continue
            for root in roots:
                parts = [n for n in ast.walk(root) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                for part in parts:
                    found += [(o, c, part.lineno, getattr(top, "name", None)) for o, c in attributed_options(part.value)]
    return found


def _tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE.parent / Path(*module.split("."))).with_suffix(".py").read_text(encoding="utf-8"))


def _named(node: ast.AST) -> set[str]:
    return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            | {n.name.split(".")[-1] for n in ast.walk(node) if isinstance(n, ast.alias)})


HELPERS = [m for m in GRAPH if m.startswith("elastic_theory.cli.") and m not in MODULE_COMMANDS
           and m != "elastic_theory.cli"]
"""The command line's shared modules (``app.py``, ``inputs.py``): a command that calls one of their functions
shows the messages of what that function calls."""


def _reach(module: str) -> tuple[set[str], set[str]]:
    """The names a command module uses and the modules it imports, through the functions it calls of the helpers."""
    names, imported = _named(_tree(module)), set(GRAPH[module])
    for helper in HELPERS:
        if helper in GRAPH[module]:
            for top in _tree(helper).body:
                if isinstance(top, ast.FunctionDef) and top.name in names:
                    names |= _named(top)
                    imported |= GRAPH[helper]
    return names, imported


REACH = {module: _reach(module) for module in MODULE_COMMANDS}


def showing_modules(module: str, top: str | None) -> list[str]:
    """The command modules whose commands can show a message of ``module`` written in ``top``."""
    if module in MODULE_COMMANDS:
        return [module]
    package = module.rsplit(".", 1)[0]
    return [m for m in MODULE_COMMANDS
            if top is not None and top in REACH[m][0] and (module in REACH[m][1] or package in REACH[m][1])]


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        for option, command, line, top in messages(path):
            if command is not None:
                if option not in COMMANDS[command]:
                    out.append(f"{path.name}:{line}: {option} is not an option of {command}")
                continue
            for shower in showing_modules(module, top):
                if not any(option in COMMANDS[c] for c in MODULE_COMMANDS[shower]):
                    out.append(f"{path.name}:{line}: {option} (in {top}) is not an option of "
                               f"{'/'.join(MODULE_COMMANDS[shower])}, which can show it")
    return out


def test_every_option_a_message_names_exists_on_the_command_that_shows_it():
    assert violations() == []


def test_the_reader_finds_the_messages_it_must():
    """The check is only as good as its reader: known messages are found and attributed, and a planted wrong
    option is reported."""
    loading = [(o, t) for o, _, _, t in messages(PACKAGE / "empirical" / "loading.py")]
    assert ("--tokenizer", "locate_model") in loading
    assert "elastic_theory.cli.compare_cmd" in showing_modules("elastic_theory.empirical.loading", "locate_model")
    measure = messages(PACKAGE / "cli" / "measure_cmd.py")
    assert ("--checkpoint", "compare") in [(o, c) for o, c, _, _ in measure]
    assert attributed_options("e.g. from corpus NAME --split measure with the seed; give --out") == [
        ("--split", "corpus"), ("--out", None)]
    assert attributed_options("pip install --no-deps x; use --json") == [("--json", None)]
    COMMANDS["compare"].discard("--tokenizer")
    try:
        assert any("--tokenizer (in locate_model) is not an option of compare" in v for v in violations())
    finally:
        COMMANDS["compare"].add("--tokenizer")


def test_the_option_table_holds_every_command_and_both_forms_of_a_flag():
    assert {"measure", "compare", "corpus", "finetune", "experiment", "plot"} <= set(COMMANDS)
    assert {"--base", "--tokenizer", "--progress", "--no-progress", "--help"} <= COMMANDS["compare"]
    assert "--tokenizer" not in COMMANDS["corpus"]
