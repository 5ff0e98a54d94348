"""Size and power of the Pareto tests on leaf counts, at more replicates than `verify` can afford.

    python scripts/pareto_counts_study.py [--reps 200] [--seed 0]

Prints a markdown table (docs/theory.md quotes it):

1. the former check, a continuous Pareto fitted to the counts (MLE with x_m = the smallest count,
   KS with a 200-sample parametric bootstrap), run on data simulated from the assumption itself
   (Pareto masses -> 1000 multinomial draws -> leaves seen), 20 replicates per setting;
2. the discrete power-law test (`pareto.rejection_rate`, 19 bootstrap samples each) on the
   Wikipedia tree's scale, with x_min restricted to leave a quarter of the leaves in the tail
   (the default) and to leave 4% (about 50 of 1204 leaves, close to plain Clauset et al.):
   size under Pareto masses at the fitted alpha, power under log-normal and exponential masses.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from elastic_theory import pareto
from elastic_theory.examples import wikipedia_prefix_tree


def _continuous_ks(x: np.ndarray) -> tuple[float, float]:
    """The former fit: x_m = min, alpha = n / sum ln(x/x_m), and the KS distance to that Pareto."""
    x_m = x.min()
    alpha = x.size / np.log(x / x_m).sum()
    return alpha, float(stats.kstest(x, stats.pareto(alpha, scale=x_m).cdf).statistic)


def _continuous_rejects(counts: np.ndarray, rng: np.random.Generator, n_bootstrap: int = 200) -> bool:
    alpha, ks = _continuous_ks(counts.astype(np.float64))
    boot = counts.min() * (1.0 + rng.pareto(alpha, size=(n_bootstrap, counts.size)))
    ks_boot = np.array([_continuous_ks(b)[1] for b in boot])
    return (1 + (ks_boot >= ks).sum()) / (n_bootstrap + 1) <= 0.05


def _row(name: str, r: pareto.RejectionRate) -> str:
    lo, hi = r.interval
    return f"| {name} | {r.rejections}/{r.n_rep} | {r.rate:.2f} | [{lo:.2f}, {hi:.2f}] |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200, help="replicates per size/power row (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.reps < 1:
        ap.error(f"--reps must be >= 1, got {args.reps}")
    rng = np.random.default_rng(args.seed)

    print("| test, data simulated from | rejections at 0.05 | rate | exact 95% interval |")
    print("|---|---|---|---|")
    for M, alpha in ((2000, 1.5), (250, 1.5), (300, 2.5)):
        k = sum(_continuous_rejects(pareto.leaf_counts(pareto.sample_masses(M, alpha, rng), 1000, rng), rng) for _ in range(20))
        print(_row(f"former continuous KS; Pareto masses M = {M}, alpha = {alpha}, 1000 draws", pareto.RejectionRate(k, 20, 0.05, 200)))

    tree = wikipedia_prefix_tree(3)
    counts, n_draws = pareto.tree_leaf_counts(tree), int(tree.n_sequences)
    for fraction in (0.25, 0.04):
        test = pareto.power_law_test(counts, rng, 99, fraction)
        fit = test.fit
        print(f"| discrete test, tail >= {fraction:.0%} of leaves, on the Wikipedia tree: x_min = {fit.x_min} "
              f"({fit.n_tail} of {fit.n} leaves), alpha = {fit.alpha:.2f} ± {fit.exponent_se:.2f}, p = {test.pvalue:.2f} | | | |")
        laws = {f"Pareto, alpha = {fit.alpha:.2f} (size)": lambda M, g, a=fit.alpha: pareto.sample_masses(M, a, g),
                **{f"{name} (power)": law for name, law in pareto.ALTERNATIVES.items()}}
        for name, law in laws.items():
            M = pareto.matching_leaf_total(law, fit.n, n_draws, int(rng.integers(2**63)))
            r = pareto.rejection_rate(lambda g, law=law, M=M: law(M, g), n_draws, args.reps, rng, tail_fraction=fraction)
            print(_row(f"  same pipeline, {name}, {M} leaves, {n_draws} draws", r), flush=True)


if __name__ == "__main__":
    main()
