"""The public API: every listed name imports from the top level and its subpackage, has a docstring, loads lazily,
and docs/api.md is what the code generates.

Wrong implementations these tests kill: an export table naming a module that no longer provides the name (a move
without updating it); a name added to a module's ``__all__`` but not exported by its subpackage; a top-level name
that is a different object from the subpackage's; eager imports in ``__init__`` (``import elastic_theory`` pulling in
torch, or every theory module); a ``__getattr__`` that returns None instead of raising AttributeError; two modules
exporting one name (the second silently winning); a page not regenerated after an API change.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import elastic_theory

ROOT = Path(__file__).resolve().parents[1]
LAZY = ("theory", "stats", "data", "infra")  # subpackages whose __init__ is an export table (EXPORTS)
NO_TORCH = ("theory", "stats", "data", "infra", "claims", "testing")


def _api_docs():
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


API_DOCS = _api_docs()
SUBPACKAGE_NAMES = [(package, name) for package in API_DOCS.SUBPACKAGES for name in API_DOCS.exported(package)]
TOP_LEVEL_NAMES = [(package, name) for package, names in elastic_theory.PUBLIC.items() for name in names]


@pytest.mark.parametrize(("package", "name"), TOP_LEVEL_NAMES, ids=[n for _, n in TOP_LEVEL_NAMES])
def test_top_level_name_is_the_subpackage_name(package, name):
    subpackage = importlib.import_module(f"elastic_theory.{package}")
    assert name in subpackage.__all__, f"elastic_theory.{name} is not exported by elastic_theory.{package}"
    assert getattr(elastic_theory, name) is getattr(subpackage, name)
    assert name in elastic_theory.__all__ and name in dir(elastic_theory)


@pytest.mark.parametrize(("package", "name"), SUBPACKAGE_NAMES, ids=[f"{p}.{n}" for p, n in SUBPACKAGE_NAMES])
def test_every_exported_name_imports_and_has_a_docstring(package, name):
    namespace: dict = {}
    exec(f"from elastic_theory.{package} import {name}", namespace)  # the way users write it
    assert namespace[name] is getattr(importlib.import_module(f"elastic_theory.{package}"), name)
    kind, where, doc = API_DOCS.describe(package, name)
    assert where.startswith("elastic_theory"), where
    assert doc and doc.strip(), f"elastic_theory.{package}.{name} ({kind} in {where}) has no docstring"


@pytest.mark.parametrize("package", LAZY)
def test_export_table_lists_each_module_all_exactly(package):
    """Each module of the table contributes its whole ``__all__`` (less names of the package's own submodules, which
    ``from package import name`` would confuse with the module): no public name is left out or invented."""
    subpackage = importlib.import_module(f"elastic_theory.{package}")
    submodules = {info.name for info in pkgutil.iter_modules(subpackage.__path__)}
    for source, names in subpackage.EXPORTS.items():
        module = importlib.import_module(source, subpackage.__name__)
        assert list(names) == [n for n in module.__all__ if n not in submodules], source
    assert sorted(subpackage.__all__) == sorted(n for names in subpackage.EXPORTS.values() for n in names)


def test_unknown_names_raise_attribute_error():
    for module in (elastic_theory, *(importlib.import_module(f"elastic_theory.{p}") for p in LAZY)):
        with pytest.raises(AttributeError, match="no attribute 'TokenTre'"):
            module.TokenTre  # noqa: B018
        assert not hasattr(module, "no_such_name")


def test_lazy_exports_refuses_a_name_exported_twice_or_shadowing_a_submodule():
    with pytest.raises(ValueError, match="exported by both"):
        elastic_theory.lazy_exports("elastic_theory.infra", {".rundir": ("RunDir",), ".trainconfig": ("RunDir",)})
    with pytest.raises(ValueError, match=r"\['provenance'\] also name submodules"):
        elastic_theory.lazy_exports("elastic_theory.infra", {".rundir": ("provenance",)})


@pytest.mark.slow  # a fresh interpreter importing every torch-free module, then torch and transformers
def test_import_is_lazy_and_theory_names_never_import_torch():
    """In a fresh interpreter: ``import elastic_theory`` loads no subpackage; then every top-level and subpackage name
    of the torch-free layers loads without torch (and the first empirical name does import it: the probe can see torch)."""
    names = [(p, n) for p, n in TOP_LEVEL_NAMES + SUBPACKAGE_NAMES if p in NO_TORCH]
    code = f"""
import json, sys, importlib
import elastic_theory
first = sorted(m for m in sys.modules if m.startswith("elastic_theory"))
for package, name in {names!r}:
    getattr(importlib.import_module("elastic_theory." + package), name)
    getattr(elastic_theory, name, None)
after_theory = "torch" in sys.modules
elastic_theory.measure_rates
print(json.dumps([first, after_theory, "torch" in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    first, after_theory, after_empirical = json.loads(out.stdout.splitlines()[-1])
    assert first == ["elastic_theory"]
    assert after_theory is False
    assert after_empirical is True


@pytest.mark.slow  # imports every subpackage, torch included, and reads the docstrings of all public names
def test_docs_api_page_is_generated_from_the_code():
    page = ROOT / "docs" / "api.md"
    assert page.read_text(encoding="utf-8") == API_DOCS.render(), "docs/api.md is out of date: python scripts/api_docs.py"
