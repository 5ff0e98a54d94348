"""The registry :data:`CLAIMS`: :class:`Claim`, :class:`Evidence`, the one worst-case record :class:`Worst`, and :func:`register`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from ..registry import Registry

#: What a check can conclude (one of :data:`VERDICTS`).
Verdict = Literal["holds", "approximate", "fails", "measured", "inconclusive"]
#: holds / approximate / fails: what a check with a pass/fail criterion found; measured: a report of
#: how far and how often (the statement has no sharp criterion), whose invariants still can fail;
#: inconclusive: the check reached no verdict (its test is too weak to decide, with its power shown, or its own
#: consistency conditions failed).
VERDICTS: tuple[str, ...] = ("holds", "approximate", "fails", "measured", "inconclusive")


def error_in_tolerances(error: float, tolerance: float) -> float:
    """``error / tolerance``: > 1 is a violation. An exact check (tolerance 0) gives 0 or inf; NaN error gives inf."""
    if math.isnan(error):
        return math.inf
    if tolerance > 0:
        return error / tolerance
    return 0.0 if error <= 0 else math.inf


@dataclass(frozen=True)
class Evidence:
    """What a check found. ``details`` is JSON-able.

    ``largest_error`` and ``tolerance`` come from the same case, the worst one (largest error in
    units of its own tolerance, :attr:`error_in_tolerances`); the error is in the units ``summary``
    names. A case violates when its error exceeds its tolerance.
    """

    verdict: Verdict
    cases: int
    largest_error: float
    tolerance: float
    summary: str
    counterexample: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def error_in_tolerances(self) -> float:
        """The worst case's error divided by its own tolerance (see :func:`error_in_tolerances`)."""
        return error_in_tolerances(self.largest_error, self.tolerance)


@dataclass
class Worst:
    """The one way a check records its cases: each case's error and tolerance; keeps the worst.

    The worst case is the one with the largest error in units of its own tolerance, so the
    reported error, its tolerance and the case all belong together. ``case`` may be a callable
    (built only when the case becomes the worst).
    """

    error: float = 0.0
    tolerance: float = 0.0
    case: dict[str, Any] | None = None
    cases: int = 0
    violations: int = 0

    def record(self, error: float, tolerance: float, case: dict[str, Any] | Callable[[], dict[str, Any]]) -> bool:
        """Record one case; returns True when it violates (error > tolerance, or error NaN)."""
        error, tolerance = float(error), float(tolerance)
        bad = not error <= tolerance
        self.cases += 1
        self.violations += bad
        if self.cases == 1 or error_in_tolerances(error, tolerance) > self.ratio:
            self.error, self.tolerance = error, tolerance
            self.case = case() if callable(case) else case
        return bad

    @property
    def ratio(self) -> float:
        """The worst case's error in units of its tolerance."""
        return error_in_tolerances(self.error, self.tolerance)

    @property
    def violated(self) -> bool:
        """True when some case's error exceeded its tolerance."""
        return self.violations > 0

    def evidence(self, summary: str, details: dict[str, Any] | None = None, verdict: Verdict | None = None,
                 cases: int | None = None) -> Evidence:
        """Evidence from the worst case: verdict ``fails`` iff a case violated (unless ``verdict`` is given).

        The worst case is the counterexample when it violates, and is kept in ``details["worst_case"]`` always.
        """
        return Evidence(
            verdict or holds_or_fails(self.violated), self.cases if cases is None else cases, self.error, self.tolerance,
            summary, self.case if self.violated else None, {**(details or {}), "worst_case": self.case},
        )


class Check(Protocol):
    """A claim's check: deterministic given ``rng``."""

    def __call__(self, rng: np.random.Generator) -> Evidence: ...


@dataclass(frozen=True)
class Claim:
    """One checkable statement; ``source`` names the paper result or THEORY section."""

    id: str
    statement: str
    source: str
    expected: Verdict
    check: Check


#: The topic modules of this package that register claims; their order is the order of the verify table.
TOPICS = ("thm34", "joint_training", "elasticity_theorem", "first_order", "numerics", "pareto_mass", "failures")

#: Every registered claim by id, in the order of the verify table (the first lookup imports the :data:`TOPICS`).
CLAIMS: Registry[Claim] = Registry("claim id", [f"{__package__}.{topic}" for topic in TOPICS])


class Patch:
    """Attribute replacements that :meth:`undo` takes back in reverse order: how a :class:`Fault` plants itself.

    ``patch(obj, "name", value)`` sets ``obj.name = value`` (a module's function, a class's method, a module constant)
    and remembers the old value.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []

    def __call__(self, obj: object, name: str, value: object) -> None:
        """Replace ``obj.name`` by ``value`` until :meth:`undo`."""
        self._undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def undo(self) -> None:
        """Restore every replaced attribute, last first."""
        while self._undo:
            obj, name, old = self._undo.pop()
            setattr(obj, name, old)


@dataclass(frozen=True)
class Fault:
    """A planted fault: a known wrong implementation that claim ``claim`` must catch (its verdict must change).

    ``plant(patch)`` puts the wrong implementation in place with ``patch(obj, name, value)``; :meth:`planted` is the
    context in which it is active. ``slow``: running the claim with it takes more than a couple of seconds (the
    tests mark it so).
    """

    claim: str
    name: str
    description: str
    plant: Callable[[Patch], None]
    slow: bool = False

    @contextmanager
    def planted(self) -> Iterator[None]:
        """The fault is in place inside the ``with`` block, and taken out after it (also on an exception)."""
        patch = Patch()
        try:
            self.plant(patch)
            yield
        finally:
            patch.undo()


#: The modules that plant faults into the claims (imported on the first lookup of :data:`FAULTS`).
FAULT_MODULES = ("planted_theorem", "planted_other")

#: Every planted fault, named ``"claim id/fault name"``, in the order of the claims' modules.
FAULTS: Registry[Fault] = Registry("planted fault", [f"{__package__}.{m}" for m in FAULT_MODULES])


def planted_fault(claim: str, name: str, description: str, slow: bool = False) -> Callable[[Callable[[Patch], None]], Fault]:
    """Decorator registering ``plant`` as the fault ``name`` of claim ``claim`` in :data:`FAULTS` (see :class:`Fault`)."""

    def deco(plant: Callable[[Patch], None]) -> Fault:
        return FAULTS.add(f"{claim}/{name}", Fault(claim, name, description, plant, slow))

    return deco


def faults_of(claim: str) -> list[Fault]:
    """The planted faults of one claim, in registration order."""
    return [f for f in FAULTS.values() if f.claim == claim]


def register(id: str, statement: str, source: str, expected: Verdict) -> Callable[[Check], Check]:
    """Decorator adding a check to :data:`CLAIMS` under ``id`` (ids are unique)."""
    if expected not in VERDICTS:
        raise ValueError(f"expected must be one of {VERDICTS}, got {expected!r}")

    def deco(fn: Check) -> Check:
        CLAIMS.add(id, Claim(id, statement, source, expected, fn))
        return fn

    return deco


def holds_or_fails(violation: bool) -> Verdict:
    """``fails`` when a violation was found, else ``holds``."""
    return "fails" if violation else "holds"
