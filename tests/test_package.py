"""Package-level guarantees: the core imports without torch, the CLI answers --help."""

import subprocess
import sys


def test_core_import_does_not_load_torch_or_transformers():
    """``import elastic_theory`` and its core modules must not pull in torch/transformers (slow, heavy)."""
    code = (
        "import sys, elastic_theory, elastic_theory.tree, elastic_theory.rates, elastic_theory.cli;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"core import loaded: {proc.stdout.strip()} {proc.stderr[-500:]}"


def test_cli_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "elastic_theory", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "tree" in proc.stdout
