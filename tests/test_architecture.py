"""The layers of docs/architecture.md, checked on the source: who may import whom, no import circle, sizes.

Every ``import`` and ``from ... import`` of the package is read with ``ast`` (those inside functions too: a lazy
import still makes a dependency, and a circle through one breaks as soon as the two modules are imported in the other
order). Wrong layouts these tests kill: a theory module importing from ``empirical`` (torch in the core) or from
``experiments``; a library layer importing the command line; two sibling modules importing each other inside
functions (the circle that ``experiments/lm`` once had); a module grown past 400 lines; a function over 80 lines with
no comment saying why it is one idea; a seventh module at the root of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "elastic_theory"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_ROOT_MODULES = 6

#: The layer of each folder (and of the root modules), and the layers it may import: the table of docs/architecture.md.
#: ``base`` is what every layer may use: the public-API helper (``__init__``), argument checks and the registry shape.
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "theory": {"base", "theory"},
    "testing": {"base", "theory", "testing"},
    "stats": {"base", "theory", "stats"},
    "data": {"base", "theory", "stats", "data"},
    "infra": {"base", "theory", "stats", "data", "infra"},
    "empirical": {"base", "theory", "stats", "data", "infra", "empirical"},
    "experiments": {"base", "theory", "stats", "data", "infra", "empirical", "experiments"},
    "claims": {"base", "theory", "data", "testing", "claims"},
    "cli": {"base", "theory", "stats", "data", "infra", "empirical", "experiments", "claims", "testing", "cli"},
    "main": {"cli"},
}
_ROOT_LAYERS = {"__init__": "base", "_validation": "base", "registry": "base", "testing": "testing", "__main__": "main"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
SOURCES = {m: p.read_text(encoding="utf-8") for m, p in MODULES.items()}
TREES = {m: ast.parse(source) for m, source in SOURCES.items()}


def layer(module: str) -> str:
    """The layer of ``elastic_theory.X...``: the folder ``X``, or the root module's own layer."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    return _ROOT_LAYERS.get(parts[1], parts[1]) if (PACKAGE / f"{parts[1]}.py").exists() else parts[1]


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports for annotations only, never run)."""
    for node in ast.iter_child_nodes(tree):
        test = node.test if isinstance(node, ast.If) else None
        if test is not None and (getattr(test, "id", None) or getattr(test, "attr", None)) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports(module: str) -> set[str]:
    """The package modules that ``module`` imports anywhere in its source (a name imported from a package counts as
    its submodule when one of that name exists)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(TREES[module]):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] == "elastic_theory" and t in MODULES)
    found.discard(module)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def test_the_resolver_sees_the_imports_it_must():
    """The checks below are only as good as the import reader: known edges of every kind are found."""
    assert "elastic_theory.theory.tree" in GRAPH["elastic_theory.theory.divergence"] or \
        "elastic_theory.theory.tree" in GRAPH["elastic_theory.theory.mixing"]  # relative, module level
    assert "elastic_theory.theory.tree" in GRAPH["elastic_theory.testing"]  # relative from the root
    assert any(layer(m) == "empirical" for m in GRAPH["elastic_theory.cli.measure_cmd"])  # inside a function
    assert layer("elastic_theory.theory.elasticity.hooke") == "theory" and layer("elastic_theory.registry") == "base"
    assert "elastic_theory.theory.tree" not in GRAPH["elastic_theory.theory.prefix_index"]  # under TYPE_CHECKING only


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_own_and_lower_layers(module):
    own = layer(module)
    assert own in ALLOWED, f"{module}: folder {own!r} is not in the layer table (docs/architecture.md)"
    wrong = sorted(m for m in GRAPH[module] if layer(m) not in ALLOWED[own])
    assert not wrong, f"{module} ({own}) imports {wrong}; {own} may import {sorted(ALLOWED[own])}"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan): each is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circles_finds_a_circle_through_three_modules_and_none_in_a_chain():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle():
    """Every strongly connected component of the module graph is a single module. A package's ``__init__`` importing
    its own submodules is the one allowed edge back (the submodule imports its siblings, never the package's names), so
    edges into a package ``__init__`` from inside that package are left out."""
    def into_own_package(src: str, dst: str) -> bool:
        return MODULES[dst].name == "__init__.py" and src.startswith(dst + ".")

    graph = {m: {d for d in ds if not into_own_package(m, d)} for m, ds in GRAPH.items()}
    assert not circles(graph)


def test_no_module_over_400_lines():
    sizes = {m: len(source.splitlines()) for m, source in SOURCES.items()}
    assert not {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES}


def test_a_function_over_80_lines_says_why_it_is_one_idea():
    """Its ``def`` (or first decorator) is preceded by a comment line: the reason it is not split."""
    long = []
    for module, source in SOURCES.items():
        lines = source.splitlines()
        for node in ast.walk(TREES[module]):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if length > MAX_FUNCTION_LINES and not lines[first - 2].lstrip().startswith("#"):
                    long.append(f"{module}.{node.name}: {length} lines")
    assert not long, long


def test_the_root_holds_subpackages_and_at_most_six_modules():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root
    assert set(_ROOT_LAYERS) >= {p[:-3] for p in root}, f"a root module without a layer: {root}"
