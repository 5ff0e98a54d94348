"""Seeded case generators and exact grids shared by the claim modules (every draw from an explicit ``rng``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from ..theory import elasticity
from ..theory.tree import TokenTree


def random_sequences(rng: np.random.Generator, V: int, max_size: int, max_len: int) -> list[list[int]]:
    """1..max_size responses of length 0..max_len over tokens 0..V-1."""
    lens = rng.integers(0, max_len + 1, size=int(rng.integers(1, max_size + 1)))
    return [rng.integers(0, V, size=n).tolist() for n in lens]


def log_uniform_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Integer counts 1..1e6, log-uniform, so leaf probabilities span six decades."""
    return np.floor(10.0 ** rng.uniform(0.0, 6.0, size=n)).astype(np.int64)


def random_tree(rng: np.random.Generator, max_size: int = 30, max_len: int = 6) -> TokenTree:
    """A random dataset tree: alphabet 2..5, responses from :func:`random_sequences`, log-uniform counts."""
    V = int(rng.integers(2, 6))
    seqs = random_sequences(rng, V, max_size, max_len)
    return TokenTree.from_sequences(seqs, V, counts=log_uniform_counts(rng, len(seqs)))


def random_family(rng: np.random.Generator, n: int, V: int, max_size: int = 8, max_len: int = 4) -> list[TokenTree]:
    """``n`` trees picking (with repeats) from one pool of responses, so their supports overlap at random."""
    pool = random_sequences(rng, V, max_size, max_len)
    trees = []
    for _ in range(n):
        picks = rng.integers(0, len(pool), size=int(rng.integers(1, max_size + 1)))
        trees.append(TokenTree.from_sequences([pool[i] for i in picks], V, counts=log_uniform_counts(rng, picks.size)))
    return trees


def random_setting(rng: np.random.Generator, disjoint: bool) -> tuple[tuple[TokenTree, ...], np.ndarray, float]:
    """``(components, w, k)`` for :meth:`PerturbationModel.from_components`: w3 >= 1e-3, k = 10^U(0, 6).

    Disjoint components prepend token j to every response of component j (alphabet 3..5).
    """
    V = int(rng.integers(3, 6))
    if disjoint:
        comps = tuple(
            TokenTree.from_sequences([[j, *x] for x in seqs], V, counts=log_uniform_counts(rng, len(seqs)))
            for j, seqs in enumerate(random_sequences(rng, V, 8, 4) for _ in range(3))
        )
    else:
        comps = tuple(random_family(rng, 3, V))
    w = 1e-3 + (1.0 - 3e-3) * rng.dirichlet(np.ones(3))
    return comps, w / w.sum(), float(10.0 ** rng.uniform(0.0, 6.0))


def dataset_json(tree: TokenTree) -> dict[str, list]:
    """A tree's distinct responses and their masses: ``TokenTree.from_sequences(responses, V, weights=weights)`` rebuilds it."""
    tokens, lens, mass = tree.responses()
    return {"responses": [row[:n].tolist() for row, n in zip(tokens, lens)], "weights": mass.tolist()}


def k_grid() -> list[Fraction]:
    """k = 1/10 and 10^0 .. 10^9, exactly."""
    return [Fraction(1, 10)] + [Fraction(10) ** e for e in range(0, 10)]


#: w3 values for the exact grids: tiny to 1 (1 has l* = inf).
W3_GRID = (Fraction(1, 1000), Fraction(1, 10), Fraction(1, 3), Fraction(1, 2), Fraction(9, 10), Fraction(1))
#: l as a fraction u of l* (or, for w3 = 1, l = u * 100): from 0 to just below the threshold.
U_GRID = (Fraction(0), Fraction(1, 10**9), Fraction(1, 1000), Fraction(1, 10), Fraction(1, 2), Fraction(9, 10), Fraction(999, 1000))
#: l/l* at and beyond the threshold (w3 < 1 only): where the sign claim must come out false.
U_BEYOND = (Fraction(1), Fraction(1001, 1000), Fraction(2), Fraction(10))


def l_of(u: Fraction, w3: Fraction) -> Fraction:
    """l = u l* (l = 100 u for w3 = 1, where l* is infinite)."""
    return u * 100 if w3 == 1 else u * w3 / (1 - w3)


def exact_grid():
    """``(k, l, w3)`` as Fractions over the k, w3 and l/l* grids above (every l below l*)."""
    for k in k_grid():
        for w3 in W3_GRID:
            for u in U_GRID:
                yield k, l_of(u, w3), w3


def exact_dgamma_dl(k: float, l: float, w3: float) -> tuple[Fraction, Fraction]:
    r"""``(d gamma_a/dl, d gamma_p/dl)`` in nats per response, exactly, at the float arguments (§2.2).

    :math:`1/(1+k+l)` and :math:`1/(1+k+l) - w_3/(k w_3 + l)` (the second term absent for w3 = 0):
    written from THEORY §2.2 independently of :mod:`elastic_theory.theory.elasticity`, as the reference
    its closed forms are checked against.
    """
    K, L, W3 = Fraction(k), Fraction(l), Fraction(w3)
    da = 1 / (1 + K + L)
    return da, da - (W3 / (K * W3 + L) if W3 > 0 else 0)


def disjoint_example() -> tuple[TokenTree, TokenTree, TokenTree]:
    """A fixed disjoint triple (first tokens 0, 1, 2) for the failure cases."""
    return (
        TokenTree.from_sequences([[0, 0], [0, 1, 1], [0]], 3),
        TokenTree.from_sequences([[1], [1, 2], [1, 2, 2]], 3),
        TokenTree.from_sequences([[2, 0], [2, 1]], 3),
    )


def exact_margin(l: float, w3: float) -> Fraction:
    """w3 - (1 - w3) l of the float arguments, exactly: > 0 exactly when l < l* (the sign region)."""
    return Fraction(w3) - (1 - Fraction(w3)) * Fraction(l)


def sign_warned(fn: Callable[[], float]) -> tuple[float, bool]:
    """``(fn(), whether it emitted a SignClaimWarning)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", elasticity.SignClaimWarning)
        value = fn()
    return value, any(issubclass(c.category, elasticity.SignClaimWarning) for c in caught)
