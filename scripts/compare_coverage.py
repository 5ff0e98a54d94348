"""Coverage of compare's 95% intervals by simulation, calling `compare_rates` as `elastic-theory compare` does.

    nice -n 10 python scripts/compare_coverage.py [--reps 2000] [--resamples 1000] [--seed 0] [--write docs/compare.md]

Per replication, two datasets of n documents (n = 10, 40, 200) scored by a base and a checkpoint; each document's
change is its bytes times (the dataset's true change per byte + noise), so the true change of the pooled rate is
known exactly. Designs:

* normal: bytes uniform on 100..1999, noise normal with sd 0.05 bits per byte;
* heavy: bytes log-normal (median 500, log-sd 1, so a few documents carry most bytes), noise Student t with 3
  degrees of freedom scaled to sd 0.05 (infinite fourth moment);
* skewed: the heavy design's bytes, noise a centred exponential (sd 0.05): not a target, shown as a limit.

The alignment set's true change is +0.25 and the pre-training proxy's -0.05 bits per byte (R = 0.25 / 0.05 = 5 in
the theory's convention); the Delta columns are the proxy's interval (the leave-one-out t interval compare reports,
and the paired percentile bootstrap beside it), the Fieller column whether the set (interval, rays or line) holds
R = 5. A second run sets the proxy's true change to 0: the share of finite Fieller intervals (false: the denominator
is not resolved) and how many unbounded sets are two rays. Each share carries its Clopper-Pearson 95% interval.
With ``--write FILE`` the table replaces the lines between ``<!-- coverage-table -->`` and
``<!-- /coverage-table -->`` in FILE (written atomically); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.stats import binomtest

from elastic_theory.stats.comparison import DatasetScores, compare_rates

SD = 0.05
CHANGES = {"align": 0.25, "pretrain": -0.05}  # bits per byte; R = 0.25 / -(-0.05) = 5
SIZES = (10, 40, 200)
DESIGNS = ("normal", "heavy", "skewed")


def _dataset(rng: np.random.Generator, n: int, design: str, change: float) -> tuple[DatasetScores, DatasetScores]:
    if design == "normal":
        n_bytes = rng.integers(100, 2000, n)
        noise = rng.standard_normal(n)
    else:
        n_bytes = np.round(np.exp(rng.normal(np.log(500.0), 1.0, n))).astype(np.int64) + 1
        noise = rng.standard_t(3, n) / np.sqrt(3.0) if design == "heavy" else rng.exponential(1.0, n) - 1.0
    base_bits = n_bytes * rng.uniform(1.0, 3.0, n)
    n_tokens = n_bytes // 3 + 1
    ckpt_bits = base_bits + n_bytes * (change + SD * noise)
    return DatasetScores(base_bits, n_tokens, n_bytes, "t"), DatasetScores(ckpt_bits, n_tokens, n_bytes, "t")


def _holds(ratio, r: float) -> bool:
    s = ratio.fieller
    return s.kind == "line" or (s.lo <= r <= s.hi if s.kind == "interval" else (r <= s.lo or r >= s.hi))


def simulate(n: int, design: str, reps: int, resamples: int, rng: np.random.Generator, pretrain_change: float) -> dict:
    """Counts over ``reps`` replications: Delta covered (t, bootstrap), Fieller holds R = 5, finite sets, rays."""
    out = {"t": 0, "bootstrap": 0, "fieller": 0, "finite": 0, "rays": 0, "unbounded": 0}
    changes = {"align": CHANGES["align"], "pretrain": pretrain_change}
    for _ in range(reps):
        pairs = {d: _dataset(rng, n, design, c) for d, c in changes.items()}
        result = compare_rates({d: p[0] for d, p in pairs.items()}, {"c": {d: p[1] for d, p in pairs.items()}}, rng,
                               n_resamples=resamples, ratio=("align", "pretrain"))
        ch = result.changes["c"]["pretrain"]
        lo, hi = ch.delta_bits_per_byte_ci95
        out["t"] += lo <= pretrain_change <= hi
        lo, hi = ch.delta_bits_per_byte_bootstrap_ci95
        out["bootstrap"] += lo <= pretrain_change <= hi
        ratio = result.ratios["c"]
        out["fieller"] += _holds(ratio, CHANGES["align"] / -pretrain_change) if pretrain_change else 0
        out["finite"] += ratio.ci95 is not None
        out["rays"] += ratio.rays is not None
        out["unbounded"] += ratio.ci95 is None
    return out


def _share(k: int, n: int) -> str:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def table(reps: int, resamples: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = ["| documents | design | Delta covered, leave-one-out t (reported) | Delta covered, percentile bootstrap "
             "| Fieller holds R = 5 | true change 0: finite Fieller interval | true change 0: rays among unbounded |",
             "|---|---|---|---|---|---|---|"]
    for n in SIZES:
        for design in DESIGNS:
            start = time.monotonic()
            c = simulate(n, design, reps, resamples, rng, CHANGES["pretrain"])
            z = simulate(n, design, reps, 1, rng, 0.0)  # Fieller only: the bootstrap is not looked at
            rays = _share(z["rays"], z["unbounded"]) if z["unbounded"] else "n/a"
            lines.append(f"| {n} | {design} | {_share(c['t'], reps)} | {_share(c['bootstrap'], reps)} | "
                         f"{_share(c['fieller'], reps)} | {_share(z['finite'], reps)} | {rays} |")
            print(f"n = {n}, {design}: {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    return "\n".join(lines) + "\n"


def write_into(path: str, text: str) -> None:
    from pathlib import Path

    from elastic_theory.data.io import write_text_atomic

    page = Path(path).read_text()
    head, sep, rest = page.partition("<!-- coverage-table -->\n")
    _, sep2, tail = rest.partition("<!-- /coverage-table -->")
    if not sep or not sep2:
        raise SystemExit(f"{path}: no <!-- coverage-table --> ... <!-- /coverage-table --> markers")
    write_text_atomic(Path(path), head + sep + text + sep2 + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", default=None, help="a page with coverage-table markers to write the table into")
    args = parser.parse_args()
    text = table(args.reps, args.resamples, args.seed)
    print(text, end="")
    if args.write:
        write_into(args.write, text)


if __name__ == "__main__":
    main()
