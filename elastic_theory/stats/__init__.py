"""Statistics over seeds and documents: seed intervals, paired rate changes and Fieller's set, two-phase fits, phase fits (1-3 phases by BIC), the phase-order test and its two-grid claim, behaviour curves, the entropy-matched resistance statistic.

Every name below imports from here (``from elastic_theory.stats import ...``) and loads its module on first use.
"""

from __future__ import annotations

from .. import lazy_exports

#: The module that provides each public name.
EXPORTS: dict[str, tuple[str, ...]] = {
    ".seedstats": (
        "INTERVAL_SCALES", "SeedInterval", "error_bars", "format_interval", "interval_coverage", "interval_note", "paired_difference",
        "saved_number", "seed_interval",
    ),
    ".comparison": (
        "Comparison", "DatasetScores", "MIN_DOCUMENTS", "RateChange", "RatioEstimate", "compare_rates",
        "leave_one_out_interval", "resampling_counts",
    ),
    ".fieller": (
        "FiellerSet", "fieller_interval", "fieller_set",
    ),
    ".twophase": (
        "TwoPhaseFit", "fit_two_phase", "hinge",
    ),
    ".phases": (
        "PhaseFit", "PhaseSelection", "fit_phases", "pattern_of", "select_phases",
    ),
    ".phase_order": (
        "FDRAdjustment", "OrderCalibration", "PhaseOrderTest", "SteepestDrop", "benjamini_hochberg",
        "calibrate_order_test", "noise_sd", "phase_order_test", "steepest_drop",
    ),
    ".phase_claim": (
        "ClaimCalibration", "CurveOrder", "GridOrder", "calibrate_claims", "claim", "claim_orders", "every_other",
        "max_phases", "noise_components", "order_on_grids",
    ),
    ".behaviour": (
        "SCALES", "BehaviourScore", "DropComparison", "behaviour_score", "compare_drops", "data_to_revert",
        "first_crossing", "logit",
    ),
    ".entropy_matching": (
        "entropy_bits", "entropy_matched", "temper",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
