"""Package-level guarantees: the core imports without torch, the CLI answers --help."""

import importlib
import inspect
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from elastic_theory.claims.registry import TOPICS
from elastic_theory.theory.rates import gamma, normalized_gamma
from elastic_theory.theory.tolerances import roundings
from elastic_theory.theory.divergence import cross_entropy, kl_divergence, model_leaf_probs
from elastic_theory.theory.tree import TokenTree


CORE_MODULES = ("theory.tree", "theory.sequences", "theory.enumeration", "theory.prefix_index", "theory.mixing",
                "theory.divergence", "theory.coding", "theory.rates", "data.io", "infra.provenance", "theory.elasticity",
                "theory.symbolic", "theory.highprec", "theory.pareto", "claims", "testing", "data.builtin_text", "cli",
                "stats.comparison", "data.corpora", "data.synthetic", "infra.rundir", "infra.trainconfig", "experiments",
                "experiments.synthetic.joint_ratio", "experiments.synthetic.sequential_ratio", "stats.behaviour",
                "stats.twophase", "stats.phases", "stats.phase_order", "stats.phase_claim", "stats.seedstats", "stats.entropy_matching", "experiments.synthetic.resistance",
                "experiments.synthetic.rebound", "experiments.synthetic.scaling", "theory.units",
                "theory.elasticity.closed_forms", "theory.elasticity.hooke", "theory.elasticity.precision",
                "theory.elasticity.perturbation", "theory.elasticity.inverse_alignment", "theory.pareto.masses",
                "theory.pareto.power_law", "theory.pareto.counts_test", "registry",
                *(f"claims.{topic}" for topic in TOPICS))  # importing claims alone loads no topic: its registry is lazy


def test_core_import_does_not_load_torch_or_transformers():
    """``import elastic_theory`` and every core module must not pull in torch/transformers (slow, heavy), nor
    sympy or matplotlib (imported inside the functions that need them, so ``--help`` stays fast)."""
    code = (
        "import sys, importlib, elastic_theory;"
        f"[importlib.import_module('elastic_theory.' + m) for m in {CORE_MODULES!r}];"
        "bad = [m for m in ('torch', 'transformers', 'sympy', 'matplotlib') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"core import loaded: {proc.stdout.strip()} {proc.stderr[-500:]}"


def test_cli_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "elastic_theory", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "tree" in proc.stdout


def _tree_parameters(fn) -> list[inspect.Parameter]:
    """The parameters of ``fn`` that take one token tree (or a perturbation model standing for one)."""
    return [p for p in inspect.signature(fn).parameters.values()
            if isinstance(p.annotation, str) and p.annotation.split(".")[-1] in ("TokenTree", "PerturbationModel",
                                                                                 "TokenTree | None")]


def test_every_function_taking_two_trees_takes_them_by_name():
    """One argument order cannot be swapped silently: wherever a public function takes two or more trees (data and
    model, p0 and p0'), each is keyword-only. A function left positional (the old ``gamma(model, data)`` next to
    ``cross_entropy(data, model)``) fails here."""
    checked = []
    for name in CORE_MODULES:
        module = importlib.import_module(f"elastic_theory.{name}")
        for fname, fn in vars(module).items():
            if fname.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                continue
            trees = _tree_parameters(fn)
            if len(trees) >= 2:
                checked.append(fname)
                positional = [p.name for p in trees if p.kind is not inspect.Parameter.KEYWORD_ONLY]
                assert not positional, f"{name}.{fname} takes trees {positional} positionally"
    assert {"gamma", "normalized_gamma", "cross_entropy", "kl_divergence", "model_leaf_probs", "rho",
            "inverse_alignment", "mp_dcross_entropy_dl"} <= set(checked)


def test_a_swapped_data_and_model_raises_instead_of_giving_another_number():
    """The issue's example: ``gamma(data, model)`` with the trees swapped gave 0.5 instead of 0.6038 bits per token.
    Positionally it now raises; by name the order does not matter."""
    data = TokenTree.from_sequences([[0, 1], [1, 1]], 2)
    model = TokenTree.from_sequences([[0, 1], [1, 1]], 2, counts=[3, 1])
    for fn in (gamma, normalized_gamma, cross_entropy, kl_divergence, model_leaf_probs):
        with pytest.raises(TypeError):
            fn(model, data)
    assert gamma(model=model, data=data) == gamma(data=data, model=model)
    # CE = (log2(4/3) + 2)/2 bits per response over 2 tokens (docs/rates.md worked example)
    assert gamma(data=data, model=model) == pytest.approx((math.log2(4 / 3) + 2) / 4, rel=roundings(4))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ci_profile_runs_fixed_examples_without_a_saved_database():
    """The "ci" profile of tests/conftest.py is derandomized and reads no ``.hypothesis/`` database by itself, not
    only when hypothesis's own CI detection supplies those defaults; the local profile keeps the random search.
    Checked in a fresh interpreter without ``CI`` that loads conftest the way pytest does."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); import conftest; from hypothesis import settings;"
        "ci, dev = settings.get_profile('ci'), settings.default;"
        "print(ci.derandomize, ci.database is None, dev.derandomize, dev.database is None)"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.split() == ["True", "True", "False", "False"], proc.stdout


def test_the_ci_script_selects_the_ci_profile(tmp_path):
    """``.ci/run`` sets ``CI`` before it hands over to the README's test command, so the deterministic profile is
    used even on a runner that does not set ``CI``. A stand-in ``bash`` on PATH reports what it was given."""
    fake = tmp_path / "bash"
    fake.write_text('#!/bin/sh\necho "CI=$CI args=$*"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["/bin/bash", os.path.join(ROOT, ".ci", "run")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.split() == ["CI=true", "args=scripts/bootstrap.sh", "test"], proc.stdout


def test_packaging_keeps_the_core_light():
    """pyproject: the core depends on none of torch, transformers, matplotlib; [empirical] and [plots] add them,
    [test] pulls both; the license is an SPDX string (a TOML table made setuptools warn on every install); the
    README's commands (scripts/bootstrap.sh) install every extra."""
    import tomllib

    project = tomllib.loads((Path(ROOT) / "pyproject.toml").read_text())["project"]
    names = lambda reqs: {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in reqs}  # noqa: E731
    heavy = {"torch", "transformers", "matplotlib"}
    assert not names(project["dependencies"]) & heavy
    extras = project["optional-dependencies"]
    assert {"torch", "transformers"} <= names(extras["empirical"]) and names(extras["plots"]) == {"matplotlib"}
    assert "elastic-theory[empirical,plots]" in extras["test"]
    assert project["license"] == "Apache-2.0"
    assert '-e ".[empirical,plots,test]"' in (Path(ROOT) / "scripts" / "bootstrap.sh").read_text()


@pytest.mark.parametrize(
    ("hidden", "args", "message"),
    [
        ("matplotlib", ["verify", "--claim", "ratio_limit", "--plots", "figs"], "--plots needs matplotlib, which is not "
         "installed: pip install 'elastic-theory[plots]'"),
        ("torch", ["measure", "--model", "m", "--data", "a=b.txt"], "measure needs torch, which is not installed: "
         "pip install 'elastic-theory[empirical]'"),
    ],
)
def test_a_missing_extra_is_named_before_any_work(hidden, args, message, monkeypatch, tmp_path):
    """Without an optional package the command exits 2 with one line naming the extra to install, before it runs
    anything (no traceback from a late import, no claim computed, no model loaded)."""
    from typer.testing import CliRunner

    from elastic_theory.cli import app

    monkeypatch.setitem(sys.modules, hidden, None)  # makes `import hidden` raise ImportError
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and res.stderr == f"error: {message}\n"
    assert not (tmp_path / "figs").exists()
