"""elastic-theory: the elasticity result of Ji et al. (ACL 2025) as executable, tested mathematics.

The core (token trees, coding, rates, elasticity, symbolic checks) needs only numpy, scipy,
sympy and mpmath. Language-model code lives in :mod:`elastic_theory.empirical` and imports
torch and transformers only when that subpackage is imported.
"""

__version__ = "0.1.0"
