"""elastic-theory: the elasticity result of Ji et al. (ACL 2025) as executable, tested mathematics.

The core (token trees, coding, rates, elasticity, symbolic checks) needs only numpy, scipy,
sympy and mpmath. Language-model code lives in :mod:`elastic_theory.empirical` and imports
torch and transformers only when that subpackage is imported.

The public API: the names below import from here (``from elastic_theory import TokenTree,
PerturbationModel``) and from their subpackage, and load lazily, so ``import elastic_theory`` imports
no subpackage and a theory name never imports torch (``measure_rates`` does, when first used).
``docs/api.md`` lists them, with every subpackage's own exports; ``python scripts/api_docs.py`` writes it.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

__version__ = "0.1.0"

#: The top-level names, by the subpackage (or module) that exports them. Each subpackage exports more (its ``__all__``).
PUBLIC: dict[str, tuple[str, ...]] = {
    "theory": (
        "TokenTree", "mixture", "cross_entropy", "kl_divergence", "gamma", "normalized_gamma", "ChunkCoder",
        "code_length_report", "huffman_code", "PerturbationModel", "DatasetRates", "closed_form", "ratio_R",
        "ratio_R_exact", "sign_threshold", "theta_constants", "dgamma_a_dl_per_response", "dgamma_p_dl_per_response",
        "hooke_invariant", "inverse_alignment", "sample_masses", "power_law_test", "LN2", "Float32Forward",
    ),
    "stats": (
        "SeedInterval", "seed_interval", "compare_rates", "Comparison", "DatasetScores", "fieller_interval",
        "fit_two_phase", "entropy_matched",
    ),
    "data": ("SyntheticWorld", "WorldConfig", "write_json_atomic"),
    "infra": ("RunDir", "read_run"),
    "empirical": (
        "Document", "read_documents", "load_model_and_tokenizer", "measure_rates", "score_documents", "RateTracker",
        "model_token_tree", "compress_text", "decompress_text", "tiny_gpt2",
    ),
    "claims": ("CLAIMS", "Claim", "Evidence", "run_verification", "VerificationReport"),
    "experiments": ("Experiment",),
    "testing": (
        "token_trees", "tree_families", "mixtures", "disjoint_components", "theorem_settings", "datasets",
        "weighted_datasets", "token_sequences", "probability_vectors",
    ),
}


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """``(__all__, __getattr__, __dir__)`` for ``package`` whose names live in the modules of ``exports`` (PEP 562).

    ``exports`` maps a module, relative to ``package`` (``".tree"``), to the names it provides there. A name is
    imported on first access and then cached on the package, so later lookups cost nothing. A name that equals one
    of the package's submodules is refused: ``from package import name`` would give the function or the module
    depending on what was imported before.
    """
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported by both {where[name]} and {module}")
            where[name] = module
    submodules = {info.name for info in pkgutil.iter_modules(sys.modules[package].__path__)}
    if clash := sorted(submodules & set(where)):
        raise ValueError(f"{package}: exported {clash} also name submodules of the package")

    def __getattr__(name: str):
        try:
            module = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return sorted(where), __getattr__, __dir__


__all__, __getattr__, __dir__ = lazy_exports(__name__, {f".{sub}": names for sub, names in PUBLIC.items()})
__all__ = ["__version__", "lazy_exports", *__all__]
