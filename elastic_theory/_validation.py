"""Input checks shared by the library: each raises ``ValueError`` with a message that says what to fix."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "check_count",
    "check_curve",
    "check_depth",
    "check_finite_nonnegative",
    "check_positive_sizes",
    "check_vocab_size",
]


def check_vocab_size(vocab_size: int) -> int:
    """Return ``vocab_size`` as an int, or raise if it is not an integer >= 2."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2 (the paper's binary case is 2), got {vocab_size}")
    return int(vocab_size)


def check_count(value: int, name: str, minimum: int) -> int:
    """Return ``value`` as an int, or raise unless it is an integer >= ``minimum`` (a size, a batch, a budget)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_depth(depth: int, name: str = "depth") -> int:
    """Return ``depth`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= 1, got {depth!r}")
    if depth < 1:
        raise ValueError(f"{name} must be >= 1 (a tree pruned to depth 0 codes nothing), got {depth}")
    return int(depth)


def check_finite_nonnegative(values: np.ndarray, name: str) -> np.ndarray:
    """Return ``values`` as float64, or raise naming the first negative, NaN or infinite entry."""
    arr = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{name} must be finite and >= 0; entry {i} is {arr.ravel()[i]!r}. "
            "Drop that entry or give it a non-negative finite value."
        )
    return arr


def check_curve(x, y, what: str, x_name: str = "x") -> tuple[np.ndarray, np.ndarray]:
    """Return the points of a curve as flat float64 arrays, or raise unless ``x`` and ``y`` have equal lengths and
    every value is finite (``what`` names the fit in the message)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{x_name} and y need the same number of points, got {x.size} and {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{what}: {x_name} and y must be finite (drop diverged runs and say so)")
    return x, y


def check_positive_sizes(sizes, n: int, name: str = "sizes") -> np.ndarray:
    """Return ``sizes`` as a float64 array of length ``n``, or raise unless every entry is finite and > 0."""
    arr = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} needs one entry per component ({n}), got {arr.shape[0]}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite and > 0 (a dataset size); entry {i} is {arr[i]!r}")
    return arr


def log_base_factor(base: float) -> float:
    """1 / ln(base): multiply natural-log quantities by this to express them in ``base`` units."""
    if not (base > 1 and math.isfinite(base)):
        raise ValueError(f"log base must be finite and > 1, got {base!r}")
    return 1.0 / math.log(base)
