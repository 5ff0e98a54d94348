"""Running the registry and rendering the verdicts: :func:`run_verification`, the rich table and the markdown table."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .registry import CLAIMS, Evidence, Verdict


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
        }


@dataclass(frozen=True)
class VerificationReport:
    """All results of one run, in registry order."""

    seed: int
    results: tuple[ClaimResult, ...]
    seconds: float

    @property
    def all_agree(self) -> bool:
        """True when every claim's verdict is the expected one (the exit-0 condition of ``verify``)."""
        return all(r.agrees for r in self.results)

    @property
    def summary(self) -> str:
        """One line: how many verdicts are the expected ones, and the run time."""
        n_ok = sum(r.agrees for r in self.results)
        return f"{n_ok}/{len(self.results)} verdicts as expected in {self.seconds:.1f} s"

    def to_json(self) -> dict[str, Any]:
        """``{"claims": [...], "seed", "all_agree", "seconds"}`` (pass through ``io.to_jsonable`` before dumping)."""
        return {"claims": [r.to_json() for r in self.results], "seed": self.seed, "all_agree": self.all_agree,
                "seconds": self.seconds}


def run_verification(seed: int = 0, ids: list[str] | None = None) -> VerificationReport:
    """Run the claims (all, or ``ids`` in registry order); claim ``c`` gets ``default_rng([seed, crc32(c.id)])``.

    Each claim's randomness depends only on the seed and its own id, so running a subset gives
    the same evidence for those claims as the full run. Raises ``ValueError`` for a negative seed.
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
        rng = np.random.default_rng([seed, zlib.crc32(claim.id.encode())])
        t0 = time.perf_counter()
        ev = claim.check(rng)
        results.append(ClaimResult(claim.id, claim.statement, claim.source, claim.expected, ev.verdict, ev,
                                   time.perf_counter() - t0))
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


def render_markdown(report: VerificationReport) -> str:
    """The report as a GitHub markdown table (no timings, so it is reproducible for a seed)."""
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in _rows(report)]
    return "\n".join(lines) + "\n"
