"""The theorem: token trees, coding, rates, the closed forms, the perturbation model, Pareto and its power-law test, exact and high-precision references, tolerances."""
