"""Running the registry and rendering the verdicts: :func:`run_verification`, the rich table and the markdown table."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .registry import CLAIMS, Claim, Evidence, Fault, Verdict, faults_of


@dataclass(frozen=True)
class FaultResult:
    """A claim's verdict with one planted fault in place: ``caught`` when it differs from the claim's expected one."""

    name: str
    description: str
    verdict: Verdict
    caught: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """``{"name", "description", "verdict", "caught", "seconds"}``."""
        return dict(self.__dict__)


def claim_rng(claim_id: str, seed: int) -> np.random.Generator:
    """The generator claim ``claim_id`` gets from :func:`run_verification` at ``seed``: ``default_rng([seed, crc32(id)])``."""
    return np.random.default_rng([seed, zlib.crc32(claim_id.encode())])


def run_fault(claim: Claim, fault: Fault, seed: int = 0) -> FaultResult:
    """Run ``claim``'s check with ``fault`` planted (same generator as the honest run); caught = verdict changed."""
    t0 = time.perf_counter()
    with fault.planted():
        verdict = claim.check(claim_rng(claim.id, seed)).verdict
    return FaultResult(fault.name, fault.description, verdict, verdict != claim.expected, time.perf_counter() - t0)


@dataclass(frozen=True)
class ClaimResult:
    """A claim's outcome: ``agrees`` when the verdict is the expected one."""

    id: str
    statement: str
    source: str
    expected: Verdict
    verdict: Verdict
    evidence: Evidence
    seconds: float
    faults: tuple[FaultResult, ...] | None = None

    @property
    def agrees(self) -> bool:
        """True when the check's verdict is the expected one."""
        return self.verdict == self.expected

    def to_json(self) -> dict[str, Any]:
        """``{"id", "statement", "source", "expected", "verdict", "agrees", "cases", "largest_error", ...}``."""
        e = self.evidence
        return {
            "id": self.id, "statement": self.statement, "source": self.source, "expected": self.expected,
            "verdict": self.verdict, "agrees": self.agrees, "cases": e.cases, "largest_error": e.largest_error,
            "tolerance": e.tolerance, "error_in_tolerances": e.error_in_tolerances, "summary": e.summary, "counterexample": e.counterexample, "details": e.details,
            "seconds": self.seconds,
            **({} if self.faults is None else {"faults": [f.to_json() for f in self.faults],
                                               "faults_caught": sum(f.caught for f in self.faults)}),
        }


@dataclass(frozen=True)
class VerificationReport:
    """All results of one run, in registry order."""

    seed: int
    results: tuple[ClaimResult, ...]
    seconds: float

    @property
    def faults_tried(self) -> list[FaultResult]:
        """Every planted fault run (empty unless the run was made with ``faults=True``)."""
        return [f for r in self.results for f in r.faults or ()]

    @property
    def all_agree(self) -> bool:
        """True when every claim's verdict is the expected one and every planted fault tried was caught (exit 0)."""
        return all(r.agrees for r in self.results) and all(f.caught for f in self.faults_tried)

    @property
    def summary(self) -> str:
        """One line: how many verdicts are the expected ones (and planted faults caught), and the run time."""
        n_ok = sum(r.agrees for r in self.results)
        tried = self.faults_tried
        faults = f"; planted faults caught: {sum(f.caught for f in tried)}/{len(tried)}" if tried else ""
        return f"{n_ok}/{len(self.results)} verdicts as expected{faults} in {self.seconds:.1f} s"

    def to_json(self) -> dict[str, Any]:
        """``{"claims": [...], "seed", "all_agree", "seconds"}`` (pass through ``io.to_jsonable`` before dumping)."""
        return {"claims": [r.to_json() for r in self.results], "seed": self.seed, "all_agree": self.all_agree,
                "seconds": self.seconds}


def run_verification(seed: int = 0, ids: list[str] | None = None, faults: bool = False,
                     progress: Callable[[str], None] | None = None) -> VerificationReport:
    """Run the claims (all, or ``ids`` in registry order); claim ``c`` gets ``default_rng([seed, crc32(c.id)])``.

    Each claim's randomness depends only on the seed and its own id, so running a subset gives
    the same evidence for those claims as the full run. With ``faults``, each claim is run again with each of its
    planted faults (:data:`~elastic_theory.claims.registry.FAULTS`) in place, and :attr:`VerificationReport.all_agree`
    also needs every one caught. ``progress`` gets one line per claim. Raises ``ValueError`` for a negative seed.
    """
    if seed < 0:
        raise ValueError(f"the seed must be a non-negative integer (numpy seeds its generators with those), got {seed}")
    if ids is not None:
        unknown = sorted(set(ids) - set(CLAIMS))
        if unknown:
            raise ValueError(f"unknown claim ids {unknown}; known: {list(CLAIMS)}")
    start = time.perf_counter()
    results = []
    for claim in CLAIMS.values():
        if ids is not None and claim.id not in ids:
            continue
        t0 = time.perf_counter()
        ev = claim.check(claim_rng(claim.id, seed))
        seconds = time.perf_counter() - t0
        tried = tuple(run_fault(claim, f, seed) for f in faults_of(claim.id)) if faults else None
        results.append(ClaimResult(claim.id, claim.statement, claim.source, claim.expected, ev.verdict, ev, seconds,
                                   tried))
        if progress is not None:
            progress(f"{claim.id}: {ev.verdict}" + ("" if tried is None else
                     f", planted faults caught {sum(f.caught for f in tried)}/{len(tried)}"))
    return VerificationReport(seed, tuple(results), time.perf_counter() - start)


def _in_tolerances(e: Evidence) -> str:
    """The worst case's error in units of its tolerance, for the table ("exact" for exact checks)."""
    if e.tolerance == 0:
        return "0 (exact)" if e.largest_error <= 0 else f"{e.largest_error:.2g} (exact: > 0)"
    return f"{e.error_in_tolerances:.2g}"


def _rows(report: VerificationReport) -> list[tuple[str, ...]]:
    return [
        (r.id, r.statement, r.expected, r.verdict, "yes" if r.agrees else "NO", str(r.evidence.cases),
         _in_tolerances(r.evidence), r.evidence.summary)
        for r in report.results
    ]


_HEADER = ("claim", "statement", "expected", "verdict", "as expected", "cases", "worst error / tolerance", "evidence")


def render_table(report: VerificationReport):
    """A ``rich.table.Table`` of the report (verdicts coloured; a mismatch in red)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"elasticity claims (seed {report.seed})", show_lines=True)
    for h in _HEADER:
        table.add_column(h, overflow="fold")
    colour = {"holds": "green", "approximate": "yellow", "fails": "magenta", "measured": "cyan", "inconclusive": "blue"}
    for row, r in zip(_rows(report), report.results):
        cells = [escape(c) for c in row]
        cells[3] = f"[{colour[r.verdict]}]{r.verdict}[/]"
        cells[4] = "yes" if r.agrees else "[bold red]NO[/]"
        table.add_row(*cells)
    return table


def _escape(cell: str) -> str:
    """A markdown table cell's text with its pipes escaped."""
    return cell.replace("|", "\\|")


def render_markdown(report: VerificationReport) -> str:
    """The report as a GitHub markdown table (no timings, so it is reproducible for a seed)."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in _rows(report)]
    return "\n".join(lines) + "\n"


def render_faults_markdown(report: VerificationReport) -> str:
    """The planted faults of a ``faults=True`` run as a GitHub markdown table: claim, fault, verdict with it, caught."""
    lines = ["| claim | planted fault | what it does | expected | verdict with the fault | caught |", "|---|---|---|---|---|---|"]
    for r in report.results:
        for f in r.faults or ():
            lines.append(f"| {r.id} | {_escape(f.name)} | {_escape(f.description)} | {r.expected} | {f.verdict} | "
                         f"{'yes' if f.caught else 'NO'} |")
    return "\n".join(lines) + "\n"
