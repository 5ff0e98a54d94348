"""The theorem: token trees, coding, rates, the closed forms, the perturbation model, Pareto and its power-law test, exact and high-precision references, tolerances, the first-order identity and a tiny numpy network to check it on.

Every name below imports from here (``from elastic_theory.theory import ...``) and loads its module on first use.
"""

from __future__ import annotations

from .. import lazy_exports

#: The module that provides each public name.
EXPORTS: dict[str, tuple[str, ...]] = {
    ".tree": (
        "LeafDistribution", "TokenTree",
    ),
    ".sequences": (
        "check_token_range", "pad_sequences", "split_chunks",
    ),
    ".mixing": (
        "mixture",
    ),
    ".divergence": (
        "check_support", "cross_entropy", "kl_divergence", "model_leaf_mass", "model_leaf_probs",
    ),
    ".coding": (
        "ANS_PRECISION_BITS", "ChunkCoder", "CodeLengthReport", "EncodedDataset", "HuffmanCode",
        "code_length_report", "huffman_code",
    ),
    ".rates": (
        "OFFSETS", "gamma", "normalized_gamma", "rate_offset",
    ),
    ".units": (
        "LN2",
    ),
    ".tolerances": (
        "EPS", "EPS32", "Float32Forward", "gamma32", "logit_scale", "sum_tolerance32",
        "closed_form_tolerance", "disjoint_derivative_tolerance", "entropy_tolerance", "perturbation_derivative_tolerance",
        "probability_sum_tolerance", "roundings", "sum_tolerance",
    ),
    ".highprec": (
        "DEFAULT_POINTS", "PrecisionRow", "agreeing_digits", "mp_dcross_entropy_dl", "mp_hooke_residual",
        "precision_table", "reference_derivatives", "reference_hooke",
    ),
    ".symbolic": (
        "RATIONAL_POINTS", "CrossCheck", "Derivation", "FirstOrderIdentity", "cross_check", "derive",
        "first_order_identity", "general_formula_residual",
    ),
    ".first_order": (
        "first_order_ratio", "ratio_tolerance",
    ),
    ".tiny_network": (
        "Optimum", "SequenceTable", "TinyNetwork", "encode", "fit", "gradient_rounding", "losses_and_grads",
    ),
    ".elasticity": (
        "PRECISION", "LeafMasses", "ClosedForm", "DatasetRates", "HookeInvariant", "InverseAlignment",
        "PerturbationModel", "SignClaimWarning", "check_k", "check_l", "check_w3", "closed_form",
        "closed_form_result", "derivative_ratio", "dgamma_a_dl_per_response", "dgamma_p_dl_per_response", "hooke_invariant",
        "inverse_alignment", "ratio_R", "ratio_R_exact", "rho", "sign_threshold", "theta_constants",
        "theta_upper_exact",
    ),
    ".pareto": (
        "ALTERNATIVES", "ConvergencePoint", "CountsVerdict", "EntropyConvergence", "DiscretePowerLawFit",
        "PowerLawTest", "RejectionRate", "SeedSlopes", "counts_verdict", "discrete_exponent_se", "entropy_convergence",
        "entropy_convergence_over_seeds", "entropy_offset", "exponent_bootstrap_se", "fit_discrete_power_law", "leaf_counts",
        "matching_leaf_total", "power_law_test", "predicted_exponent", "predicted_log_power",
        "predicted_slope", "rejection_rate", "sample_discrete_power_law", "sample_masses",
        "tree_leaf_counts",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
