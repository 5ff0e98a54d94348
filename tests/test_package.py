"""Package-level guarantees: the core imports without torch, the CLI answers --help."""

import subprocess
import sys


CORE_MODULES = ("tree", "coding", "rates", "io", "elasticity", "symbolic", "highprec", "pareto", "claims",
                "testing", "examples", "cli")


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
