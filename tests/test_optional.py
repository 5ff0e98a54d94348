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
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    for module, command in optional.INSTALL.items():
        *flags, requirement = command.removeprefix("pip install ").split()
        if module == "lm_eval":
            assert flags == [] and re.search(rf'"{requirement}[>=<]', pyproject), command
        else:
            assert re.search(rf'pip install --quiet (-c \S+ )?{" ".join(flags)} "{re.escape(requirement)}"', script), command

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
