r"""The claims registry: each statement of the paper (and of our reconstruction) with a check that can refute it.

A :class:`Claim` has an ``id``, a one-line ``statement`` in the paper's terms, where it comes
from, the verdict we *expect* (one of :data:`VERDICTS`; ``inconclusive`` for a test too weak to
decide, its power shown) and a ``check`` that gets an explicit
``np.random.Generator`` and returns :class:`Evidence`: the verdict the check itself reached, the
number of cases tried, the worst case's error (a bound's violation, a formula's deviation, or the
disagreement of two computations) with that same case's tolerance, and, where one was found, a
counterexample. Every check records its cases one way, with :class:`Worst`: the worst case is the
one whose error is largest in units of its own tolerance, and ``error_in_tolerances`` > 1 means a
violation. Tolerances come from :mod:`elastic_theory.theory.tolerances`. The verdict comes from the
evidence only, so it can disagree with the expectation; :func:`run_verification` runs the
registry and :attr:`VerificationReport.all_agree` is True only when every verdict is the
expected one.

Layout: :mod:`~elastic_theory.claims.registry` (:data:`CLAIMS`, a :class:`~elastic_theory.registry.Registry`;
:class:`Claim`, :class:`Evidence`, :class:`Worst`, :func:`register`), :mod:`~elastic_theory.claims.report`
(running and rendering), :mod:`~elastic_theory.claims.cases` (seeded generators and exact grids), and one module
per topic: ``thm34``, ``joint_training``, ``elasticity_theorem``, ``first_order``, ``numerics``, ``pareto_mass``,
``failures``
(``registry.TOPICS``); the first lookup in :data:`CLAIMS` imports them, and their order is the order of the table.

**Planted faults.** Each claim has known wrong implementations that it must catch (:data:`FAULTS`, registered with
:func:`planted_fault` in :mod:`~elastic_theory.claims.planted_theorem` and :mod:`~elastic_theory.claims.planted_other`):
a :class:`Fault` patches the wrong implementation in while it is active, and ``run_verification(faults=True)``
(``elastic-theory verify --faults``) runs each claim once more per fault and requires its verdict to change.

Randomized checks draw their cases from ``rng`` with the small generators of ``cases``, so a seed
fixes every number. (Hypothesis draws are not used for them: Hypothesis mixes constants read
from the source of every imported local module into its draws, so its examples change with
unrelated code edits and with how the package is installed.) The counterexample search for
overlapping supports is a real Hypothesis search (``hypothesis.find`` over
:func:`elastic_theory.testing.theorem_settings`, seeded ``random.Random``); its table row
therefore states the kind of counterexample found, and ``--json`` holds the example itself.
"""

from __future__ import annotations

from .registry import (
    CLAIMS, FAULTS, VERDICTS, Claim, Evidence, Fault, Patch, Verdict, Worst, error_in_tolerances, faults_of, planted_fault,
    register,
)
from .report import (
    ClaimResult, FaultResult, VerificationReport, claim_rng, render_faults_markdown, render_markdown, render_table,
    run_fault, run_verification,
)

__all__ = [
    "CLAIMS",
    "Claim",
    "ClaimResult",
    "Evidence",
    "FAULTS",
    "Fault",
    "FaultResult",
    "Patch",
    "VERDICTS",
    "Verdict",
    "VerificationReport",
    "Worst",
    "claim_rng",
    "error_in_tolerances",
    "faults_of",
    "planted_fault",
    "register",
    "render_faults_markdown",
    "render_markdown",
    "render_table",
    "run_fault",
    "run_verification",
]
