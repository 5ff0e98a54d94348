r"""A seeded synthetic world with known probabilities: the theorem's setting made into finite datasets (THEORY §2).

Three components over token sequences:

* :math:`P_1` (general): ``n_general`` sequences, or by default every sequence of the allowed
  lengths that :math:`P_2`, :math:`P_3` do not use (then the union has full support, the joint
  optimum is an interior point a network can approach quadratically, and no probability must go
  to 0);
* :math:`P_2` (aligned) and :math:`P_3` (unaligned): the same ``n_prompts`` prompts (the first
  ``prompt_length`` tokens), each answered by :math:`P_2` with one response and by :math:`P_3` with a
  different one, so the three supports are pairwise disjoint as whole sequences (``overlap > 0``
  makes that fraction of the prompts get the *same* answer from both, breaking disjointness).

Masses are Zipf-like (:math:`\propto 1/\text{rank}^{s}`, ranks in a seeded random order) and are
stored as **integer counts** with the same total ``resolution`` for every component, so every
probability is an exact rational ``count / resolution``. :math:`P_2` and :math:`P_3` share the prompt
masses (the same questions, different answers). With ``min_length`` set, lengths vary in
``[min_length, length]`` and every sequence ends with the end token ``end_token = vocab_size``
(so the data alphabet has ``vocab_size + 1`` symbols and the end token is counted as a token).

Datasets for given :math:`k = |D_p|/|D_a|`, :math:`l = |D_t|/|D_a|` and weights :math:`w` come in two modes:

* ``"exact"``: integer counts exactly proportional to the component masses:
  :math:`D_a = m\,c_2`, :math:`D_p = k m \sum_i w_i c_i`, :math:`D_t = l m c_3` with the smallest
  integer multiplier ``m`` that makes every count an integer. The union's empirical distribution
  is exactly :math:`p_l` of THEORY §2 for these components: no sampling noise.
* ``"sampled"``: ``n_align`` responses drawn from :math:`P_2`, :math:`k\,n_{align}` from the
  mixture, :math:`l\,n_{align}` from :math:`P_3` (nested in l: the first draws of one pool), so k and l
  are exact ratios of response counts and the empirical distributions carry sampling noise.

Either way :meth:`Datasets.perturbation_model` is :meth:`~elastic_theory.theory.elasticity.PerturbationModel.from_trees`
of exactly the data trained on, and :meth:`Datasets.export_jsonl` writes the three datasets as
token files, each sequence repeated by its count, so the union of the files (with multiplicity)
is the multiset trained on. numpy only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from .._validation import check_count
from ..theory.elasticity import PerturbationModel, check_k, check_l
from .io import write_text_atomic
from ..theory.tree import TokenTree

__all__ = ["ROLES", "Datasets", "SyntheticWorld", "WeightedSequences", "WorldConfig", "check_weights", "exact_fraction"]

DataMode = Literal["exact", "sampled"]
ROLES: tuple[str, str, str] = ("pretrain", "align", "perturb")
"""The three datasets of the theorem: D_p, D_a, D_t (also the JSONL file names)."""


def exact_fraction(x: float, name: str) -> Fraction:
    """The shortest fraction (denominator <= 10^6) whose float is ``x``: 0.1 -> 1/10; raise if none is."""
    q = Fraction(x).limit_denominator(10**6)
    if float(q) != float(x):
        raise ValueError(f"{name} = {x!r} is not a ratio with denominator <= 10^6; give a decimal like 0.1 or 0.25")
    return q


def check_weights(w) -> tuple[float, float, float]:
    """``w = (w1, w2, w3)``: three non-negative weights summing to 1 (to 1e-9), returned as floats."""
    try:
        w = tuple(float(x) for x in w)
    except (TypeError, ValueError):
        raise ValueError(f"w must be three numbers (w1, w2, w3), got {w!r}") from None
    if len(w) != 3 or any(not (x >= 0 and math.isfinite(x)) for x in w) or abs(sum(w) - 1.0) > 1e-9:
        raise ValueError(f"w must be three non-negative weights (w1, w2, w3) summing to 1, got {list(w)}")
    return w


@dataclass(frozen=True)
class WorldConfig:
    """Shape of the synthetic world (see the module docstring); every field has a default."""

    vocab_size: int = 4
    length: int = 4
    prompt_length: int = 2
    n_general: int | None = None
    n_prompts: int = 16
    zipf: float = 1.0
    resolution: int = 1000
    overlap: float = 0.0
    min_length: int | None = None
    seed: int = 0

    def __post_init__(self):
        check_count(self.vocab_size, "world.vocab_size", 2)
        check_count(self.length, "world.length", 2)
        check_count(self.prompt_length, "world.prompt_length", 1)
        if self.n_general is not None:
            check_count(self.n_general, "world.n_general", 1)
        check_count(self.n_prompts, "world.n_prompts", 1)
        if self.prompt_length >= self.length if self.min_length is None else self.prompt_length >= self.min_length:
            raise ValueError(f"world.prompt_length = {self.prompt_length} must be below the (minimum) length: a response needs a token")
        if self.min_length is not None:
            check_count(self.min_length, "world.min_length", 2)
            if self.min_length > self.length:
                raise ValueError(f"world.min_length = {self.min_length} must be <= world.length = {self.length}")
        if not (self.zipf >= 0 and math.isfinite(self.zipf)):
            raise ValueError(f"world.zipf must be finite and >= 0, got {self.zipf!r}")
        if not 0.0 <= self.overlap <= 1.0:
            raise ValueError(f"world.overlap must be in [0, 1] (fraction of prompts answered alike), got {self.overlap!r}")
        n_max = max(self.n_general or self.n_sequences - 2 * self.n_prompts, self.n_prompts)
        if check_count(self.resolution, "world.resolution", 1) < n_max:
            raise ValueError(f"world.resolution = {self.resolution} must be >= the largest support ({n_max}): every sequence needs count >= 1")

    @property
    def n_sequences(self) -> int:
        """Number of distinct sequences of the allowed lengths (before the end token)."""
        lo = self.length if self.min_length is None else self.min_length
        return sum(self.vocab_size**m for m in range(lo, self.length + 1))

    @property
    def end_token(self) -> int | None:
        """The end token id (``vocab_size``) when lengths vary, else None (fixed length needs no end token)."""
        return None if self.min_length is None else self.vocab_size

    @property
    def data_vocab_size(self) -> int:
        """Alphabet of the data (token trees, JSONL files): ``vocab_size``, plus the end token when lengths vary."""
        return self.vocab_size + (self.min_length is not None)


@dataclass(frozen=True)
class WeightedSequences:
    """Distinct sequences with integer counts: a finite dataset (the multiset) in compact form."""

    sequences: tuple[tuple[int, ...], ...]
    counts: np.ndarray

    def __post_init__(self):
        c = np.asarray(self.counts, dtype=np.int64)
        if c.shape != (len(self.sequences),) or (c < 0).any():
            raise ValueError(f"counts must be {len(self.sequences)} non-negative integers, got shape {c.shape}")
        c.setflags(write=False)
        object.__setattr__(self, "counts", c)

    @property
    def size(self) -> int:
        """|D|: the number of responses (sum of counts)."""
        return int(self.counts.sum())

    @property
    def probs(self) -> np.ndarray:
        """The empirical distribution ``counts / size`` (float64)."""
        return self.counts / self.size

    def nonzero(self) -> WeightedSequences:
        """The same dataset without zero-count rows."""
        keep = np.flatnonzero(self.counts)
        return WeightedSequences(tuple(self.sequences[i] for i in keep), self.counts[keep])

    def tree(self, vocab_size: int) -> TokenTree:
        """The dataset's token tree (|D| = :attr:`size` responses)."""
        d = self.nonzero()
        return TokenTree.from_sequences([list(s) for s in d.sequences], vocab_size, counts=d.counts)

    def to_jsonl(self) -> str:
        """One JSON list of token ids per line, each sequence repeated by its count."""
        return "".join(
            (("[" + ", ".join(map(str, s)) + "]\n") * int(c)) for s, c in zip(self.sequences, self.counts)
        )


def union(parts: list[WeightedSequences]) -> WeightedSequences:
    """The multiset union: counts of equal sequences add up (order: first appearance)."""
    index: dict[tuple[int, ...], int] = {}
    counts: list[int] = []
    for part in parts:
        for s, c in zip(part.sequences, part.counts):
            if s in index:
                counts[index[s]] += int(c)
            else:
                index[s] = len(counts)
                counts.append(int(c))
    return WeightedSequences(tuple(index), np.asarray(counts, dtype=np.int64)).nonzero()


@dataclass(frozen=True)
class Datasets:
    """The three finite datasets of one configuration, with exact k and l (ratios of response counts)."""

    pretrain: WeightedSequences
    align: WeightedSequences
    perturb: WeightedSequences
    vocab_size: int

    @property
    def k(self) -> Fraction:
        """:math:`k = |D_p|/|D_a|`, exactly."""
        return Fraction(self.pretrain.size, self.align.size)

    @property
    def l(self) -> Fraction:
        """:math:`l = |D_t|/|D_a|`, exactly."""
        return Fraction(self.perturb.size, self.align.size)

    def role(self, name: str) -> WeightedSequences:
        """The dataset named ``"pretrain"``, ``"align"`` or ``"perturb"``."""
        if name not in ROLES:
            raise ValueError(f"dataset role must be one of {ROLES}, got {name!r}")
        return getattr(self, name)

    @cached_property
    def union(self) -> WeightedSequences:
        r""":math:`D_p \cup D_a \cup D_t` with multiplicity: what joint training fits."""
        return union([self.pretrain, self.align, self.perturb])

    def without_perturbation(self) -> Datasets:
        """The same D_p and D_a with an empty D_t (l = 0)."""
        return Datasets(self.pretrain, self.align, WeightedSequences(self.perturb.sequences, 0 * self.perturb.counts), self.vocab_size)

    def perturbation_model(self, perturb_distribution: WeightedSequences | None = None) -> PerturbationModel:
        r"""THEORY §2.1's :math:`p_l` for exactly these D_p, D_a; D_t's distribution from this (or the given) set.

        Sizes in responses: :math:`|D_p|`, :math:`|D_a|` are the counts. ``p.model(float(self.l))`` is
        then the union's empirical distribution. For l = 0 (no D_t) give the perturbation
        distribution explicitly (the one l > 0 would draw from).
        """
        pert = self.perturb if perturb_distribution is None else perturb_distribution
        if pert.size == 0:
            raise ValueError("D_t is empty (l = 0): pass the perturbation distribution to evaluate p_l")
        V = self.vocab_size
        return PerturbationModel.from_trees(self.pretrain.tree(V), self.align.tree(V), pert.tree(V))

    def export_jsonl(self, folder: str | Path) -> dict[str, Path]:
        """Write ``pretrain.jsonl``, ``align.jsonl``, ``perturb.jsonl`` (atomically) in ``folder``; return the paths.

        Each sequence is repeated by its count, so the three files together hold exactly the
        multiset trained on (``perturb.jsonl`` is empty when l = 0).
        """
        folder = Path(folder)
        paths = {}
        for name in ROLES:
            paths[name] = folder / f"{name}.jsonl"
            write_text_atomic(paths[name], self.role(name).to_jsonl())
        return paths


class SyntheticWorld:
    r"""The components :math:`P_1, P_2, P_3` of a :class:`WorldConfig`, built from its seed.

    >>> world = SyntheticWorld(WorldConfig(vocab_size=8, n_general=4, n_prompts=4, resolution=12))
    >>> [c.size for c in world.components]
    [12, 12, 12]
    >>> d = world.datasets(k=4, l=0.5, w=(0.5, 0.25, 0.25))
    >>> d.k, d.l, d.align.size
    (Fraction(4, 1), Fraction(1, 2), 24)
    """

    def __init__(self, config: WorldConfig):
        self.config = c = config
        rng = np.random.default_rng(c.seed)
        n_resp_max = c.vocab_size ** (c.length - c.prompt_length)
        if c.n_prompts > c.vocab_size**c.prompt_length:
            raise ValueError(f"world.n_prompts = {c.n_prompts} exceeds the {c.vocab_size ** c.prompt_length} distinct prompts of length {c.prompt_length}")
        if n_resp_max < 2:
            raise ValueError("each prompt needs two distinct responses: raise world.length or world.vocab_size")
        lengths = self._lengths(rng, c.n_prompts + (c.n_general or 0))
        prompts = self._distinct(rng, c.n_prompts, c.prompt_length, set())
        used: set[tuple[int, ...]] = set()
        p2, p3 = [], []
        n_same = round(c.overlap * c.n_prompts)
        for j, (prompt, L) in enumerate(zip(prompts, lengths[: c.n_prompts])):
            a, b = self._two_responses(rng, prompt, L)
            b = a if j < n_same else b
            p2.append(self._end(a))
            p3.append(self._end(b))
            used.update((a, b))
        if c.n_general is None:
            general = [self._end(s) for s in self._all_sequences() if s not in used]
        else:
            if c.n_general > c.n_sequences - len(used):
                raise ValueError(f"world.n_general = {c.n_general} exceeds the {c.n_sequences - len(used)} sequences left "
                                 "after the prompts' answers; lower it or raise world.length")
            general = [self._end(s) for s in self._distinct_sequences(rng, lengths[c.n_prompts:], used)]
        prompt_counts = self._zipf_counts(rng, c.n_prompts)
        self.components: tuple[WeightedSequences, WeightedSequences, WeightedSequences] = (
            WeightedSequences(tuple(general), self._zipf_counts(rng, len(general))),
            WeightedSequences(tuple(p2), prompt_counts),
            WeightedSequences(tuple(p3), prompt_counts),
        )

    # ------------------------------------------------------------------ construction helpers
    def _lengths(self, rng, n: int) -> np.ndarray:
        c = self.config
        if c.min_length is None:
            return np.full(n, c.length)
        return rng.integers(c.min_length, c.length + 1, size=n)

    def _end(self, seq: tuple[int, ...]) -> tuple[int, ...]:
        e = self.config.end_token
        return seq if e is None else seq + (e,)

    def _distinct(self, rng, n: int, length: int, taken: set) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        seen = set(taken)
        while len(out) < n:
            s = tuple(int(t) for t in rng.integers(0, self.config.vocab_size, size=length))
            if s not in seen:
                seen.add(s)
                out.append(s)
        return out

    def _two_responses(self, rng, prompt: tuple[int, ...], length: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        a, b = self._distinct(rng, 2, int(length) - len(prompt), set())
        return prompt + a, prompt + b

    def _distinct_sequences(self, rng, lengths: np.ndarray, taken: set) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        seen = set(taken)
        for L in lengths:  # _distinct's draws, without copying the growing set per sequence (quadratic in n_general)
            s = tuple(int(t) for t in rng.integers(0, self.config.vocab_size, size=int(L)))
            while s in seen:
                s = tuple(int(t) for t in rng.integers(0, self.config.vocab_size, size=int(L)))
            seen.add(s)
            out.append(s)
        return out

    def _all_sequences(self) -> list[tuple[int, ...]]:
        c = self.config
        lo = c.length if c.min_length is None else c.min_length
        return [s for m in range(lo, c.length + 1) for s in itertools.product(range(c.vocab_size), repeat=m)]

    def _zipf_counts(self, rng, n: int) -> np.ndarray:
        """Integer counts summing to ``resolution``, each >= 1, proportional to 1/rank^zipf up to largest-remainder rounding."""
        T = self.config.resolution
        w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** self.config.zipf
        raw = (T - n) * w / w.sum()
        counts = np.floor(raw).astype(np.int64)
        counts[np.argsort(counts - raw, kind="stable")[: T - n - int(counts.sum())]] += 1
        return rng.permutation(counts + 1)

    # ------------------------------------------------------------------ datasets
    def datasets(
        self,
        k: float,
        l: float,
        w: tuple[float, float, float],
        mode: DataMode = "exact",
        *,
        n_align: int | None = None,
        l_max: float | None = None,
        rng: np.random.Generator | None = None,
    ) -> Datasets:
        r"""D_p (mixture with weights ``w``, :math:`|D_p| = k|D_a|`), D_a ~ P_2, D_t ~ P_3 (:math:`|D_t| = l|D_a|`).

        ``mode="exact"``: counts proportional to the masses (module docstring). ``mode="sampled"``:
        ``n_align`` draws, with ``rng`` (required); D_t is the first :math:`l\,n_{align}` of a pool of
        :math:`l_{max} n_{align}` draws (``l_max`` defaults to l), so datasets for several l made from
        generators in the same state are nested. k n_align and l n_align must be integers.
        """
        k, l, w = check_k(k), check_l(l), check_weights(w)
        P1, P2, P3 = self.components
        V = self.config.data_vocab_size
        if mode == "exact":
            kq, lq = exact_fraction(k, "k"), exact_fraction(l, "l")
            wq = [exact_fraction(x, f"w{i + 1}") for i, x in enumerate(w)]
            m = math.lcm(*(q.denominator for q in (kq * wq[0], kq * wq[1], kq * wq[2], lq)))
            pre = union([WeightedSequences(c.sequences, c.counts * int(kq * m * wi)) for c, wi in zip(self.components, wq)])
            return Datasets(pre, WeightedSequences(P2.sequences, P2.counts * m),
                            WeightedSequences(P3.sequences, P3.counts * int(lq * m)), V)
        if mode != "sampled":
            raise ValueError(f"mode must be 'exact' or 'sampled', got {mode!r}")
        if rng is None:
            raise ValueError("mode='sampled' draws datasets: pass rng=np.random.default_rng(seed)")
        n_a = check_count(n_align, "n_align", 1)
        l_max = l if l_max is None else check_l(l_max, "l_max")
        n_p, n_t, n_pool = (_integral(x * n_a, name) for x, name in ((k, "k * n_align"), (l, "l * n_align"), (l_max, "l_max * n_align")))
        if n_t > n_pool:
            raise ValueError(f"l = {l} exceeds l_max = {l_max}")
        align = WeightedSequences(P2.sequences, rng.multinomial(n_a, P2.probs))
        comp = rng.multinomial(n_p, w)
        pre = union([WeightedSequences(c.sequences, rng.multinomial(n, c.probs)) for c, n in zip(self.components, comp)])
        pool = rng.choice(len(P3.sequences), size=n_pool, p=P3.probs)
        perturb = WeightedSequences(P3.sequences, np.bincount(pool[:n_t], minlength=len(P3.sequences)))
        return Datasets(pre, align, perturb, V)


def _integral(x: float, name: str) -> int:
    r = round(x)
    if abs(x - r) > 1e-9 * max(1.0, abs(x)):
        raise ValueError(f"{name} = {x:g} must be an integer in sampled mode (sizes are response counts)")
    return int(r)
