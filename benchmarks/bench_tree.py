"""Benchmark: building a token tree from 10^6 sequences against numpy.unique(axis=0) on the same array.

For V = 2 and V = 256 it draws n random sequences of length L (seeded), then in one process times

* the baseline ``numpy.unique(tokens, axis=0, return_counts=True)`` (the distinct responses and
  their counts: the leaves of the tree, without the prefix structure),
* ``TokenTree.from_sequences`` on the same array,
* the tree's entropy and the cross-entropy under a second model: the mixture of the tree with the
  tree of an independent draw (so every data leaf has positive model mass and the CE is finite),

and prints the times, the ratio build / unique (target <= 5), and two memory figures:

* ``build peak MiB``: the peak of memory allocated during one extra, untimed build, measured with
  ``tracemalloc`` (numpy reports its array buffers to it) and counted from the start of that
  build, so the input array is not included;
* ``peak RSS MiB``: the process's peak resident set size (``resource.getrusage(RUSAGE_SELF)
  .ru_maxrss``), which never decreases: the peak over everything so far, model step included.

Run: ``python benchmarks/bench_tree.py`` (defaults n = 10^6, L = 32, seed 0); ``--n`` and
``--length`` shrink it for a quick check.
"""

from __future__ import annotations

import _project_python  # noqa: F401  (first: one clear line under an interpreter without the project)

import argparse
import platform
import resource
import time
import tracemalloc

import numpy as np

from elastic_theory.theory.divergence import cross_entropy
from elastic_theory.theory.mixing import mixture
from elastic_theory.theory.tree import TokenTree


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def build_peak_mib(tokens: np.ndarray, V: int) -> float:
    """Peak memory allocated while building one tree (tracemalloc), MiB, from the start of the build."""
    tracemalloc.start()
    try:
        TokenTree.from_sequences(tokens, V)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def bench(V: int, n: int, length: int, seed: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` times (seconds) for one alphabet size; see the module docstring."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, V, size=(n, length), dtype=np.int64)
    other = rng.integers(0, V, size=(n, length), dtype=np.int64)
    t_unique = min(timed(lambda: np.unique(tokens, axis=0, return_counts=True))[1] for _ in range(repeats))
    builds = [timed(lambda: TokenTree.from_sequences(tokens, V)) for _ in range(repeats)]
    tree, t_build = builds[0][0], min(t for _, t in builds)
    build_peak = build_peak_mib(tokens, V)
    model, t_model = timed(lambda: mixture([tree, TokenTree.from_sequences(other, V)]))
    h, t_entropy = timed(tree.entropy)
    ce, t_ce = timed(lambda: cross_entropy(data=tree, model=model))
    return {
        "V": V, "nodes": tree.n_nodes, "leaves": tree.n_leaves, "unique_s": t_unique, "build_s": t_build,
        "ratio": t_build / t_unique, "entropy_s": t_entropy, "model_s": t_model, "ce_s": t_ce,
        "H_bits": h, "CE_bits": ce, "build_peak_mib": build_peak, "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6, help="number of sequences")
    parser.add_argument("--length", type=int, default=32, help="tokens per sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs for unique and build")
    args = parser.parse_args()
    print(f"{platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}; n={args.n}, L={args.length}")
    header = f"{'V':>4} {'nodes':>10} {'leaves':>9} {'unique s':>9} {'build s':>8} {'ratio':>6} {'H s':>6} {'model s':>8} {'CE s':>6} {'H bits':>8} {'CE bits':>8} {'build peak MiB':>14} {'peak RSS MiB':>12}"
    print(header)
    for V in (2, 256):
        r = bench(V, args.n, args.length, args.seed, args.repeats)
        print(
            f"{r['V']:>4} {r['nodes']:>10} {r['leaves']:>9} {r['unique_s']:>9.2f} {r['build_s']:>8.2f} {r['ratio']:>6.2f} "
            f"{r['entropy_s']:>6.3f} {r['model_s']:>8.2f} {r['ce_s']:>6.2f} {r['H_bits']:>8.3f} {r['CE_bits']:>8.3f} "
            f"{r['build_peak_mib']:>14.0f} {r['peak_rss_mib']:>12.0f}"
        )


if __name__ == "__main__":
    main()
