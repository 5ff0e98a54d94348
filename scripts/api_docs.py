"""Write docs/api.md, the public API, from the code: the top-level names and every subpackage's exports.

    python scripts/api_docs.py            # rewrite docs/api.md
    python scripts/api_docs.py --check    # exit 1 (and say which line differs) when docs/api.md is out of date

For each name: what it is (class, function, Hypothesis strategy, constant), the module that defines it and the first
sentence of its docstring. A constant's docstring is the string literal after its assignment, or the ``#:`` comment
lines above it (the Sphinx conventions); ``tests/test_public_api.py`` fails for a public name that has none.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import functools
import importlib
import inspect
import pkgutil
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api.md"
SUBPACKAGES = ("theory", "stats", "data", "infra", "empirical", "experiments", "claims", "testing")
_PLAIN = (bool, int, float, complex, str, bytes, tuple, list, dict, frozenset, set, type(None))


def exported(package: str) -> list[str]:
    """The public names of ``elastic_theory.<package>`` (its ``__all__``), in order."""
    return list(importlib.import_module(f"elastic_theory.{package}").__all__)


def _defining_module(package: str, name: str) -> str:
    """The module that provides ``name`` of ``elastic_theory.<package>``: the object's own module, or, for a constant,
    the module of the package (or one of its submodules) that assigns it."""
    module = importlib.import_module(f"elastic_theory.{package}")
    obj = getattr(module, name)
    own = getattr(obj, "__module__", None)  # an instance's is its class's: a constant is found by its assignment
    if isinstance(own, str) and own.startswith("elastic_theory") and (inspect.isclass(obj) or inspect.isroutine(obj)):
        return own
    candidates = [module.__name__]
    if hasattr(module, "__path__"):
        candidates += [info.name for info in pkgutil.walk_packages(module.__path__, f"{module.__name__}.")]
    for candidate in candidates:
        if _assignment(candidate, name) is not None:
            return candidate
    return module.__name__


@functools.lru_cache(maxsize=None)
def _parsed(module_name: str) -> tuple[list[ast.stmt], list[str]] | None:
    """The module's top-level statements and source lines (None for a module without source)."""
    path = inspect.getsourcefile(importlib.import_module(module_name))
    if path is None:
        return None
    source = Path(path).read_text(encoding="utf-8")
    return ast.parse(source).body, source.splitlines()


def _assignment(module_name: str, name: str) -> tuple[list[ast.stmt], int, list[str]] | None:
    """``(module body, index of the statement assigning name, source lines)``, or None when the module assigns no ``name``."""
    parsed = _parsed(module_name)
    if parsed is None:
        return None
    body, lines = parsed
    for i, node in enumerate(body):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return body, i, lines
    return None


def _constant_doc(module_name: str, name: str) -> str | None:
    """The docstring of module-level constant ``name``: the string after its assignment or the ``#:`` lines above."""
    found = _assignment(module_name, name)
    if found is None:
        return None
    body, i, lines = found
    after = body[i + 1] if i + 1 < len(body) else None
    if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
        return inspect.cleandoc(after.value.value)
    comments, j = [], body[i].lineno - 2
    while j >= 0 and lines[j].lstrip().startswith("#:"):
        comments.insert(0, lines[j].lstrip()[2:].strip())
        j -= 1
    return " ".join(comments) or None


def describe(package: str, name: str) -> tuple[str, str, str | None]:
    """``(kind, defining module, docstring or None)`` of public name ``name`` of ``elastic_theory.<package>``."""
    obj = getattr(importlib.import_module(f"elastic_theory.{package}"), name)
    where = _defining_module(package, name)
    if inspect.isclass(obj):
        return "class", where, inspect.getdoc(obj)
    if typing.get_origin(obj) is not None:
        return "type", where, _constant_doc(where, name)
    if callable(obj) and not isinstance(obj, _PLAIN):
        kind = "strategy" if package == "testing" and not name.startswith("_") else "function"
        return kind, where, inspect.getdoc(obj)
    return "constant", where, _constant_doc(where, name)


def _summary(doc: str | None) -> str:
    """The first sentence (or first line) of ``doc``, with table pipes escaped."""
    if not doc:
        return ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    end = re.search(r"(?<!\.)\.\s+(?=[A-Z])", first)  # a full stop before a capital ("2 .. N" is no sentence end)
    text = first if end is None else first[: end.start() + 1]
    return text.replace("|", "\\|")


def render() -> str:
    """The whole page."""
    import elastic_theory

    out = [
        "# Public API",
        "",
        "Generated from the code by `python scripts/api_docs.py` (a test fails when this page is out of date). "
        "Every name here imports from its subpackage (`from elastic_theory.theory import TokenTree`); the names of "
        "the first table also from the top level (`from elastic_theory import TokenTree, PerturbationModel`). "
        "Names load on first use: `import elastic_theory` imports no subpackage, and no name of `theory`, `stats`, "
        "`data`, `infra`, `claims` or `testing` imports torch (those of `empirical` do). Modules not listed here are "
        "internal and may move.",
        "",
        "## Top level",
        "",
        "| name | from | what it is |",
        "|---|---|---|",
    ]
    for package, names in elastic_theory.PUBLIC.items():
        for name in names:
            kind, _, doc = describe(package, name)
            out.append(f"| `{name}` | `elastic_theory.{package}` | {kind}: {_summary(doc)} |")
    for package in SUBPACKAGES:
        module = importlib.import_module(f"elastic_theory.{package}")
        out += ["", f"## `elastic_theory.{package}`", "", _summary(inspect.getdoc(module)), "",
                "| name | kind | defined in | what it is |", "|---|---|---|---|"]
        for name in exported(package):
            kind, where, doc = describe(package, name)
            out.append(f"| `{name}` | {kind} | `{where}` | {_summary(doc)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/api.md instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        old = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if old != text:
            diff = difflib.unified_diff(old.splitlines(), text.splitlines(), "docs/api.md", "generated", lineterm="", n=0)
            print("\n".join(list(diff)[:20]), file=sys.stderr)
            print("docs/api.md is out of date: run python scripts/api_docs.py", file=sys.stderr)
            return 1
        return 0
    tmp = PAGE.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(PAGE)
    print(f"wrote {PAGE.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
