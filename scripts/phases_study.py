"""How the phase fits and the phase-order test behave on the synthetic rebound experiment's design.

    python scripts/phases_study.py [--seed 0]

Prints the markdown tables that docs/phases.md quotes (about 5 minutes on one core):

1. how often each criterion chooses 1, 2 or 3 phases on noisy straight lines (20,000 lines per row): BIC at 1, 3
   and 5 seeds per amount, and at 5 seeds AIC and a BIC that counts one parameter per knot;
2. size and power of `phase_order_test` (`calibrate_order_test`, 500 curves per rate, 499 resamples each) at the
   probability scale's noise, sd 0.025 per seed;
3. the bias of the steepest phase's drop per e-fold, raw and bias-corrected (`steepest_drop`, 1000 curves, 199
   resamples each), for two nearly equal phases and for the issue's slow-fast-slow curve.

The design: n- in {0, 64, 128, ..., 4096} (n- = 0 included), as in experiments/rebound.json.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from elastic_theory.stats import calibrate_order_test, steepest_drop
from elastic_theory.stats.phases import _models, _rss_floor

AMOUNTS = np.array([0, 64, 128, 256, 512, 1024, 2048, 4096.0])
SIGMA = 0.025  # per-seed sd of the probability score: the rebound table's 95% half-widths (0.03) x sqrt(5) / 2.78


def _criterion_rates(seeds: int, rng: np.random.Generator, per_knot: float | None, n_lines: int = 20_000):
    """Fractions of noisy lines for which ``n ln(RSS) + penalty`` is smallest at 1, 2, 3 phases; ``per_knot`` None is
    BIC's 2 ln n per knot."""
    n = np.tile(AMOUNTS, seeds)
    t = np.log1p(n)
    Y = 0.5 - 0.1 * t + 0.02 * rng.standard_normal((n_lines, n.size))
    penalty = 2 * math.log(n.size) if per_knot is None else per_knot
    floor = _rss_floor(Y)
    rss = np.stack([np.concatenate([m.fit(Y[s : s + 1000])[0] for s in range(0, n_lines, 1000)])
                    for m in _models(t, 3)], axis=1)
    scores = n.size * np.log(np.maximum(rss, floor[:, None])) + penalty * np.arange(3)
    return np.bincount(np.argmin(scores, axis=1), minlength=3) / n_lines


def _bias(slopes, knots, sd: float, rng: np.random.Generator, n_curves: int = 1000):
    n = np.tile(AMOUNTS, 5)
    t = np.log1p(n)
    y0 = slopes[0] * t
    for j, k in enumerate(np.log1p(knots)):
        y0 = y0 + (slopes[j + 1] - slopes[j]) * np.maximum(t - k, 0.0)
    runs = [steepest_drop(n, y0 + sd * rng.standard_normal(n.size), phases=len(slopes), n_resamples=199, rng=rng)
            for _ in range(n_curves)]
    truth = max(-s for s in slopes)
    raw = np.array([r.estimate for r in runs]) - truth
    cor = np.array([r.corrected for r in runs]) - truth
    return raw, cor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print("| criterion | seeds per amount | points | 1 phase | 2 phases | 3 phases |\n|---|---|---|---|---|---|")
    for name, seeds, per_knot in (("BIC", 1, None), ("BIC", 3, None), ("BIC", 5, None),
                                  ("AIC (4 per knot)", 5, 4.0), ("BIC, 1 parameter per knot", 5, math.log(40))):
        rates = _criterion_rates(seeds, rng, per_knot)
        print(f"| {name} | {seeds} | {8 * seeds} | " + " | ".join(f"{r:.4f}" for r in rates) + " |")

    print("\n| alpha | drop contrast at the knot (n- = 512) | size [95% Wilson] | power [95% Wilson] |")
    print("|---|---|---|---|")
    for alpha, contrast in ((0.05, 0.05), (0.05, -0.05), (0.05, 0.1), (0.01, 0.1)):
        c = calibrate_order_test(AMOUNTS, seeds=5, sigma=SIGMA, contrast=contrast, alpha=alpha, n_curves=500,
                                 n_resamples=499, rng=rng)
        print(f"| {alpha} | {contrast:+} | {c.size:.3f} [{c.size_ci[0]:.3f}, {c.size_ci[1]:.3f}] | "
              f"{c.power:.3f} [{c.power_ci[0]:.3f}, {c.power_ci[1]:.3f}] |")

    print("\n| true curve (drops per e-fold) | noise sd | raw bias +- se | corrected bias +- se | raw rmse | "
          "corrected rmse |\n|---|---|---|---|---|---|")
    for label, slopes, knots in (("0.10, 0.12 (knot n- = 300)", (-0.10, -0.12), (300.0,)),
                                 ("0.057, 0.237, 0.124 (knots 200, 1500)", (-0.057, -0.237, -0.124), (200.0, 1500.0))):
        raw, cor = _bias(slopes, knots, 0.03, rng)
        se = math.sqrt(raw.size)
        print(f"| {label} | 0.03 | {raw.mean():+.4f} +- {raw.std(ddof=1) / se:.4f} | "
              f"{cor.mean():+.4f} +- {cor.std(ddof=1) / se:.4f} | {np.sqrt((raw ** 2).mean()):.4f} | "
              f"{np.sqrt((cor ** 2).mean()):.4f} |")


if __name__ == "__main__":
    main()
