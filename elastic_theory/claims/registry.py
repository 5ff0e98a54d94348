"""The registry :data:`CLAIMS`: :class:`Claim`, :class:`Evidence`, the one worst-case record :class:`Worst`, and :func:`register`."""

from __future__ import annotations

import math
from collections.abc import Callable
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
