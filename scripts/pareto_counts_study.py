"""Size and power of the Pareto tests on leaf counts, at more replicates than `verify` can afford.

    python scripts/pareto_counts_study.py [--reps 200] [--seed 0]

Prints a markdown table (docs/theory.md quotes it):

1. the former check, a continuous Pareto fitted to the counts (MLE with x_m = the smallest count,
   KS with a 200-sample parametric bootstrap), on the former corpus and on data simulated from the assumption itself
   (Pareto masses -> 1000 multinomial draws -> leaves seen), 20 replicates per setting;
2. the discrete power-law test (`pareto.rejection_rate`, 19 bootstrap samples each) on the
   Wikipedia tree's scale: with the pipeline bootstrap (the claim's test) and with Clauset et al.'s
   semi-parametric one, x_min leaving a quarter of the leaves in the tail (the default) or 4%
   (about 50 of 1204 leaves, close to plain Clauset et al.): size under Pareto masses at the
   fitted alpha, power under log-normal and exponential masses.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np

from elastic_theory.theory import pareto
from elastic_theory.data.builtin_text import BYTE_VOCAB_SIZE, stdlib_sentences, wikipedia_prefix_tree
from elastic_theory.theory.tree import TokenTree


def _continuous_ks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The former fit, row by row: x_m = row min, alpha = n / sum ln(x/x_m), and the KS distance to that Pareto."""
    x = np.sort(x, axis=-1)
    n = x.shape[-1]
    alpha = n / np.log(x / x[..., :1]).sum(axis=-1)
    cdf = 1.0 - (x[..., :1] / x) ** alpha[..., None]
    i = np.arange(1, n + 1)
    return alpha, np.maximum((i / n - cdf).max(axis=-1), (cdf - (i - 1) / n).max(axis=-1))


def _continuous_pvalue(counts: np.ndarray, rng: np.random.Generator, n_bootstrap: int = 200) -> float:
    alpha, ks = _continuous_ks(counts[None, :].astype(np.float64))
    boot = counts.min() * (1.0 + rng.pareto(alpha[0], size=(n_bootstrap, counts.size)))
    return float((1 + (_continuous_ks(boot)[1] >= ks[0]).sum()) / (n_bootstrap + 1))


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
    stdlib = pareto.tree_leaf_counts(TokenTree.from_sequences(stdlib_sentences(1000), BYTE_VOCAB_SIZE).prune(3))
    ks = float(_continuous_ks(stdlib[None, :].astype(np.float64))[1][0])
    print(f"| former continuous KS on 1000 sentences of Python's help text (depth 3): KS = {ks:.3f}, leaves seen once "
          f"{(stdlib == 1).sum()}/{stdlib.size} = {(stdlib == 1).mean():.3f}, bootstrap p = {_continuous_pvalue(stdlib, rng):.3f} | | | |")
    for M, alpha in ((2000, 1.5), (250, 1.5), (300, 2.5)):
        k = sum(_continuous_pvalue(pareto.leaf_counts(pareto.sample_masses(M, alpha, rng), 1000, rng), rng) <= 0.05 for _ in range(20))
        print(_row(f"former continuous KS; Pareto masses M = {M}, alpha = {alpha}, 1000 draws", pareto.RejectionRate(k, 20, 0.05, 200)))

    tree = wikipedia_prefix_tree(3)
    counts, n_draws = pareto.tree_leaf_counts(tree), int(tree.n_sequences)
    for bootstrap, fraction in (("pipeline", 0.25), ("semi-parametric", 0.25), ("semi-parametric", 0.04)):
        test = pareto.power_law_test(counts, rng, 99, fraction, n_draws if bootstrap == "pipeline" else None)
        fit = test.fit
        print(f"| discrete test, {bootstrap} bootstrap, tail >= {fraction:.0%} of leaves, on the Wikipedia tree: x_min = "
              f"{fit.x_min} ({fit.n_tail} of {fit.n} leaves), alpha = {fit.alpha:.2f} ± {fit.exponent_se:.2f}, "
              f"p = {test.pvalue:.2f} [{test.pvalue_interval[0]:.2f}, {test.pvalue_interval[1]:.2f}] (99 samples) | | | |")
        laws = {f"Pareto, alpha = {fit.alpha:.2f} (size)": functools.partial(pareto._pareto_law, fit.alpha),
                **{f"{name} (power)": law for name, law in pareto.ALTERNATIVES.items()}}
        for name, law in laws.items():
            M = pareto.matching_leaf_total(law, fit.n, n_draws, int(rng.integers(2**63)))
            r = pareto.rejection_rate(functools.partial(law, M), n_draws, args.reps, rng, tail_fraction=fraction, bootstrap=bootstrap)
            print(_row(f"  same test; {name}, {M} leaves, {n_draws} draws", r), flush=True)

if __name__ == "__main__":
    main()
