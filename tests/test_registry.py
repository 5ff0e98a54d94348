"""The one registry shape of claims and experiments: ordered unique names, aliases, lookups, lazy loading."""

from __future__ import annotations

import importlib
import sys

import pytest

from elastic_theory.registry import Registry

HOME, FIRST, SECOND = "registry_test_home", "registry_test_first", "registry_test_second"


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Three importable modules: HOME holds a registry of FIRST and SECOND, which register into it on import."""
    (tmp_path / f"{HOME}.py").write_text(
        f"from elastic_theory.registry import Registry\nREG = Registry('thing', [{FIRST!r}, {SECOND!r}])\n")
    (tmp_path / f"{FIRST}.py").write_text(
        f"from {HOME} import REG\nREG.add('zeta', 1)\nREG.add('alpha', 2, aliases=['a', 'first'])\n")
    (tmp_path / f"{SECOND}.py").write_text(f"from {HOME} import REG\nREG.add('beta', 3, aliases=['b'])\n")
    monkeypatch.syspath_prepend(tmp_path)
    yield
    for name in (HOME, FIRST, SECOND):
        sys.modules.pop(name, None)


def test_the_first_lookup_imports_the_modules_and_their_order_is_the_registrys(modules):
    """Importing the registry's home imports nothing else; importing a later module first still gives the order of
    the module list (then each module's own order), not the order of the imports."""
    reg = importlib.import_module(HOME).REG
    assert FIRST not in sys.modules and SECOND not in sys.modules
    importlib.import_module(SECOND)  # its registration loads the registry: FIRST is imported then
    assert FIRST in sys.modules
    assert reg.names() == list(reg) == list(reg.keys()) == ["zeta", "alpha", "beta"]
    assert list(reg.values()) == [1, 2, 3] and dict(reg.items()) == {"zeta": 1, "alpha": 2, "beta": 3}
    assert reg.aliases == {"a": "alpha", "first": "alpha", "b": "beta"}
    assert len(reg) == 3 and "beta" in reg and "b" not in reg and reg["zeta"] == 1


def test_names_are_unique_and_lookups_say_what_is_known(modules):
    reg = importlib.import_module(HOME).REG
    with pytest.raises(ValueError, match="thing 'zeta' is registered twice"):
        reg.add("zeta", 9)
    assert reg.add("zeta", 1) == 1 and reg.names() == ["zeta", "alpha", "beta"]  # the same item again: no change
    with pytest.raises(ValueError, match="thing alias 'b' is registered twice"):
        reg.add("gamma", 4, aliases=["b"])
    assert "gamma" not in reg
    with pytest.raises(ValueError, match="unknown thing 'omega'; known: alpha, beta, zeta"):
        reg.get("omega")
    with pytest.raises(KeyError):
        reg["a"]


def test_an_alias_stands_for_its_name_unless_an_item_has_that_name(modules):
    """``resolve`` follows an alias only where no item has the name itself, or when asked to prefer the alias."""
    reg = importlib.import_module(HOME).REG
    reg.add("first", 5)  # an item named like alpha's alias
    assert reg.get("a") == 2 and reg.resolve("a") == "alpha"
    assert reg.resolve("first") == "first" and reg.resolve("first", prefer_alias=True) == "alpha"
    assert reg.resolve("unknown") == "unknown" and reg.resolve("beta", prefer_alias=True) == "beta"


def test_a_module_that_fails_to_import_is_tried_again(tmp_path, monkeypatch):
    (tmp_path / "registry_test_broken.py").write_text("raise ImportError('not yet')\n")
    monkeypatch.syspath_prepend(tmp_path)
    reg = Registry("thing", ["registry_test_broken"])
    for _ in range(2):
        with pytest.raises(ImportError, match="not yet"):
            reg.names()
