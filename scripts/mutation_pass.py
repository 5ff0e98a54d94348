"""Mutation pass: change one operator or constant of a library module at a time and run that module's tests.

A mutant is *killed* when its tests fail (or time out), *survived* when they all pass: a survivor
is a wrong implementation the suite cannot tell from the right one. The mutations are the usual
operator and constant ones (mutmut's classes): + <-> -, * <-> /, ** -> *, < <-> <=, > <-> >=,
== <-> !=, and <-> or, unary minus dropped, += <-> -=, max <-> min (also numpy's maximum/minimum),
ceil <-> floor, an int n -> n + 1, a float x -> 2x (0.0 -> 1.0). Strings, f-strings, ``raise``
statements (error messages) and annotations are left alone. Sites are enumerated in source order
and a seeded sample of ``--per-module`` of them is run per module, so a rerun gives the same
mutants; the sample is bounded because each mutant costs one test run (2 shared cores).

Each mutant is written with ``ast.unparse`` into a copy of the package in a temporary folder (the
working tree is never touched); the unmutated module is unparsed and tested first, so formatting
cannot masquerade as a kill. Results (one row per mutant) go to ``--json`` atomically.

    python scripts/mutation_pass.py --per-module 30 --seed 0 --json mutants.json
    python scripts/mutation_pass.py --modules rates --only 3 7   # rerun chosen mutant ids of one module
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: module -> the test files that target it (run with -x -n 0).
TARGETS = {
    "tree": ["tests/theory/test_token_tree.py"],
    "rates": ["tests/theory/test_rates.py"],
    "elasticity": ["tests/theory/test_elasticity.py"],
    "coding": ["tests/theory/test_coding.py"],
}
BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult, ast.FloorDiv: ast.Div}
CMPOPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
          ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
NAMES = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum", "ceil": "floor", "floor": "ceil",
         "log1p": "log", "fsum": "sum"}


def _skipped(tree: ast.AST) -> set[int]:
    """ids of nodes not to mutate: docstrings, f-strings, raise statements, annotations, __all__."""
    skip: set[int] = set()

    def mark(node):
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, (ast.JoinedStr, ast.Raise)):
            mark(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if a.annotation is not None:
                    mark(a.annotation)
            if node.returns is not None:
                mark(node.returns)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            mark(node)
    return skip


def sites(tree: ast.AST) -> list[tuple[int, str]]:
    """``(node index in ast.walk order, description)`` of every mutation site."""
    skip = _skipped(tree)
    out = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", "?")
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOPS:
            out.append((i, f"line {line}: {type(node.op).__name__} -> {BINOPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare):
            for j, op in enumerate(node.ops):
                if type(op) in CMPOPS:
                    out.append((i, f"line {line}: compare {j} {type(op).__name__} -> {CMPOPS[type(op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            out.append((i, f"line {line}: {type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            out.append((i, f"line {line}: drop unary minus"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            out.append((i, f"line {line}: constant {node.value!r} -> {_new_constant(node.value)!r}"))
        elif isinstance(node, ast.Name) and node.id in NAMES and isinstance(node.ctx, ast.Load):
            out.append((i, f"line {line}: {node.id} -> {NAMES[node.id]}"))
        elif isinstance(node, ast.Attribute) and node.attr in NAMES and isinstance(node.ctx, ast.Load):
            out.append((i, f"line {line}: .{node.attr} -> .{NAMES[node.attr]}"))
    # one site per compare operator: expand the description index into the node index list
    return out


def _new_constant(v):
    if isinstance(v, int):
        return v + 1
    return 2.0 * v if v != 0 else 1.0


def mutate(tree: ast.AST, index: int, description: str) -> ast.AST:
    """A deep copy of ``tree`` with the mutation ``description`` applied at node ``index``."""
    new = copy.deepcopy(tree)
    node = list(ast.walk(new))[index]
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        node.op = BINOPS[type(node.op)]()
    elif isinstance(node, ast.Compare):
        j = int(description.split("compare ")[1].split()[0])
        node.ops[j] = CMPOPS[type(node.ops[j])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        return _replace(new, node, node.operand)
    elif isinstance(node, ast.Constant):
        node.value = _new_constant(node.value)
    elif isinstance(node, ast.Name):
        node.id = NAMES[node.id]
    elif isinstance(node, ast.Attribute):
        node.attr = NAMES[node.attr]
    return new


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> ast.AST:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return tree
            if isinstance(value, list) and any(v is old for v in value):
                setattr(parent, field, [new if v is old else v for v in value])
                return tree
    raise AssertionError("node not found")


def run_tests(work: Path, tests: list[str], timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", *tests, "-x", "-q", "-n", "0", "-p", "no:cacheprovider"],
                           cwd=work, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed (timeout)"
    return "survived" if r.returncode == 0 else "killed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--per-module", type=int, default=30, help="mutants sampled per module")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, nargs="*", help="run only these mutant ids (of the sample order)")
    parser.add_argument("--json", type=Path, help="write the rows here (atomically)")
    args = parser.parse_args()
    if args.per_module < 1:
        parser.error(f"--per-module must be >= 1, got {args.per_module}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for part in ("elastic_theory", "tests"):
            shutil.copytree(ROOT / part, work / part, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
        for module in args.modules:
            path = work / "elastic_theory" / "theory" / {"elasticity": "elasticity/closed_forms.py"}.get(module, f"{module}.py")
            original = path.read_text(encoding="utf-8")
            tree = ast.parse(original)
            all_sites = sites(tree)
            rng = np.random.default_rng([args.seed, sum(map(ord, module))])
            pick = rng.permutation(len(all_sites))[: args.per_module]
            t0 = time.perf_counter()
            path.write_text(ast.unparse(tree), encoding="utf-8")
            base = run_tests(work, TARGETS[module], timeout=600)
            baseline_s = time.perf_counter() - t0
            if base != "survived":
                sys.exit(f"{module}: the unmutated (unparsed) module fails its own tests; fix that first")
            print(f"{module}: {len(all_sites)} sites, running {len(pick)} (baseline {baseline_s:.1f} s)", flush=True)
            for mid, s in enumerate(pick):
                if args.only is not None and mid not in args.only:
                    continue
                index, desc = all_sites[int(s)]
                mutant = mutate(tree, index, desc)
                path.write_text(ast.unparse(mutant), encoding="utf-8")
                outcome = run_tests(work, TARGETS[module], timeout=max(60.0, 5 * baseline_s))
                line = int(desc.split()[1].rstrip(":")) if desc.split()[1].rstrip(":").isdigit() else None
                src = original.splitlines()[line - 1].strip() if line else ""
                rows.append({"module": module, "id": mid, "mutation": desc, "source": src, "outcome": outcome})
                print(f"  [{mid:2d}] {outcome:16s} {desc} | {src[:90]}", flush=True)
            path.write_text(original, encoding="utf-8")
            mine = [r for r in rows if r["module"] == module]
            print(f"{module}: {sum(r['outcome'] != 'survived' for r in mine)}/{len(mine)} killed", flush=True)
    killed = sum(r["outcome"] != "survived" for r in rows)
    print(f"total: {killed}/{len(rows)} killed, {len(rows) - killed} survived")
    if args.json is not None:
        tmp_out = args.json.with_name(args.json.name + ".tmp")
        tmp_out.write_text(json.dumps({"seed": args.seed, "per_module": args.per_module, "rows": rows}, indent=1))
        os.replace(tmp_out, args.json)


if __name__ == "__main__":
    main()
