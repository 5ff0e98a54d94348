"""Coverage of the discrete power-law fit's +-1.96 standard error at n = 2000 counts (docs/theory.md quotes it).

    nice -n 10 python scripts/power_law_se_coverage.py [--reps 1000] [--boot 100] [--seed 0]

Per exponent a = 1.5 .. 3.5: ``reps`` samples of 2000 draws from p(x) = x^-a / zeta(a, 1), each fitted by
`pareto.fit_discrete_power_law` (x_min chosen by KS among the values leaving a quarter of the counts); the share of
fits whose +-1.96 se holds a, with the discrete Fisher se (`exponent_se`, CSN eq. 3.6), with the bootstrap of the
whole fit, x_min included (`pareto.exponent_bootstrap_se`, ``--boot`` resamples) and with the continuous
(a - 1)/sqrt(n_tail) the Fisher se replaced, each with its Clopper-Pearson 95% interval, and how often x_min = 1 was
chosen. Prints a markdown table (about 5 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy.stats import binomtest

from elastic_theory.theory import pareto


def _share(k: int, n: int) -> str:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--boot", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| a | discrete Fisher se covers | bootstrap se (x_min refitted) covers | continuous (a-1)/sqrt(n) covers "
          "| x_min = 1 chosen |")
    print("|---|---|---|---|---|")
    for a in (1.5, 2.0, 2.5, 3.0, 3.5):
        fisher = boot = continuous = at_one = 0
        for _ in range(args.reps):
            counts = pareto.sample_discrete_power_law(2000, a, 1, rng)
            fit = pareto.fit_discrete_power_law(counts)
            fisher += abs(fit.exponent - a) <= 1.96 * fit.exponent_se
            boot += abs(fit.exponent - a) <= 1.96 * pareto.exponent_bootstrap_se(counts, rng, args.boot)
            continuous += abs(fit.exponent - a) <= 1.96 * (fit.exponent - 1.0) / math.sqrt(fit.n_tail)
            at_one += fit.x_min == 1
        print(f"| {a} | {_share(fisher, args.reps)} | {_share(boot, args.reps)} | {_share(continuous, args.reps)} | "
              f"{at_one / args.reps:.3f} |", flush=True)


if __name__ == "__main__":
    main()
