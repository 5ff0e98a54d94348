"""Coverage of the seed intervals on bounded scales, by simulation (docs/experiments.md, "Intervals over seeds").

    python scripts/interval_coverage.py

Prints one markdown row per (scale, seeds, counted over m items): the share of 5,000 seeded replicates
whose 95% interval contains the true center, with its exact 99% binomial interval. Rows without m draw
per-seed values normal on the transformed scale (the interval is exact there: coverage 0.95 up to
simulation noise); rows with m count each seed's rate over m items, c ~ Bin(m, sigma(y)), which adds the
empirical logit's small bias and the counting noise (the interval is then approximate).
"""

from __future__ import annotations

import numpy as np

from elastic_theory.stats.seedstats import interval_coverage

REPS = 5000
CASES = [("log", None, -3.0, 1.0), ("logit", None, -1.0, 0.8), ("artanh", None, 0.5, 0.6), ("logit", 4, -1.0, 0.8), ("logit", 20, -1.0, 0.8),
         ("logit", 20, -3.0, 0.5)]


def main() -> None:
    print("| scale | center, sd (transformed) | counted over m | seeds | coverage | 99% binomial interval |")
    print("|---|---|---|---|---|---|")
    for scale, trials, center, sd in CASES:
        for n in (2, 3, 5):
            r = interval_coverage(scale, n, REPS, np.random.default_rng([n, REPS]), center=center, sd=sd, trials=trials)
            print(f"| {scale} | {center:g}, {sd:g} | {trials or '-'} | {n} | {r['coverage']:.3f} | "
                  f"[{r['ci99'][0]:.3f}, {r['ci99'][1]:.3f}] |")


if __name__ == "__main__":
    main()
